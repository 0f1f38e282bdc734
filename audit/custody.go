package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// ErrCustodyMismatch reports a ledger whose newest custody event names
// another custody package (or root commitment) than the charter pins:
// shares of a package nobody signed for may have been handed out.
var ErrCustodyMismatch = errors.New("custody event does not match the charter")

// CustodyEvent is a custody key event in the ledger: the package id and
// root commitment founding (or a re-split) anchored there.
type CustodyEvent struct {
	Index      uint64
	Package    [32]byte
	Commitment [32]byte
}

// Custody is what the ledger's custody events say, checked against the
// charter.
type Custody struct {
	Events []CustodyEvent
	// Pinned: the charter pins a package (custodians.package and
	// custodians.commitment). A charter signed before pinning existed
	// pins none.
	Pinned bool
	// Anchored: the charter pins a package and the newest custody event
	// is that package, with that commitment.
	Anchored bool
	// SiteKeys are the site outer key events, in ledger order: each
	// generation a site rotated to (KeySiteKey) and each key destroyed
	// (KeySiteShred), by fingerprint only.
	SiteKeys []SiteKeyEvent
}

// SiteKeyEvent is a site outer key event in the ledger.
type SiteKeyEvent struct {
	Index      uint64
	Site       string
	Shred      bool   // KeySiteShred; otherwise KeySiteKey
	Generation uint32 // KeySiteKey: the generation announced
	KeyID      [32]byte
}

// custody reads the custody events of the first size entries and checks
// the newest against the charter's pin: another package, commitment or
// guest is an error wrapping ErrCustodyMismatch. A charter that pins a
// package while the ledger holds no custody event is reported (Anchored
// false), not refused: ledgers founded before anchoring hold none.
func (l *Ledger) custody(ctx context.Context, size uint64) (*Custody, error) {
	out := &Custody{}
	err := ScanKeyEvents(ctx, l.Fetcher, size, func(idx uint64, ev seal.KeyEvent) error {
		if ev.Kind == seal.KeySiteKey || ev.Kind == seal.KeySiteShred {
			out.SiteKeys = append(out.SiteKeys, SiteKeyEvent{Index: idx, Site: ev.Site, Shred: ev.Kind == seal.KeySiteShred, Generation: ev.Generation, KeyID: ev.KeyID})
			return nil
		}
		if ev.Kind != seal.KeyCustody {
			return nil
		}
		if l.Charter != nil && ev.Guest != l.Charter.Guest.ID {
			return fmt.Errorf("entry %d: custody event of guest %q in %s's ledger: %w", idx, ev.Guest, l.Charter.Guest.ID, ErrCustodyMismatch)
		}
		out.Events = append(out.Events, CustodyEvent{Index: idx, Package: ev.KeyID, Commitment: ev.Commitment})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("custody events: %w", err)
	}
	if l.Charter == nil || l.Charter.Custodians.Package == "" {
		return out, nil
	}
	out.Pinned = true
	if len(out.Events) == 0 {
		return out, nil
	}
	c, last := l.Charter, out.Events[len(out.Events)-1]
	if hex.EncodeToString(last.Package[:]) != c.Custodians.Package || hex.EncodeToString(last.Commitment[:]) != c.Custodians.Commitment {
		return nil, fmt.Errorf("entry %d anchors custody package %x (root commitment %x); charter %s v%d pins %s (%s): %w",
			last.Index, last.Package, last.Commitment, c.Guest.ID, c.Version, c.Custodians.Package, c.Custodians.Commitment, ErrCustodyMismatch)
	}
	out.Anchored = true
	return out, nil
}

// ScanKeyEvents calls fn with every key event among the first size
// entries of a ledger, in order; an entry of type key-event that does not
// decode is an error naming its index.
func ScanKeyEvents(ctx context.Context, f ledger.Fetcher, size uint64, fn func(index uint64, ev seal.KeyEvent) error) error {
	return ledger.Scan(ctx, f, 0, size, func(idx uint64, raw []byte) error {
		if len(raw) < 2 || raw[1] != byte(ledger.TypeKeyEvent) {
			return nil
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		var ev seal.KeyEvent
		if err := ev.UnmarshalBinary(e.Payload); err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		return fn(idx, ev)
	})
}
