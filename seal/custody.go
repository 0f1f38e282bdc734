package seal

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
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
	// ErrOldCustodyFormat: a version 1 custody package or share. Version 1
	// carried Feldman commitments (s·G), from which a future quantum
	// computer recovers the root; it is refused, never read. The remedy is
	// a new root, split afresh (docs/seal.md § Migrating from version 1).
	ErrOldCustodyFormat = errors.New("seal: version 1 custody format (Feldman commitments, which give the root to a future quantum computer) is no longer accepted: " +
		"draw a new root (custody new-root), split it (custody split) and re-seal the state under it; see docs/seal.md § Migrating from version 1")
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
	custodyMagic   = "chancery-custody/v2\n"
	shareMagic     = "chancery-share/v2\n"
	custodyMagicV1 = "chancery-custody/v1\n"
	shareMagicV1   = "chancery-share/v1\n"
	// schemeHashR255: Shamir over Ristretto255's scalar field with SHA-256
	// hash commitments to each share and an HKDF check value for R. No
	// group element is ever published.
	schemeHashR255 = 0x02
	saltSize       = 32
	maxCustodians  = 255
	maxSealedLen   = 64 << 10
	ageMagic       = "age-encryption.org/v1\n"
)

// Custodian is one holder of a share: an id and the age recipient (X25519
// "age1…" or hybrid post-quantum "age1pq1…") the share is sealed to.
type Custodian struct{ ID, Recipient string }

type custodyEntry struct {
	Custodian
	index  uint8
	commit [32]byte // shareCommitment(salt, guest, index, f(index))
	sealed []byte
}

// CustodyPackage is a root key split among custodians: the guest, the
// threshold M, a random salt, the root check value, and per custodian a
// hash commitment to their share and the share sealed with age. It holds
// no secret in clear and no group element: every public value is a hash
// of a secret of at least 252 bits, so neither a classical nor a quantum
// adversary learns s or R from it (a quantum one gains at most Grover's
// square-root speed-up on a 2^252 search). It may be given to sites.
type CustodyPackage struct {
	guest     string
	threshold int
	salt      [saltSize]byte
	rootCheck [32]byte
	entries   []custodyEntry
	id        [32]byte
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

// RootCommitment is the root check value, equal to RootKey.Commitment of
// the split root (an HKDF output of R, not a group element).
func (p *CustodyPackage) RootCommitment() [32]byte { return p.rootCheck }

// PackageID identifies the package: SHA-256 of "chancery/seal/v2
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

// appendEncoding encodes everything but the sealed shares; withSealed
// adds them, giving the package's full encoding.
func (p *CustodyPackage) appendEncoding(b []byte, withSealed bool) []byte {
	b = append(b, custodyMagic...)
	b = append(b, schemeHashR255)
	b = appendLP(b, p.guest)
	b = append(b, byte(p.threshold), byte(len(p.entries)))
	b = append(b, p.salt[:]...)
	b = append(b, p.rootCheck[:]...)
	for _, e := range p.entries {
		b = appendLP(b, e.ID)
		b = appendLP(b, e.Recipient)
		b = append(b, e.index)
		b = append(b, e.commit[:]...)
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

// shareCommitment is the public hash commitment to custodian index's share
// value v (32 bytes, little-endian canonical):
//
//	SHA-256("chancery/seal/v2 share-commit" 0x00 ‖ salt ‖ lp(guest) ‖ index u8 ‖ v)
//
// v is a uniformly random scalar (≈2^252 values), so the hash hides it;
// the per-package salt keeps one precomputation from serving every package.
func shareCommitment(salt [saltSize]byte, guest string, index uint8, v group.Scalar) ([32]byte, error) {
	vb, err := v.MarshalBinary()
	defer clear(vb)
	if err != nil {
		return [32]byte{}, fmt.Errorf("encode share %d: %w", index, err)
	}
	h := sha256.New()
	h.Write([]byte(labelShareCommit))
	h.Write([]byte{0})
	h.Write(salt[:])
	h.Write(appendLP(nil, guest))
	h.Write([]byte{index})
	h.Write(vb)
	return [32]byte(h.Sum(nil)), nil
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
// recover it (Shamir over Ristretto255's scalar field, with a hash
// commitment per share so each share can be checked alone, and R's check
// value so a recombined root is checked whole), and seals each share to its
// custodian's age recipient. Custodian i (from 0) gets index i+1.
//
// Hash commitments, unlike Feldman's, do not let a custodian check that the
// shares lie on one polynomial of degree M−1: that trusts the dealer (the
// guest's own home, splitting its own root). Combine catches a dealing
// that does not by the root check.
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
	check, err := r.Commitment()
	if err != nil {
		return nil, fmt.Errorf("seal: split root of %s: %w", guest, err)
	}
	p := &CustodyPackage{guest: guest, threshold: threshold, rootCheck: check}
	if _, err := rand.Read(p.salt[:]); err != nil {
		return nil, fmt.Errorf("seal: split root of %s: salt: %w", guest, err)
	}
	ss := secretsharing.New(rand.Reader, uint(threshold-1), r.s)
	id := suite.NewScalar()
	values := make([]group.Scalar, len(custodians))
	defer func() {
		for _, v := range values {
			if v != nil {
				v.SetUint64(0)
			}
		}
	}()
	for i, c := range custodians {
		e := custodyEntry{Custodian: c, index: uint8(i + 1)}
		values[i] = ss.ShareWithID(id.SetUint64(uint64(e.index))).Value
		if e.commit, err = shareCommitment(p.salt, guest, e.index, values[i]); err != nil {
			return nil, fmt.Errorf("seal: split root of %s: %w", guest, err)
		}
		p.entries = append(p.entries, e)
	}
	p.computeID()
	for i := range p.entries {
		e := &p.entries[i]
		s := &Share{guest: guest, packageID: p.id, custodian: e.ID, index: e.index, value: values[i].Copy()}
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
//	"chancery-custody/v2\n" ‖ scheme u8 (2) ‖ lp(guest) ‖ threshold u8 ‖ n u8
//	‖ salt (32) ‖ root check (32)
//	‖ n × (lp(custodian id) ‖ lp(recipient) ‖ index u8 ‖ share commitment (32)
//	       ‖ len u32 ‖ age file)
func (p *CustodyPackage) Marshal() ([]byte, error) {
	if p == nil || len(p.entries) == 0 {
		return nil, errors.New("seal: marshal empty custody package")
	}
	return p.appendEncoding(nil, true), nil
}

// ParseCustodyPackage decodes a package strictly: known version and
// scheme, 1 ≤ threshold ≤ n, unique custodians with valid recipients,
// indices 1..n in order, age files, no trailing bytes. A version 1
// (Feldman) package fails with ErrOldCustodyFormat.
func ParseCustodyPackage(b []byte) (*CustodyPackage, error) {
	p, err := parseCustodyPackage(b)
	if err != nil {
		return nil, fmt.Errorf("seal: parse custody package: %w", err)
	}
	return p, nil
}

func parseCustodyPackage(b []byte) (*CustodyPackage, error) {
	if bytes.HasPrefix(b, []byte(custodyMagicV1)) {
		return nil, ErrOldCustodyFormat
	}
	r := reader{b: b}
	if m := r.bytes(len(custodyMagic), "magic"); r.err == nil && string(m) != custodyMagic {
		return nil, errors.New("not a chancery custody package (bad magic or version)")
	}
	if g := r.u8("scheme"); r.err == nil && g != schemeHashR255 {
		return nil, fmt.Errorf("unknown sharing scheme %d", g)
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
	copy(p.salt[:], r.bytes(saltSize, "salt"))
	copy(p.rootCheck[:], r.bytes(32, "root check"))
	seen := map[string]bool{}
	for i := range n {
		var e custodyEntry
		e.ID = r.lp("custodian id")
		e.Recipient = r.lp("recipient")
		e.index = r.u8("index")
		copy(e.commit[:], r.bytes(32, "share commitment"))
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
//	"chancery-share/v2\n" ‖ lp(guest) ‖ package id (32) ‖ lp(custodian id)
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
// index, no trailing bytes). It does not verify it: use VerifyShare. A
// version 1 share fails with ErrOldCustodyFormat.
func ParseShare(b []byte) (*Share, error) {
	if bytes.HasPrefix(b, []byte(shareMagicV1)) {
		return nil, fmt.Errorf("seal: parse share: %w", ErrOldCustodyFormat)
	}
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
// a custodian of the package with that index, and the custodian's hash
// commitment. It reveals nothing about the root; a share that fails is
// reported as a *ShareError naming its custodian.
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
	c, err := shareCommitment(p.salt, p.guest, s.index, s.value)
	if err != nil {
		return s.shareErr(err)
	}
	if subtle.ConstantTimeCompare(c[:], e.commit[:]) != 1 {
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
	r, err := rootFromScalar(secret)
	if err != nil {
		return nil, fmt.Errorf("seal: combine shares of %s: %w", p.guest, err)
	}
	// Hash commitments check each share, not that the dealer put them on
	// one polynomial: the root check is what proves the result is R.
	got, err := r.Commitment()
	if err != nil || subtle.ConstantTimeCompare(got[:], p.rootCheck[:]) != 1 {
		r.Wipe()
		return nil, fmt.Errorf("seal: combine shares of %s: recovered root does not match the package's root check (shares not dealt on one polynomial)", p.guest)
	}
	return r, nil
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
