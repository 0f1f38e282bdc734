package continuity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
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

// UnsealSession is a site's side of unsealing: a one-time hybrid
// post-quantum age identity (ML-KEM-768 with X25519, an "age1pq1…"
// recipient), created in memory and never written, to which custodians
// seal their shares (`chancery custody reseal --recipient FILE`, where FILE
// is the site's signed RecipientStatement) and officials the wrapped site
// keys (OpenSiteKey); the shares
// received, each opened and verified against the custody package; and, at
// the threshold, the root key rebuilt in memory. It is safe for concurrent
// use.
//
// # Wiping, and what Go can and cannot promise
//
// Combine and Attest wipe every share they held (seal.Share.Wipe zeroes
// the scalar in place) and then close the session; Close zeroes the
// identity's 32-byte seed and its X25519 scalar in place and wipes any
// shares; an expired session closes itself at its next use. A closed session holds no reference to any secret. What
// this does not reach, and nothing in Go can:
//
//   - copies the runtime makes: a goroutine stack that grows is copied and
//     the old one freed without zeroing; freed heap memory keeps its bytes
//     until it is reused. The garbage collector does not move heap
//     objects, so the slices and scalars wiped here are the only live
//     copies.
//   - age's and the standard library's internal copies: age offers no way
//     to wipe an identity, so Close zeroes, through reflection, the seed
//     inside hpke's hybrid private key and the X25519 scalar inside its
//     crypto/ecdh key (the unseal tests fail if an upgrade changes those
//     fields). The expanded ML-KEM-768 decapsulation key inside
//     crypto/mlkem is not reached: it is derived from the seed and stays
//     in the heap until reused. Each Unwrap leaves the KEM shared secret,
//     the HPKE key schedule, the file key and the payload key as garbage;
//     the share's plaintext is cleared by seal.
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
	identity  *age.HybridIdentity
	recipient string
	expires   time.Time
	now       func() time.Time
	shares    []*seal.Share
	closed    bool
	// onCombine, if set, is called each time Combine rebuilds the root.
	onCombine func()
	// identityWiped records whether Close could zero the identity's
	// seed and scalar (see wipeHybridIdentity).
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
	// Hybrid: a share sealed to a classical X25519 key today could be
	// opened by whoever recorded it and has a quantum computer later.
	ident, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("unseal session for %s: one-time key: %w", pkg.Guest(), err)
	}
	s := &UnsealSession{id: id, pkg: pkg, identity: ident, recipient: ident.Recipient().String(), now: time.Now}
	s.expires = s.now().Add(ttl)
	return s, nil
}

// ID names the session (16 random bytes, hex).
func (s *UnsealSession) ID() string { return s.id }

// Recipient is the session's one-time hybrid age recipient ("age1pq1…").
// It is public; custodians take it from the site's signed statement
// (Statement), never bare.
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
	if err := s.readyLocked(); err != nil {
		return nil, err
	}
	defer s.closeLocked()
	r, err := s.pkg.Combine(s.shares)
	if err != nil {
		return nil, fmt.Errorf("unseal session %s: %w", s.id, err)
	}
	if s.onCombine != nil {
		s.onCombine()
	}
	return r, nil
}

// OnCombine has f called each time Combine rebuilds the root key: a site
// counts the times it held the root, which a drill must never add to.
func (s *UnsealSession) OnCombine(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onCombine = f
}

// readyLocked refuses a session that is not usable or holds fewer than
// the threshold of shares.
func (s *UnsealSession) readyLocked() error {
	if err := s.usable(); err != nil {
		return err
	}
	if need := s.pkg.Threshold(); len(s.shares) < need {
		return fmt.Errorf("unseal session %s: %d of %d shares: %w", s.id, len(s.shares), need, seal.ErrTooFewShares)
	}
	return nil
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
		s.identityWiped = wipeHybridIdentity(s.identity)
		s.identity = nil
	}
	s.closed = true
}

// wipeHybridIdentity zeroes the secrets inside an age hybrid identity in
// place: the 32-byte seed hpke keeps (from which both halves derive) and
// the X25519 scalar inside its crypto/ecdh private key. Neither age, hpke
// nor crypto/ecdh offers a Wipe; reflect.Value.Bytes reads an unexported
// byte slice (the slice itself, not a copy), so they can be cleared
// without unsafe. It reports false if the layout is not the one expected,
// so that a test notices an upgrade that breaks it.
func wipeHybridIdentity(id *age.HybridIdentity) bool {
	k := reflect.ValueOf(id).Elem().FieldByName("k")
	hk, ok := structBehind(k)
	if !ok {
		return false
	}
	seed := clearByteField(hk.FieldByName("seed"))
	x, ok := structBehind(hk.FieldByName("t"))
	return ok && clearByteField(x.FieldByName("privateKey")) && seed
}

// structBehind follows an interface holding a pointer to a struct.
func structBehind(v reflect.Value) (reflect.Value, bool) {
	if !v.IsValid() || v.Kind() != reflect.Interface || v.IsNil() {
		return reflect.Value{}, false
	}
	p := v.Elem()
	if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return p.Elem(), true
}

func clearByteField(f reflect.Value) bool {
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 {
		return false
	}
	b := f.Bytes()
	clear(b)
	return len(b) > 0
}

// Attest is how a drill proves that the site could be unsealed without
// rebuilding the root key: the threshold of shares, each opened with the
// session's key and verified against the custody package (Submit), is
// reached. Since the package's commitments bind every share to one
// polynomial, any threshold of verified shares combines to the root the
// package commits to; Attest does not combine them. It returns the
// custodians whose shares were verified, and ends the session as Combine
// does (shares and identity wiped). Below the threshold it fails with
// seal.ErrTooFewShares and keeps the shares.
func (s *UnsealSession) Attest() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readyLocked(); err != nil {
		return nil, err
	}
	var custodians []string
	for _, sh := range s.shares {
		custodians = append(custodians, sh.Custodian())
	}
	s.closeLocked()
	return custodians, nil
}

// RecipientFormat names a site's signed statement of an unseal session's
// recipient and, followed by "\n", is the domain-separation prefix of its
// signature.
const RecipientFormat = "chancery-unseal-recipient/v1"

// Purposes of an unseal session.
const (
	PurposeActivation = "activation"
	PurposeDrill      = "drill"
)

// RecipientStatement is what a site signs, with its checkpoint key for
// the guest, about an unseal session it opened: custodians seal their
// shares to Recipient only after checking it against the charter
// (VerifyRecipient), so that whoever sits between them and the site (a
// host with a CA certificate for the site's name, say) cannot substitute
// its own recipient and collect the shares.
type RecipientStatement struct {
	Guest     string `json:"guest"`
	Site      string `json:"site"`
	Purpose   string `json:"purpose"` // PurposeActivation or PurposeDrill
	Session   string `json:"session"`
	Recipient string `json:"recipient"`
	// Package is the custody package's id, hex: the shares it takes.
	Package string    `json:"custody_package"`
	Expires time.Time `json:"expires"`
}

type signedRecipient struct {
	Format    string          `json:"format"`
	Statement json.RawMessage `json:"statement"`
	Signature []byte          `json:"signature"`
}

// Statement is the session's RecipientStatement for guest's site, signed
// with key, the site's checkpoint key for the guest.
func (s *UnsealSession) Statement(site, purpose string, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("unseal session %s: no checkpoint key to sign its recipient", s.id)
	}
	st := RecipientStatement{Guest: s.pkg.Guest(), Site: site, Purpose: purpose, Session: s.id, Recipient: s.recipient,
		Package: packageHex(s.pkg), Expires: s.expires.UTC().Truncate(time.Second)}
	canon, err := canonicalJSON(st)
	if err != nil {
		return nil, fmt.Errorf("unseal session %s: %w", s.id, err)
	}
	sig := ed25519.Sign(key, append([]byte(RecipientFormat+"\n"), canon...))
	return canonicalJSON(signedRecipient{Format: RecipientFormat, Statement: canon, Signature: sig})
}

// VerifyRecipient checks a signed RecipientStatement before a custodian
// seals a share to it: the signature is the named site's checkpoint key in
// charter c, the guest is c's and pkg's, the package is pkg, the session
// has not expired at now, and the recipient is a hybrid post-quantum age
// recipient, and pkg is the package the charter pins (CheckCustody). It
// returns the statement and the parsed recipient. pkg may be nil for a check that seals nothing (an official's look at what the site
// answered); a custodian's tool always gives it.
func VerifyRecipient(c *charter.Charter, pkg *seal.CustodyPackage, raw []byte, now time.Time) (*RecipientStatement, *age.HybridRecipient, error) {
	var env signedRecipient
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimSpace(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, nil, fmt.Errorf("unseal recipient: not a signed recipient statement: %w", err)
	}
	if env.Format != RecipientFormat {
		return nil, nil, fmt.Errorf("unseal recipient: format %q, want %q", env.Format, RecipientFormat)
	}
	var st RecipientStatement
	dec = json.NewDecoder(bytes.NewReader(env.Statement))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, nil, fmt.Errorf("unseal recipient: statement: %w", err)
	}
	def, ok := c.Site(st.Site)
	if !ok {
		return nil, nil, fmt.Errorf("unseal recipient: site %q is not in %s's charter", st.Site, c.Guest.ID)
	}
	_, _, pub, err := ledger.SplitVerifierKey(def.CheckpointKey)
	if err != nil {
		return nil, nil, fmt.Errorf("unseal recipient: checkpoint key of site %s: %w", st.Site, err)
	}
	if len(env.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, append([]byte(RecipientFormat+"\n"), env.Statement...), env.Signature) {
		return nil, nil, fmt.Errorf("unseal recipient: the signature is not site %s's checkpoint key's (charter of %s): do not seal a share to it", st.Site, c.Guest.ID)
	}
	switch {
	case st.Guest != c.Guest.ID || (pkg != nil && st.Guest != pkg.Guest()):
		return nil, nil, fmt.Errorf("unseal recipient: for guest %q, not %s", st.Guest, c.Guest.ID)
	case pkg != nil && st.Package != packageHex(pkg):
		return nil, nil, fmt.Errorf("unseal recipient: for custody package %.16s…, not this one (%.16s…)", st.Package, packageHex(pkg))
	case !now.Before(st.Expires):
		return nil, nil, fmt.Errorf("unseal recipient: session %s of site %s expired at %s", st.Session, st.Site, st.Expires.Format(TimeLayout))
	case st.Purpose != PurposeActivation && st.Purpose != PurposeDrill:
		return nil, nil, fmt.Errorf("unseal recipient: purpose %q", st.Purpose)
	}
	if pkg != nil {
		if err := CheckCustody(c, pkg); err != nil {
			return nil, nil, fmt.Errorf("unseal recipient: %w", err)
		}
	}
	rcpt, err := age.ParseHybridRecipient(st.Recipient)
	if err != nil {
		return nil, nil, fmt.Errorf("unseal recipient: session %s: not a hybrid age1pq1 recipient: %w", st.Session, err)
	}
	return &st, rcpt, nil
}

// ErrCustodyNotPinned means a custody package that is not the one the
// charter pins (custodians.package and custodians.commitment): another
// split, perhaps of another root, which no share may be sealed for or
// combined from.
var ErrCustodyNotPinned = errors.New("custody package is not the one the charter pins")

// CheckCustody checks pkg against charter c before any share is sealed to
// a site or combined: same guest, and, when the charter pins a package,
// the pinned id and root commitment. A charter signed before pinning
// existed pins none, and then only the guest is checked.
func CheckCustody(c *charter.Charter, pkg *seal.CustodyPackage) error {
	if pkg.Guest() != c.Guest.ID {
		return fmt.Errorf("custody package of guest %q, the charter is %s's: %w", pkg.Guest(), c.Guest.ID, ErrCustodyNotPinned)
	}
	if c.Custodians.Package == "" {
		return nil
	}
	rc := pkg.RootCommitment()
	if id := packageHex(pkg); id != c.Custodians.Package || hex.EncodeToString(rc[:]) != c.Custodians.Commitment {
		return fmt.Errorf("custody package %.16s… (root commitment %x…), charter %s v%d pins %.16s… (%.16s…): %w",
			id, rc[:8], c.Guest.ID, c.Version, c.Custodians.Package, c.Custodians.Commitment, ErrCustodyNotPinned)
	}
	return nil
}

func packageHex(p *seal.CustodyPackage) string {
	id := p.PackageID()
	return hex.EncodeToString(id[:])
}

// siteKeyPrefix starts the plaintext of a wrapped site key sealed to a
// session, so that it cannot be taken for a share, or for another site's.
const siteKeyPrefix = "chancery-site-key/v1\n"

// SealSiteKey seals a site's wrapped outer key (from the guest's escrow)
// to the session a verified statement names, for the site to open with
// OpenSiteKey: the escrow's copy never crosses the network in clear.
func SealSiteKey(st *RecipientStatement, site string, wrapped []byte) ([]byte, error) {
	rcpt, err := age.ParseHybridRecipient(st.Recipient)
	if err != nil {
		return nil, fmt.Errorf("seal the outer key of site %s: recipient: %w", site, err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, rcpt)
	if err != nil {
		return nil, fmt.Errorf("seal the outer key of site %s: %w", site, err)
	}
	msg := siteKeyPrefix + st.Guest + "\n" + site + "\n"
	if _, err := io.WriteString(w, msg); err != nil {
		return nil, err
	}
	if _, err := w.Write(wrapped); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal the outer key of site %s: %w", site, err)
	}
	return out.Bytes(), nil
}

// maxSealedSiteKey bounds a sealed wrapped site key.
const maxSealedSiteKey = 4 << 10

// OpenSiteKey opens a wrapped site key sealed to the session (SealSiteKey)
// for site, and returns the wrapped key.
func (s *UnsealSession) OpenSiteKey(site string, sealed []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(sealed) > maxSealedSiteKey {
		return nil, fmt.Errorf("unseal session %s: outer key of site %s: %d bytes, at most %d", s.id, site, len(sealed), maxSealedSiteKey)
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), s.identity)
	if err != nil {
		return nil, fmt.Errorf("unseal session %s: outer key of site %s is not sealed to this session: %w", s.id, site, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxSealedSiteKey))
	if err != nil {
		return nil, fmt.Errorf("unseal session %s: outer key of site %s: %w", s.id, site, err)
	}
	wrapped, ok := strings.CutPrefix(string(plain), siteKeyPrefix+s.pkg.Guest()+"\n"+site+"\n")
	clear(plain)
	if !ok {
		return nil, fmt.Errorf("unseal session %s: the sealed key is not the outer key of site %s of %s", s.id, site, s.pkg.Guest())
	}
	return []byte(wrapped), nil
}
