package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// KeyEventKind says what a key event records.
type KeyEventKind uint8

// Key event kinds. The values are part of the ledger format: never reuse one.
const (
	// KeyRotate raises a registry's data-key generation to Generation.
	KeyRotate KeyEventKind = 1
	// KeySiteKey records that Site has a new outer key, KeyID =
	// SiteKey.ID(), and Generation its generation (RotateSiteKey; 0 for a
	// key not numbered).
	KeySiteKey KeyEventKind = 2
	// KeySiteShred records that every wrapped copy of Site's outer key
	// KeyID has been destroyed.
	KeySiteShred KeyEventKind = 3
	// KeyCustody records a new custody package, KeyID = its PackageID()
	// and Commitment its RootCommitment() (CustodyEvent).
	KeyCustody KeyEventKind = 4
)

func (k KeyEventKind) String() string {
	switch k {
	case KeyRotate:
		return "rotate"
	case KeySiteKey:
		return "site-key"
	case KeySiteShred:
		return "site-shred"
	case KeyCustody:
		return "custody"
	}
	return fmt.Sprintf("key-event(%d)", uint8(k))
}

// keyEventVersion is the first byte of an encoded key event;
// keyEventVersionCommit, of a custody event, which adds the root
// commitment. Other kinds keep version 1, so their bytes are unchanged.
const (
	keyEventVersion       = 0x01
	keyEventVersionCommit = 0x02
)

// KeyEvent is the payload of a ledger "key-event" entry (type 6). It holds
// only public facts: names, generation numbers, fingerprints, never a key
// or a wrapped key. The registry and continuity layers write it; Keyring
// applies rotations from it.
type KeyEvent struct {
	Kind       KeyEventKind
	Guest      string
	Registry   string   // KeyRotate only
	Generation uint32   // KeyRotate: the new generation (≥ 2); KeySiteKey: the site key's (0 if unnumbered)
	Site       string   // KeySiteKey, KeySiteShred only
	KeyID      [32]byte // site key fingerprint or custody package id; zero for KeyRotate
	Order      [32]byte // SHA-256 of the order that authorised it; zero if none
	// Commitment is the custody package's root commitment (KeyCustody
	// only): an HKDF output of R, which reveals nothing from which R
	// follows, to a classical or a quantum adversary.
	Commitment [32]byte
}

// Validate checks that exactly the fields of the event's kind are set.
func (e KeyEvent) Validate() error {
	if e.Guest == "" {
		return errors.New("key event: empty guest")
	}
	if err := checkNames(e.Guest, e.Registry, e.Site); err != nil {
		return fmt.Errorf("key event: %w", err)
	}
	zero := [32]byte{}
	switch e.Kind {
	case KeyRotate:
		if e.Registry == "" || e.Generation < 2 || e.Site != "" || e.KeyID != zero || e.Commitment != zero {
			return fmt.Errorf("key event rotate: want registry, generation ≥ 2, no site and no key id (registry %q generation %d)", e.Registry, e.Generation)
		}
	case KeySiteKey:
		if e.Site == "" || e.Registry != "" || e.KeyID == zero || e.Commitment != zero {
			return fmt.Errorf("key event %s: want site, key id and generation only (site %q)", e.Kind, e.Site)
		}
	case KeySiteShred:
		if e.Site == "" || e.Registry != "" || e.Generation != 0 || e.KeyID == zero || e.Commitment != zero {
			return fmt.Errorf("key event %s: want site and key id only (site %q)", e.Kind, e.Site)
		}
	case KeyCustody:
		if e.Site != "" || e.Registry != "" || e.Generation != 0 || e.KeyID == zero || e.Commitment == zero {
			return fmt.Errorf("key event custody: want package id and root commitment only")
		}
	default:
		return fmt.Errorf("key event: unknown kind %d", uint8(e.Kind))
	}
	return nil
}

// MarshalBinary encodes the event:
//
//	0x01 ‖ kind u8 ‖ lp(guest) ‖ lp(registry) ‖ generation u32 ‖ lp(site)
//	‖ key id (32) ‖ order (32)
//
// and a custody event as 0x02 and the same fields ‖ root commitment (32).
func (e KeyEvent) MarshalBinary() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	version := byte(keyEventVersion)
	if e.Kind == KeyCustody {
		version = keyEventVersionCommit
	}
	b := make([]byte, 0, 2+6+len(e.Guest)+len(e.Registry)+len(e.Site)+4+96)
	b = append(b, version, byte(e.Kind))
	b = appendLP(b, e.Guest)
	b = appendLP(b, e.Registry)
	b = binary.BigEndian.AppendUint32(b, e.Generation)
	b = appendLP(b, e.Site)
	b = append(b, e.KeyID[:]...)
	b = append(b, e.Order[:]...)
	if version == keyEventVersionCommit {
		b = append(b, e.Commitment[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes an event strictly: version 1, or 2 for a
// custody event, no trailing bytes, and the fields Validate demands.
func (e *KeyEvent) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	v := r.u8("key event version")
	if r.err == nil && v != keyEventVersion && v != keyEventVersionCommit {
		return fmt.Errorf("key event: unknown version %d", v)
	}
	var ev KeyEvent
	ev.Kind = KeyEventKind(r.u8("key event kind"))
	ev.Guest = r.lp("guest")
	ev.Registry = r.lp("registry")
	ev.Generation = r.u32("generation")
	ev.Site = r.lp("site")
	copy(ev.KeyID[:], r.bytes(32, "key id"))
	copy(ev.Order[:], r.bytes(32, "order"))
	if v == keyEventVersionCommit {
		copy(ev.Commitment[:], r.bytes(32, "root commitment"))
	}
	if err := r.done("key event"); err != nil {
		return fmt.Errorf("key event: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	if (ev.Kind == KeyCustody) != (v == keyEventVersionCommit) {
		return fmt.Errorf("key event %s in version %d", ev.Kind, v)
	}
	*e = ev
	return nil
}

// CustodyEvent is the key event that anchors p in the ledger: its package
// id and root commitment, public values both (docs/seal.md § Custody).
// Founding appends it; an auditor compares it with the charter's
// custodians.package and custodians.commitment.
func (p *CustodyPackage) CustodyEvent(order [32]byte) KeyEvent {
	return KeyEvent{Kind: KeyCustody, Guest: p.guest, KeyID: p.id, Commitment: p.rootCheck, Order: order}
}

// RotationEvent returns the key event that raises registry's generation by
// one. It changes nothing: append the event to the ledger, then apply it
// with ApplyKeyEvent, so that no record is ever sealed under a generation
// the ledger does not yet announce.
func (k *Keyring) RotationEvent(registry string, order [32]byte) KeyEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return KeyEvent{Kind: KeyRotate, Guest: k.guest, Registry: registry, Generation: k.generationLocked(registry) + 1, Order: order}
}

// ApplyKeyEvent applies a rotation read from the ledger. It refuses an
// event of another guest and a rotation that does not raise the
// generation (a replay); other kinds concern site-key storage, not the
// keyring, and are accepted without effect.
func (k *Keyring) ApplyKeyEvent(e KeyEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if e.Guest != k.guest {
		return fmt.Errorf("key event for guest %q applied to the keyring of %q", e.Guest, k.guest)
	}
	if e.Kind != KeyRotate {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.wiped {
		return ErrWiped
	}
	if cur := k.generationLocked(e.Registry); !k.setGenerationLocked(e.Registry, e.Generation) {
		return fmt.Errorf("key event: registry %q rotation to generation %d does not raise current generation %d", e.Registry, e.Generation, cur)
	}
	return nil
}
