package continuity

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/seal"
)

// Why a share or a session is refused.
var (
	ErrSessionClosed  = errors.New("unseal session is closed")
	ErrSessionExpired = errors.New("unseal session expired")
	// ErrNotForSession: the share is not sealed to this session's one-time
	// recipient (another session's, or the custodian's own).
	ErrNotForSession = errors.New("share is not sealed to this unseal session")
	// ErrShareUnreadable: the age file is damaged or was tampered with, or
	// does not hold a chancery share.
	ErrShareUnreadable = errors.New("sealed share is damaged, tampered with or not a share")
	// ErrDuplicateShare: this custodian's share is already in the session.
	ErrDuplicateShare = errors.New("custodian already submitted a share")
	// ErrEnoughShares: the session already holds the threshold; combine.
	ErrEnoughShares = errors.New("unseal session already holds the threshold of shares")
)

// maxSealedShare bounds what Submit reads: a sealed share is a few hundred
// bytes.
const maxSealedShare = 64 << 10

// UnsealSession is a site's side of unsealing: a one-time age X25519
// identity, created in memory and never written, to which custodians seal
// their shares (`chancery custody reseal --to RECIPIENT`); the shares
// received, each opened and verified against the custody package; and, at
// the threshold, the root key rebuilt in memory. It is safe for concurrent
// use.
//
// # Wiping, and what Go can and cannot promise
//
// Combine wipes every share it held (seal.Share.Wipe zeroes the scalar in
// place) and then closes the session; Close zeroes the identity's X25519
// scalar in place and wipes any shares; an expired session closes itself at
// its next use. A closed session holds no reference to any secret. What
// this does not reach, and nothing in Go can:
//
//   - copies the runtime makes: a goroutine stack that grows is copied and
//     the old one freed without zeroing; freed heap memory keeps its bytes
//     until it is reused. The garbage collector does not move heap
//     objects, so the slices and scalars wiped here are the only live
//     copies.
//   - age's internal copies: age offers no way to wipe an identity, so
//     Close zeroes the unexported scalar of *age.X25519Identity through
//     reflection (the unseal tests fail if an age upgrade changes that
//     field); GenerateX25519Identity drops, unzeroed, the buffer it drew
//     the scalar into; each Unwrap leaves the X25519 shared secret, the
//     HKDF state, the wrapping key, the file key and the payload key as
//     garbage; the share's plaintext is cleared by seal.
//   - circl's temporaries in share verification and in Lagrange recovery.
//   - swap and core dumps: run sites with swap off or encrypted and core
//     dumps disabled.
//
// The root key Combine returns is the caller's to Wipe (`chancery seal`
// and every failback do). Go 1.26's experimental runtime/secret
// (GOEXPERIMENT=runtimesecret) would erase stacks and registers too; it is
// not used while it is an experiment.
type UnsealSession struct {
	mu        sync.Mutex
	id        string
	pkg       *seal.CustodyPackage
	identity  *age.X25519Identity
	recipient string
	expires   time.Time
	now       func() time.Time
	shares    []*seal.Share
	closed    bool
	// identityWiped records whether Close could zero the identity's
	// scalar (see wipeX25519Identity).
	identityWiped bool
}

// NewUnsealSession opens a session for pkg that accepts shares for ttl.
func NewUnsealSession(pkg *seal.CustodyPackage, ttl time.Duration) (*UnsealSession, error) {
	if pkg == nil {
		return nil, errors.New("unseal session: no custody package")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("unseal session for %s: ttl %v, want a positive duration", pkg.Guest(), ttl)
	}
	id, err := randomHex()
	if err != nil {
		return nil, fmt.Errorf("unseal session for %s: id: %w", pkg.Guest(), err)
	}
	ident, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("unseal session for %s: one-time key: %w", pkg.Guest(), err)
	}
	s := &UnsealSession{id: id, pkg: pkg, identity: ident, recipient: ident.Recipient().String(), now: time.Now}
	s.expires = s.now().Add(ttl)
	return s, nil
}

// ID names the session (16 random bytes, hex).
func (s *UnsealSession) ID() string { return s.id }

// Recipient is the session's one-time age recipient ("age1…"), the --to of
// `chancery custody reseal`. It is public.
func (s *UnsealSession) Recipient() string { return s.recipient }

// Expires is when the session stops accepting shares and wipes itself.
func (s *UnsealSession) Expires() time.Time { return s.expires }

// Status returns how many shares the session holds, how many it needs, and
// whose they are, in the order received.
func (s *UnsealSession) Status() (have, need int, custodians []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shares {
		custodians = append(custodians, sh.Custodian())
	}
	return len(s.shares), s.pkg.Threshold(), custodians
}

// usable refuses a closed session and closes an expired one.
func (s *UnsealSession) usable() error {
	if s.closed {
		return fmt.Errorf("unseal session %s: %w", s.id, ErrSessionClosed)
	}
	if !s.now().Before(s.expires) {
		s.closeLocked()
		return fmt.Errorf("unseal session %s: %w at %s; its shares and key are wiped", s.id, ErrSessionExpired, s.expires.UTC().Format(TimeLayout))
	}
	return nil
}

// Submit opens a share sealed to the session's recipient, verifies it
// against the custody package (guest, package, custodian and index, the
// share's hash commitment) and keeps it. A share that is refused is wiped and
// the session is unchanged. It returns how many shares the session holds
// and how many it needs.
func (s *UnsealSession) Submit(sealed []byte) (have, need int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	need = s.pkg.Threshold()
	if err := s.usable(); err != nil {
		return len(s.shares), need, err
	}
	if len(sealed) > maxSealedShare {
		return len(s.shares), need, fmt.Errorf("unseal session %s: %w: %d bytes, a sealed share is at most %d", s.id, ErrShareUnreadable, len(sealed), maxSealedShare)
	}
	// Enough is enough: a share not needed is not even opened.
	if len(s.shares) >= need {
		return len(s.shares), need, fmt.Errorf("unseal session %s: %w (%d of %d); combine", s.id, ErrEnoughShares, len(s.shares), need)
	}
	sh, err := seal.OpenSealedShare(sealed, s.identity)
	if err != nil {
		if nm := new(age.NoIdentityMatchError); errors.As(err, &nm) {
			return len(s.shares), need, fmt.Errorf("unseal session %s: %w (recipient %s)", s.id, ErrNotForSession, s.recipient)
		}
		return len(s.shares), need, fmt.Errorf("unseal session %s: %w: %w", s.id, ErrShareUnreadable, err)
	}
	if err := s.pkg.VerifyShare(sh); err != nil {
		sh.Wipe()
		return len(s.shares), need, fmt.Errorf("unseal session %s: %w", s.id, err)
	}
	for _, have := range s.shares {
		if have.Custodian() == sh.Custodian() {
			sh.Wipe()
			return len(s.shares), need, fmt.Errorf("unseal session %s: %w: %s", s.id, ErrDuplicateShare, sh.Custodian())
		}
	}
	s.shares = append(s.shares, sh)
	return len(s.shares), need, nil
}

// Combine rebuilds the root key from the threshold of shares, checks it
// against the package's root commitment, and ends the session: the shares
// and the one-time identity are wiped whether it succeeds or not. Below
// the threshold it fails with seal.ErrTooFewShares and keeps the shares,
// so that more can be submitted. The caller wipes the returned key.
func (s *UnsealSession) Combine() (*seal.RootKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if need := s.pkg.Threshold(); len(s.shares) < need {
		return nil, fmt.Errorf("unseal session %s: %d of %d shares: %w", s.id, len(s.shares), need, seal.ErrTooFewShares)
	}
	defer s.closeLocked()
	r, err := s.pkg.Combine(s.shares)
	if err != nil {
		return nil, fmt.Errorf("unseal session %s: %w", s.id, err)
	}
	return r, nil
}

// Close wipes the one-time identity and every share held, and refuses all
// later use. It is idempotent.
func (s *UnsealSession) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *UnsealSession) closeLocked() {
	for _, sh := range s.shares {
		sh.Wipe()
	}
	clear(s.shares)
	s.shares = nil
	if s.identity != nil {
		s.identityWiped = wipeX25519Identity(s.identity)
		s.identity = nil
	}
	s.closed = true
}

// wipeX25519Identity zeroes the X25519 scalar inside an age identity in
// place. age keeps it in an unexported []byte and offers no Wipe;
// reflect.Value.Bytes reads an unexported byte slice (it returns the
// slice itself, not a copy), so the scalar can be cleared without unsafe.
// It reports false if age's layout is not the one expected, so that a
// test notices an upgrade that breaks it.
func wipeX25519Identity(id *age.X25519Identity) bool {
	f := reflect.ValueOf(id).Elem().FieldByName("secretKey")
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 {
		return false
	}
	b := f.Bytes()
	clear(b)
	return len(b) > 0
}
