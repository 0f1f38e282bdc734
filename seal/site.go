package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
)

// siteHeaderLen is format ‖ nonce.
const siteHeaderLen = 1 + nonceSize

// wrappedSiteKeyLen is format ‖ nonce ‖ 32-byte key ‖ tag.
const wrappedSiteKeyLen = 1 + nonceSize + keySize + tagSize

// WrappedSiteKeyLen is the length of one wrapped site key (WrapSiteKey);
// a file of several generations (UnwrapSiteKeys) is a multiple of it.
const WrappedSiteKeyLen = wrappedSiteKeyLen

// SiteKey is a site's outer key: 32 random bytes, deliberately not derived
// from R, so that once every wrapped copy is destroyed nobody — not even a
// holder of R — can recover it (crypto-shredding). Safe for concurrent use.
type SiteKey struct {
	mu    sync.RWMutex
	key   [keySize]byte
	aead  cipher.AEAD
	wiped bool

	// seals counts this process's seals under the key; limit is
	// SetSealLimit's (0: DefaultSealLimit).
	seals sealBudget
	limit atomic.Uint64

	// retained are earlier generations of the same site's key: Open
	// tries them after this one (a site's copy may hold packs shipped
	// under each), Seal never uses them. Set once, before use (Retain).
	retained []*SiteKey

	// reserve, if set (ReserveAhead), persists a seal count before the
	// seals it covers are made; reserved is the count persisted so far.
	resMu    sync.Mutex
	reserved atomic.Uint64
	block    uint64
	reserve  func(upTo uint64) error
}

// NewSiteKey draws a fresh site key from crypto/rand.
func NewSiteKey() (*SiteKey, error) {
	sk := &SiteKey{}
	if _, err := rand.Read(sk.key[:]); err != nil {
		return nil, fmt.Errorf("seal: new site key: %w", err)
	}
	if err := sk.init(); err != nil {
		sk.Wipe()
		return nil, err
	}
	return sk, nil
}

func (sk *SiteKey) init() error {
	a, err := newGCM(&sk.key)
	if err != nil {
		return fmt.Errorf("seal: site key: %w", err)
	}
	sk.aead = a
	return nil
}

// ID is the site key's public fingerprint, SHA-256("chancery/seal/v1
// site-key-id" ‖ key), for key events: safe to publish because the key is
// 256 uniformly random bits.
func (sk *SiteKey) ID() [32]byte {
	sk.mu.RLock()
	defer sk.mu.RUnlock()
	if sk.wiped {
		return [32]byte{}
	}
	h := sha256.New()
	h.Write([]byte(labelSiteKeyID))
	h.Write(sk.key[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// SiteAD is the additional data recommended for the outer layer over a blob
// chunk stored at a site: lp(guest) ‖ lp(site) ‖ chunk id. It binds the
// outer envelope to the site, so one site's copy cannot be passed off as
// another's.
func SiteAD(guest, site string, chunkID [32]byte) []byte {
	b := appendLP(nil, guest)
	b = appendLP(b, site)
	return append(b, chunkID[:]...)
}

// Seal adds the outer layer:
//
//	0x01 ‖ nonce (12, random) ‖ AES-256-GCM(site key, nonce, data,
//	      "chancery/seal/v1 site" 0x00 ‖ ad) ‖ tag (16)
func (sk *SiteKey) Seal(ad, data []byte) ([]byte, error) {
	sk.mu.RLock()
	defer sk.mu.RUnlock()
	if sk.wiped {
		return nil, ErrWiped
	}
	if err := sk.seals.take(sk.limit.Load()); err != nil {
		return nil, fmt.Errorf("seal: site layer: %w", err)
	}
	if err := sk.reserveUpTo(sk.seals.used.Load()); err != nil {
		sk.seals.used.Add(^uint64(0))
		return nil, fmt.Errorf("seal: site layer: persist the seal count: %w", err)
	}
	out := make([]byte, siteHeaderLen, siteHeaderLen+len(data)+tagSize)
	out[0] = formatSiteV1
	nonce := out[1:siteHeaderLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: site layer nonce: %w", err)
	}
	return sk.aead.Seal(out, nonce, data, siteAD(ad)), nil
}

func siteAD(ad []byte) []byte {
	b := make([]byte, 0, len(adSite)+1+len(ad))
	b = append(b, adSite...)
	b = append(b, 0)
	return append(b, ad...)
}

// Open removes the outer layer; ErrAuth if ad or any byte differs.
func (sk *SiteKey) Open(ad, sealed []byte) ([]byte, error) {
	sk.mu.RLock()
	defer sk.mu.RUnlock()
	if sk.wiped {
		return nil, ErrWiped
	}
	if len(sealed) < siteHeaderLen+tagSize {
		return nil, fmt.Errorf("seal: open site layer: %d bytes, too short: %w", len(sealed), ErrAuth)
	}
	if sealed[0] != formatSiteV1 {
		return nil, fmt.Errorf("seal: open site layer: unknown format 0x%02x", sealed[0])
	}
	pt, err := sk.aead.Open(nil, sealed[1:siteHeaderLen], sealed[siteHeaderLen:], siteAD(ad))
	if err == nil {
		return pt, nil
	}
	for _, old := range sk.retained {
		if pt, err := old.Open(ad, sealed); err == nil {
			return pt, nil
		}
	}
	return nil, fmt.Errorf("seal: open site layer: %w", ErrAuth)
}

// Retain makes Open also try older, earlier generations of the same
// site's key (newest first), for a copy that holds packs sealed under
// each: a site's writer rotates the key as its nonce budget runs out and
// ships later packs under the new generation, leaving the old packs as
// they are. Seal uses sk only. Call it before the key is shared; sk takes
// ownership of older (Wipe wipes them).
func (sk *SiteKey) Retain(older ...*SiteKey) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	sk.retained = append(sk.retained, older...)
}

// Retained is how many earlier generations Open tries after sk.
func (sk *SiteKey) Retained() int {
	sk.mu.RLock()
	defer sk.mu.RUnlock()
	return len(sk.retained)
}

// ReserveAhead makes the key's seal count durable ahead of use: before
// the seal that would pass the count last persisted, Seal calls
// persist(n + block) (n: the seals counted so far) and seals only once it
// returned nil. A count read back after a crash is therefore never below
// the seals made, and at most block above: it errs towards rotating
// early. persisted is the count already on record (CountSealed it too).
func (sk *SiteKey) ReserveAhead(persisted, block uint64, persist func(upTo uint64) error) {
	sk.resMu.Lock()
	defer sk.resMu.Unlock()
	sk.reserved.Store(persisted)
	sk.block = max(block, 1)
	sk.reserve = persist
}

// reserveUpTo persists a count of at least n if the one on record is
// below it.
func (sk *SiteKey) reserveUpTo(n uint64) error {
	if n <= sk.reserved.Load() {
		return nil
	}
	sk.resMu.Lock()
	defer sk.resMu.Unlock()
	if sk.reserve == nil || n <= sk.reserved.Load() {
		return nil
	}
	up := n + sk.block
	if err := sk.reserve(up); err != nil {
		return err
	}
	sk.reserved.Store(up)
	return nil
}

// Wipe zeroes the key and drops the cipher (see Keyring.Wipe on what Go's
// AES key schedule allows).
func (sk *SiteKey) Wipe() {
	if sk == nil {
		return
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	clear(sk.key[:])
	sk.aead = nil
	sk.wiped = true
	for _, old := range sk.retained {
		old.Wipe()
	}
}

func appendWrapAD(dst []byte, guest, site string) []byte {
	dst = append(dst, adSiteWrap...)
	dst = append(dst, 0, formatWrapV1)
	dst = appendLP(dst, guest)
	return appendLP(dst, site)
}

// kek derives the key-encryption key of site: HKDF from R with purpose
// "site-kek" and the site id as scope. The caller clears it.
func (k *Keyring) kek(site string) (*[keySize]byte, cipher.AEAD, error) {
	if err := checkNames(site); err != nil {
		return nil, nil, fmt.Errorf("site id: %w", err)
	}
	kek := new([keySize]byte)
	if err := k.derive(kek, labelSiteKEK, site, 0); err != nil {
		return nil, nil, err
	}
	a, err := newGCM(kek)
	if err != nil {
		clear(kek[:])
		return nil, nil, err
	}
	return kek, a, nil
}

// WrapSiteKey encrypts sk for storage under the KEK of site:
//
//	0x01 ‖ nonce (12, random) ‖ AES-256-GCM(KEK_site, nonce, key,
//	      "chancery/seal/v1 site-key" 0x00 0x01 ‖ lp(guest) ‖ lp(site)) ‖ tag
//
// 61 bytes. Wrapped copies must never go into the ledger (it is append-only
// and held by every site, so it could never be shredded) nor to the site
// itself: see docs/threat-model.md.
func (k *Keyring) WrapSiteKey(site string, sk *SiteKey) ([]byte, error) {
	kek, a, err := k.kek(site)
	if err != nil {
		return nil, fmt.Errorf("seal: wrap key of site %q: %w", site, err)
	}
	defer clear(kek[:])
	sk.mu.RLock()
	defer sk.mu.RUnlock()
	if sk.wiped {
		return nil, fmt.Errorf("seal: wrap key of site %q: %w", site, ErrWiped)
	}
	out := make([]byte, 1+nonceSize, wrappedSiteKeyLen)
	out[0] = formatWrapV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: wrap key of site %q: nonce: %w", site, err)
	}
	return a.Seal(out, out[1:], sk.key[:], appendWrapAD(nil, k.guest, site)), nil
}

// UnwrapSiteKey recovers a site key wrapped by WrapSiteKey for the same
// guest and site; ErrAuth for any other site, guest, root or modified byte.
func (k *Keyring) UnwrapSiteKey(site string, wrapped []byte) (*SiteKey, error) {
	if len(wrapped) != wrappedSiteKeyLen {
		return nil, fmt.Errorf("seal: unwrap key of site %q: %d bytes, want %d", site, len(wrapped), wrappedSiteKeyLen)
	}
	if wrapped[0] != formatWrapV1 {
		return nil, fmt.Errorf("seal: unwrap key of site %q: unknown format 0x%02x", site, wrapped[0])
	}
	kek, a, err := k.kek(site)
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap key of site %q: %w", site, err)
	}
	defer clear(kek[:])
	key, err := a.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], appendWrapAD(nil, k.guest, site))
	defer clear(key)
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap key of site %q: %w", site, ErrAuth)
	}
	sk := &SiteKey{}
	copy(sk.key[:], key)
	if err := sk.init(); err != nil {
		sk.Wipe()
		return nil, err
	}
	return sk, nil
}

// UnwrapSiteKeys recovers the keys of a file of one or more wrapped
// copies of site's outer key laid end to end, newest generation first: an
// escrow that holds every generation a site's copy may still need. A file
// of one copy (all there was before rotation at a writer) gives one key.
func (k *Keyring) UnwrapSiteKeys(site string, wrapped []byte) ([]*SiteKey, error) {
	if len(wrapped) == 0 || len(wrapped)%wrappedSiteKeyLen != 0 {
		return nil, fmt.Errorf("seal: unwrap keys of site %q: %d bytes, want a multiple of %d", site, len(wrapped), wrappedSiteKeyLen)
	}
	var out []*SiteKey
	for i := 0; i < len(wrapped); i += wrappedSiteKeyLen {
		sk, err := k.UnwrapSiteKey(site, wrapped[i:i+wrappedSiteKeyLen])
		if err != nil {
			for _, o := range out {
				o.Wipe()
			}
			return nil, fmt.Errorf("copy %d: %w", i/wrappedSiteKeyLen, err)
		}
		out = append(out, sk)
	}
	return out, nil
}

// SiteKeyEvent is the KeySiteKey event that announces sk as generation
// gen of site's outer key (0: a key not numbered). It holds the key's
// fingerprint, never the key or a wrapped copy.
func (k *Keyring) SiteKeyEvent(site string, gen uint32, sk *SiteKey, order [32]byte) (KeyEvent, error) {
	id := sk.ID()
	if id == ([32]byte{}) {
		return KeyEvent{}, fmt.Errorf("seal: key event for site %q: %w", site, ErrWiped)
	}
	e := KeyEvent{Kind: KeySiteKey, Guest: k.guest, Site: site, Generation: gen, KeyID: id, Order: order}
	if err := e.Validate(); err != nil {
		return KeyEvent{}, err
	}
	return e, nil
}

// RotateSiteKey draws generation gen+1 of site's outer key, whose
// generation gen is running out of nonces (Remaining) or is to be retired:
// the new key, its copy wrapped under the site's KEK (for the key store
// and the escrow; never the ledger), and the KeySiteKey event announcing
// it. Nothing changes until the caller stores the wrapped copy and appends
// the event; then it seals new chunks under the new key, re-seals the old
// ones with ResealSite, and shreds the old key's copies as for a revoked
// site. A generation's key is fresh randomness, never derived from the
// previous one or from R, so shredding one generation leaves the others.
func (k *Keyring) RotateSiteKey(site string, gen uint32, order [32]byte) (*SiteKey, []byte, KeyEvent, error) {
	if gen == ^uint32(0) {
		return nil, nil, KeyEvent{}, fmt.Errorf("seal: rotate key of site %q: generation %d is the last", site, gen)
	}
	next, err := NewSiteKey()
	if err != nil {
		return nil, nil, KeyEvent{}, err
	}
	wrapped, err := k.WrapSiteKey(site, next)
	if err == nil {
		var e KeyEvent
		if e, err = k.SiteKeyEvent(site, gen+1, next, order); err == nil {
			return next, wrapped, e, nil
		}
	}
	next.Wipe()
	return nil, nil, KeyEvent{}, fmt.Errorf("seal: rotate key of site %q: %w", site, err)
}

// ResealSite moves one outer-layer value from one site key to another
// (a rotation's re-sealing): opened under from, sealed under to with the
// same ad. The plaintext never leaves this call.
func ResealSite(from, to *SiteKey, ad, sealed []byte) ([]byte, error) {
	pt, err := from.Open(ad, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return to.Seal(ad, pt)
}

// Remaining is how many more values the key seals before it refuses with
// ErrNonceBudget, as far as this process has counted: the signal to
// rotate (RotateSiteKey) well before it reaches 0.
func (sk *SiteKey) Remaining() uint64 {
	limit := sk.limit.Load()
	if limit == 0 || limit > DefaultSealLimit {
		limit = DefaultSealLimit
	}
	if used := sk.seals.used.Load(); used < limit {
		return limit - used
	}
	return 0
}
