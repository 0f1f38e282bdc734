package seal

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

// Custody errors. Errors about one share are *ShareError values naming the
// custodian and wrapping one of these.
var (
	// ErrBadShare: the share does not lie on the committed polynomial —
	// corrupted, forged, or taken from another split of the same root.
	ErrBadShare = errors.New("seal: share does not match the package's commitment")
	// ErrWrongPackage: the share names another guest or custody package.
	ErrWrongPackage = errors.New("seal: share belongs to another guest or custody package")
	// ErrTooFewShares: fewer distinct valid shares than the threshold.
	ErrTooFewShares = errors.New("seal: fewer shares than the threshold")
)

// ShareError is an error about the share of one custodian.
type ShareError struct {
	Custodian string
	Err       error
}

func (e *ShareError) Error() string {
	return fmt.Sprintf("share of custodian %q: %v", e.Custodian, e.Err)
}
func (e *ShareError) Unwrap() error { return e.Err }

const (
	custodyMagic  = "chancery-custody/v1\n"
	shareMagic    = "chancery-share/v1\n"
	groupR255     = 0x01
	maxCustodians = 255
	maxSealedLen  = 64 << 10
	ageMagic      = "age-encryption.org/v1\n"
)

// Custodian is one holder of a share: an id and the age recipient (X25519
// "age1…" or hybrid post-quantum "age1pq1…") the share is sealed to.
type Custodian struct{ ID, Recipient string }

type custodyEntry struct {
	Custodian
	index  uint8
	sealed []byte
}

// CustodyPackage is a root key split among custodians: the guest, the
// threshold M, the Feldman commitments to the sharing polynomial, and one
// age-sealed share per custodian. It holds no secret in clear and may be
// published (to sites, to custodians, in backups).
type CustodyPackage struct {
	guest      string
	threshold  int
	commitment [][32]byte
	elems      []group.Element
	entries    []custodyEntry
	id         [32]byte
}

// Guest is the guest state whose root the package splits.
func (p *CustodyPackage) Guest() string { return p.guest }

// Threshold is M: how many shares recover the root.
func (p *CustodyPackage) Threshold() int { return p.threshold }

// Custodians lists the custodians in share-index order (index = position+1).
func (p *CustodyPackage) Custodians() []Custodian {
	out := make([]Custodian, len(p.entries))
	for i, e := range p.entries {
		out[i] = e.Custodian
	}
	return out
}

// RootCommitment is s·G, equal to RootKey.Commitment of the split root.
func (p *CustodyPackage) RootCommitment() [32]byte { return p.commitment[0] }

// PackageID identifies the package: SHA-256 of "chancery/seal/v1
// custody-package" 0x00 ‖ the package encoding without the sealed shares.
// Every share carries it, so a share of another package (or of another
// split of the same root) is refused.
func (p *CustodyPackage) PackageID() [32]byte { return p.id }

func (p *CustodyPackage) entry(custodian string) (*custodyEntry, bool) {
	for i := range p.entries {
		if p.entries[i].ID == custodian {
			return &p.entries[i], true
		}
	}
	return nil, false
}

// appendPublic encodes everything but the sealed shares; withSealed adds
// them, giving the package's full encoding.
func (p *CustodyPackage) appendEncoding(b []byte, withSealed bool) []byte {
	b = append(b, custodyMagic...)
	b = append(b, groupR255)
	b = appendLP(b, p.guest)
	b = append(b, byte(p.threshold), byte(len(p.entries)))
	for _, c := range p.commitment {
		b = append(b, c[:]...)
	}
	for _, e := range p.entries {
		b = appendLP(b, e.ID)
		b = appendLP(b, e.Recipient)
		b = append(b, e.index)
		if withSealed {
			b = append(b, byte(len(e.sealed)>>24), byte(len(e.sealed)>>16), byte(len(e.sealed)>>8), byte(len(e.sealed)))
			b = append(b, e.sealed...)
		}
	}
	return b
}

func (p *CustodyPackage) computeID() {
	b := append([]byte(labelPackageID), 0)
	p.id = sha256.Sum256(p.appendEncoding(b, false))
}

// parseRecipient accepts exactly one age recipient on one line.
func parseRecipient(s string) (age.Recipient, error) {
	if s == "" || strings.ContainsAny(s, "\r\n#") {
		return nil, errors.New("want exactly one age recipient on one line")
	}
	rs, err := age.ParseRecipients(strings.NewReader(s))
	if err != nil {
		return nil, fmt.Errorf("not an age recipient: %w", err)
	}
	if len(rs) != 1 {
		return nil, errors.New("want exactly one age recipient")
	}
	return rs[0], nil
}

func checkCustodians(threshold int, custodians []Custodian) ([]age.Recipient, error) {
	n := len(custodians)
	if n < 1 || n > maxCustodians {
		return nil, fmt.Errorf("%d custodians, want 1..%d", n, maxCustodians)
	}
	if threshold < 1 || threshold > n {
		return nil, fmt.Errorf("threshold %d, want 1..%d (the number of custodians)", threshold, n)
	}
	seen := map[string]bool{}
	rcpts := make([]age.Recipient, n)
	for i, c := range custodians {
		if c.ID == "" || checkNames(c.ID, c.Recipient) != nil {
			return nil, fmt.Errorf("custodian %d: empty or overlong id", i)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("custodian %q listed twice", c.ID)
		}
		seen[c.ID] = true
		r, err := parseRecipient(c.Recipient)
		if err != nil {
			return nil, fmt.Errorf("custodian %q recipient: %w", c.ID, err)
		}
		rcpts[i] = r
	}
	return rcpts, nil
}

// Split shares r's scalar among custodians so that any threshold of them
// recover it (Shamir over Ristretto255's scalar field, with Feldman
// commitments so each share can be checked alone), and seals each share to
// its custodian's age recipient. Custodian i (from 0) gets index i+1.
//
// circl's sharing polynomial keeps copies of its coefficients, which it
// offers no way to zero; they become garbage when Split returns.
func Split(guest string, r *RootKey, threshold int, custodians []Custodian) (*CustodyPackage, error) {
	if guest == "" || checkNames(guest) != nil {
		return nil, errors.New("seal: split: empty or overlong guest id")
	}
	if r == nil || r.wiped {
		return nil, fmt.Errorf("seal: split root of %s: %w", guest, ErrWiped)
	}
	rcpts, err := checkCustodians(threshold, custodians)
	if err != nil {
		return nil, fmt.Errorf("seal: split root of %s: %w", guest, err)
	}
	ss := secretsharing.New(rand.Reader, uint(threshold-1), r.s)
	comm := ss.CommitSecret()
	p := &CustodyPackage{guest: guest, threshold: threshold, elems: comm}
	for i, c := range comm {
		b, err := c.MarshalBinaryCompress()
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("seal: split root of %s: encode commitment %d: %v", guest, i, err)
		}
		p.commitment = append(p.commitment, [32]byte(b))
	}
	for i, c := range custodians {
		p.entries = append(p.entries, custodyEntry{Custodian: c, index: uint8(i + 1)})
	}
	p.computeID()
	id := suite.NewScalar()
	for i := range p.entries {
		e := &p.entries[i]
		cs := ss.ShareWithID(id.SetUint64(uint64(e.index)))
		s := &Share{guest: guest, packageID: p.id, custodian: e.ID, index: e.index, value: cs.Value}
		plain, err := s.Marshal()
		s.Wipe()
		if err != nil {
			return nil, fmt.Errorf("seal: split root of %s: %w", guest, err)
		}
		e.sealed, err = ageSeal(plain, rcpts[i])
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("seal: split root of %s: seal share of custodian %q: %w", guest, e.ID, err)
		}
	}
	return p, nil
}

// Marshal encodes the package:
//
//	"chancery-custody/v1\n" ‖ group u8 (1 = ristretto255) ‖ lp(guest)
//	‖ threshold u8 ‖ n u8 ‖ threshold × 32-byte commitment
//	‖ n × (lp(custodian id) ‖ lp(recipient) ‖ index u8 ‖ len u32 ‖ age file)
func (p *CustodyPackage) Marshal() ([]byte, error) {
	if p == nil || len(p.entries) == 0 {
		return nil, errors.New("seal: marshal empty custody package")
	}
	return p.appendEncoding(nil, true), nil
}

// ParseCustodyPackage decodes a package strictly: known version and group,
// canonical commitments, 1 ≤ threshold ≤ n, unique custodians with valid
// recipients, indices 1..n in order, age files, no trailing bytes.
func ParseCustodyPackage(b []byte) (*CustodyPackage, error) {
	p, err := parseCustodyPackage(b)
	if err != nil {
		return nil, fmt.Errorf("seal: parse custody package: %w", err)
	}
	return p, nil
}

func parseCustodyPackage(b []byte) (*CustodyPackage, error) {
	r := reader{b: b}
	if m := r.bytes(len(custodyMagic), "magic"); r.err == nil && string(m) != custodyMagic {
		return nil, errors.New("not a chancery custody package (bad magic or version)")
	}
	if g := r.u8("group"); r.err == nil && g != groupR255 {
		return nil, fmt.Errorf("unknown group %d", g)
	}
	p := &CustodyPackage{guest: r.lp("guest")}
	p.threshold = int(r.u8("threshold"))
	n := int(r.u8("custodian count"))
	if r.err != nil {
		return nil, r.err
	}
	if p.guest == "" {
		return nil, errors.New("empty guest")
	}
	if n < 1 || p.threshold < 1 || p.threshold > n {
		return nil, fmt.Errorf("threshold %d of %d custodians", p.threshold, n)
	}
	for i := range p.threshold {
		raw := r.bytes(32, "commitment")
		if r.err != nil {
			return nil, r.err
		}
		el := suite.NewElement()
		if err := el.UnmarshalBinary(raw); err != nil {
			return nil, fmt.Errorf("commitment %d is not a group element", i)
		}
		if re, err := el.MarshalBinaryCompress(); err != nil || !bytes.Equal(re, raw) {
			return nil, fmt.Errorf("commitment %d is not canonically encoded", i)
		}
		if i == 0 && el.IsIdentity() {
			return nil, errors.New("root commitment is the identity (zero secret)")
		}
		p.commitment = append(p.commitment, [32]byte(raw))
		p.elems = append(p.elems, el)
	}
	seen := map[string]bool{}
	for i := range n {
		var e custodyEntry
		e.ID = r.lp("custodian id")
		e.Recipient = r.lp("recipient")
		e.index = r.u8("index")
		size := r.u32("sealed share length")
		if r.err != nil {
			return nil, r.err
		}
		if size > maxSealedLen {
			return nil, fmt.Errorf("custodian %q: sealed share of %d bytes", e.ID, size)
		}
		e.sealed = bytes.Clone(r.bytes(int(size), "sealed share"))
		if r.err != nil {
			return nil, r.err
		}
		if e.ID == "" || seen[e.ID] {
			return nil, fmt.Errorf("custodian %d: empty or repeated id %q", i, e.ID)
		}
		seen[e.ID] = true
		if int(e.index) != i+1 {
			return nil, fmt.Errorf("custodian %q: index %d, want %d", e.ID, e.index, i+1)
		}
		if _, err := parseRecipient(e.Recipient); err != nil {
			return nil, fmt.Errorf("custodian %q recipient: %w", e.ID, err)
		}
		if !bytes.HasPrefix(e.sealed, []byte(ageMagic)) {
			return nil, fmt.Errorf("custodian %q: sealed share is not an age file", e.ID)
		}
		p.entries = append(p.entries, e)
	}
	if err := r.done("custody package"); err != nil {
		return nil, err
	}
	p.computeID()
	return p, nil
}

// Share is one custodian's share of the root scalar. It is secret: its
// Marshal output must only ever be written sealed (see SealTo).
type Share struct {
	guest     string
	packageID [32]byte
	custodian string
	index     uint8
	value     group.Scalar
	wiped     bool
}

// Guest, PackageID, Custodian and Index describe the share; none is secret.
func (s *Share) Guest() string            { return s.guest }
func (s *Share) PackageID() [32]byte      { return s.packageID }
func (s *Share) Custodian() string        { return s.custodian }
func (s *Share) Index() int               { return int(s.index) }
func (s *Share) shareErr(err error) error { return &ShareError{Custodian: s.custodian, Err: err} }

// Marshal encodes the share (secret!):
//
//	"chancery-share/v1\n" ‖ lp(guest) ‖ package id (32) ‖ lp(custodian id)
//	‖ index u8 ‖ scalar (32, little-endian canonical)
func (s *Share) Marshal() ([]byte, error) {
	if s == nil || s.wiped || s.value == nil {
		return nil, ErrWiped
	}
	v, err := s.value.MarshalBinary()
	defer clear(v)
	if err != nil {
		return nil, fmt.Errorf("encode share of custodian %q: %w", s.custodian, err)
	}
	b := make([]byte, 0, len(shareMagic)+4+len(s.guest)+len(s.custodian)+32+1+32)
	b = append(b, shareMagic...)
	b = appendLP(b, s.guest)
	b = append(b, s.packageID[:]...)
	b = appendLP(b, s.custodian)
	b = append(b, s.index)
	return append(b, v...), nil
}

// ParseShare decodes a share strictly (version, canonical scalar, non-zero
// index, no trailing bytes). It does not verify it: use VerifyShare.
func ParseShare(b []byte) (*Share, error) {
	r := reader{b: b}
	if m := r.bytes(len(shareMagic), "magic"); r.err == nil && string(m) != shareMagic {
		return nil, errors.New("seal: parse share: not a chancery share (bad magic or version)")
	}
	s := &Share{guest: r.lp("guest")}
	copy(s.packageID[:], r.bytes(32, "package id"))
	s.custodian = r.lp("custodian id")
	s.index = r.u8("index")
	raw := r.bytes(32, "scalar")
	if err := r.done("share"); err != nil {
		return nil, fmt.Errorf("seal: parse share: %w", err)
	}
	if s.guest == "" || s.custodian == "" || s.index == 0 {
		return nil, errors.New("seal: parse share: empty guest, empty custodian or index 0")
	}
	s.value = suite.NewScalar()
	if err := s.value.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("seal: parse share of custodian %q: scalar not canonical", s.custodian)
	}
	return s, nil
}

// Wipe zeroes the share's scalar; the share is unusable afterwards.
func (s *Share) Wipe() {
	if s == nil {
		return
	}
	if s.value != nil {
		s.value.SetUint64(0)
	}
	s.wiped = true
}

// SealTo seals the share to an age recipient: the only form in which a
// share may leave memory (an export for the activating site, for example).
func (s *Share) SealTo(rcpt age.Recipient) ([]byte, error) {
	plain, err := s.Marshal()
	defer clear(plain)
	if err != nil {
		return nil, err
	}
	out, err := ageSeal(plain, rcpt)
	if err != nil {
		return nil, s.shareErr(err)
	}
	return out, nil
}

// OpenSealedShare opens a share sealed by SealTo. It does not verify it.
func OpenSealedShare(sealed []byte, id age.Identity) (*Share, error) {
	plain, err := ageOpen(sealed, id, maxSmallFile)
	defer clear(plain)
	if err != nil {
		return nil, fmt.Errorf("seal: open sealed share: %w", err)
	}
	return ParseShare(plain)
}

// VerifyShare checks a share against the package: same guest and package,
// a custodian of the package with that index, and the Feldman equation
// value·G = Σ C_j·index^j. It reveals nothing about the root; a share that
// fails is reported as a *ShareError naming its custodian.
func (p *CustodyPackage) VerifyShare(s *Share) error {
	if s == nil || s.wiped || s.value == nil {
		return ErrWiped
	}
	if s.guest != p.guest || s.packageID != p.id {
		return s.shareErr(fmt.Errorf("%w (share for guest %q package %x, this is guest %q package %x)", ErrWrongPackage, s.guest, s.packageID[:6], p.guest, p.id[:6]))
	}
	e, ok := p.entry(s.custodian)
	if !ok || e.index != s.index {
		return s.shareErr(fmt.Errorf("%w (no custodian with index %d)", ErrWrongPackage, s.index))
	}
	x := suite.NewScalar().SetUint64(uint64(s.index))
	if !secretsharing.Verify(uint(p.threshold-1), secretsharing.Share{ID: x, Value: s.value}, p.elems) {
		return s.shareErr(ErrBadShare)
	}
	return nil
}

// OpenShare decrypts custodian's share with their age identity and
// verifies it against the commitment. The custodian learns their share
// and that it is sound, never the root.
func (p *CustodyPackage) OpenShare(custodian string, id age.Identity) (*Share, error) {
	e, ok := p.entry(custodian)
	if !ok {
		return nil, fmt.Errorf("seal: open share: no custodian %q in the custody package of %s", custodian, p.guest)
	}
	plain, err := ageOpen(e.sealed, id, maxSmallFile)
	defer clear(plain)
	if err != nil {
		return nil, &ShareError{Custodian: custodian, Err: err}
	}
	s, err := ParseShare(plain)
	if err != nil {
		return nil, &ShareError{Custodian: custodian, Err: err}
	}
	if s.custodian != custodian {
		s.Wipe()
		return nil, &ShareError{Custodian: custodian, Err: fmt.Errorf("%w (sealed share names custodian %q)", ErrWrongPackage, s.custodian)}
	}
	if err := p.VerifyShare(s); err != nil {
		s.Wipe()
		return nil, err
	}
	return s, nil
}

// Combine recovers the root from at least Threshold shares of distinct
// custodians. Every share is verified first; if any fails, nothing is
// recovered and the error lists each failing custodian (errors.As finds a
// *ShareError, errors.Is ErrBadShare or ErrWrongPackage), so the caller can
// drop those shares and retry. Fewer than Threshold valid shares fail with
// ErrTooFewShares. The shares are left intact: wipe them after.
func (p *CustodyPackage) Combine(shares []*Share) (*RootKey, error) {
	var errs []error
	seen := map[string]bool{}
	var good []*Share
	for _, s := range shares {
		if err := p.VerifyShare(s); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[s.custodian] {
			errs = append(errs, s.shareErr(errors.New("given twice")))
			continue
		}
		seen[s.custodian] = true
		good = append(good, s)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("seal: combine shares of %s: %d rejected: %w", p.guest, len(errs), errors.Join(errs...))
	}
	if len(good) < p.threshold {
		return nil, fmt.Errorf("seal: combine shares of %s: %d of threshold %d: %w", p.guest, len(good), p.threshold, ErrTooFewShares)
	}
	cs := make([]secretsharing.Share, p.threshold)
	for i, s := range good[:p.threshold] {
		cs[i] = secretsharing.Share{ID: suite.NewScalar().SetUint64(uint64(s.index)), Value: s.value.Copy()}
	}
	defer func() {
		for _, c := range cs {
			c.Value.SetUint64(0)
		}
	}()
	secret, err := secretsharing.Recover(uint(p.threshold-1), cs)
	if err != nil {
		return nil, fmt.Errorf("seal: combine shares of %s: %w", p.guest, err)
	}
	defer secret.SetUint64(0)
	// Verified shares cannot disagree with the commitment; check anyway, as
	// the last line before a wrong root seals anything.
	got, err := suite.NewElement().MulGen(secret).MarshalBinaryCompress()
	if err != nil || !bytes.Equal(got, p.commitment[0][:]) {
		return nil, fmt.Errorf("seal: combine shares of %s: recovered root does not match the root commitment", p.guest)
	}
	return rootFromScalar(secret)
}

// WriteFile writes the package to path (mode 0644: it holds no secret in
// clear), atomically and never over an existing file.
func (p *CustodyPackage) WriteFile(path string) error {
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteNew(path, b, 0o644); err != nil {
		return fmt.Errorf("write custody package %s: %w", path, err)
	}
	return nil
}

// ReadCustodyPackageFile reads and strictly parses a package file.
func ReadCustodyPackageFile(path string) (*CustodyPackage, error) {
	b, err := fsutil.Read(path, maxPackageFile)
	if err != nil {
		return nil, fmt.Errorf("read custody package %s: %w", path, err)
	}
	p, err := ParseCustodyPackage(b)
	if err != nil {
		return nil, fmt.Errorf("read custody package %s: %w", path, err)
	}
	return p, nil
}

// WriteShareFile writes s sealed to rcpt at path: mode 0600, atomically,
// never over an existing file. There is no way to write a share in clear.
func WriteShareFile(path string, s *Share, rcpt age.Recipient) error {
	if rcpt == nil {
		return fmt.Errorf("write share %s: no recipient: refusing to write a share in clear", path)
	}
	b, err := s.SealTo(rcpt)
	if err != nil {
		return fmt.Errorf("write share %s: %w", path, err)
	}
	if err := fsutil.WriteNew(path, b, 0o600); err != nil {
		return fmt.Errorf("write share %s: %w", path, err)
	}
	return nil
}

// ReadShareFile opens a share file written by WriteShareFile with id. It
// does not verify it against a package.
func ReadShareFile(path string, id age.Identity) (*Share, error) {
	// A sealed share travels between people and machines, so its file mode
	// is not held against it: without the identity it is ciphertext.
	b, err := fsutil.Read(path, maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("read share %s: %w", path, err)
	}
	s, err := OpenSealedShare(b, id)
	if err != nil {
		return nil, fmt.Errorf("read share %s: %w", path, err)
	}
	return s, nil
}
