package seal

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

type custodianKeys struct {
	list []Custodian
	ids  map[string]age.Identity
}

func custodians(t testing.TB, n int, hybrid bool) custodianKeys {
	t.Helper()
	ck := custodianKeys{ids: map[string]age.Identity{}}
	for i := range n {
		id := string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "-custodian"
		var rcpt string
		if hybrid && i%2 == 0 {
			k, err := age.GenerateHybridIdentity()
			if err != nil {
				t.Fatal(err)
			}
			rcpt, ck.ids[id] = k.Recipient().String(), k
		} else {
			k, err := age.GenerateX25519Identity()
			if err != nil {
				t.Fatal(err)
			}
			rcpt, ck.ids[id] = k.Recipient().String(), k
		}
		ck.list = append(ck.list, Custodian{ID: id, Recipient: rcpt})
	}
	return ck
}

func openAll(t testing.TB, p *CustodyPackage, ck custodianKeys) []*Share {
	t.Helper()
	var out []*Share
	for _, c := range ck.list {
		s, err := p.OpenShare(c.ID, ck.ids[c.ID])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestCustodyAnyThresholdSubset: for random n, threshold and subsets, any
// subset of at least threshold shares recovers R exactly; any smaller one
// is refused.
func TestCustodyAnyThresholdSubset(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 9).Draw(rt, "n")
		m := rapid.IntRange(1, n).Draw(rt, "threshold")
		r := newRoot(t)
		ck := custodians(t, n, false)
		p, err := Split("demo-republic", r, m, ck.list)
		if err != nil {
			rt.Fatal(err)
		}
		// Through the wire format, as custodians and sites see it.
		enc, _ := p.Marshal()
		if p, err = ParseCustodyPackage(enc); err != nil {
			rt.Fatal(err)
		}
		shares := openAll(t, p, ck)
		perm := rapid.Permutation(shares).Draw(rt, "order")
		k := rapid.IntRange(m, n).Draw(rt, "subset size")
		got, err := p.Combine(perm[:k])
		if err != nil {
			rt.Fatalf("combine %d of %d (threshold %d): %v", k, n, m, err)
		}
		if got.key != r.key || !got.s.IsEqual(r.s) {
			rt.Fatalf("combine %d of %d (threshold %d) recovered another root", k, n, m)
		}
		if m > 1 {
			few := rapid.IntRange(0, m-1).Draw(rt, "too few")
			if _, err := p.Combine(perm[:few]); !errors.Is(err, ErrTooFewShares) {
				rt.Fatalf("combine %d of threshold %d: %v, want ErrTooFewShares", few, m, err)
			}
		}
	})
}

func TestCustodyHybridRecipients(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 4, true)
	if !strings.HasPrefix(ck.list[0].Recipient, "age1pq1") {
		t.Fatalf("want a hybrid recipient, got %.10s", ck.list[0].Recipient)
	}
	p, err := Split("demo-republic", r, 3, ck.list)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Combine(openAll(t, p, ck)[1:])
	if err != nil || got.key != r.key {
		t.Fatal("hybrid custody roundtrip", err)
	}
	// A custodian cannot open another custodian's share.
	if _, err := p.OpenShare(ck.list[0].ID, ck.ids[ck.list[1].ID]); err == nil {
		t.Fatal("custodian b opened a's share")
	}
}

func TestCustodyCorruptShareNamed(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 5, false)
	p, err := Split("demo-republic", r, 3, ck.list)
	if err != nil {
		t.Fatal(err)
	}
	shares := openAll(t, p, ck)
	// Corrupt c's scalar: as if its holder, or the wire, altered it.
	bad := shares[2]
	bad.value.Add(bad.value, suite.NewScalar().SetUint64(1))
	err = p.VerifyShare(bad)
	var se *ShareError
	if !errors.Is(err, ErrBadShare) || !errors.As(err, &se) || se.Custodian != "c-custodian" {
		t.Fatalf("VerifyShare of corrupted share: %v", err)
	}
	_, err = p.Combine(shares[:3])
	if !errors.Is(err, ErrBadShare) || !errors.As(err, &se) || se.Custodian != "c-custodian" || !strings.Contains(err.Error(), `"c-custodian"`) {
		t.Fatalf("Combine with corrupted share: %v", err)
	}
	for _, s := range shares[:2] {
		if strings.Contains(err.Error(), s.custodian) {
			t.Errorf("good share of %s blamed: %v", s.custodian, err)
		}
	}
	// Without it, the others still recover.
	if got, err := p.Combine([]*Share{shares[0], shares[1], shares[3]}); err != nil || got.key != r.key {
		t.Fatal("recovery without the bad share", err)
	}
	// A share claiming another custodian's index.
	s4 := shares[4]
	s4.index = 2
	if err := p.VerifyShare(s4); !errors.Is(err, ErrWrongPackage) {
		t.Errorf("share with a wrong index: %v", err)
	}
	// The same share twice does not count twice.
	if _, err := p.Combine([]*Share{shares[0], shares[0], shares[1]}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate share: %v", err)
	}
	// A damaged sealed share in the package is reported for its custodian.
	enc, _ := p.Marshal()
	i := bytes.Index(enc, []byte("d-custodian"))
	enc[i+400] ^= 1
	p2, err := ParseCustodyPackage(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.OpenShare("d-custodian", ck.ids["d-custodian"]); !errors.As(err, &se) || se.Custodian != "d-custodian" {
		t.Errorf("damaged sealed share: %v", err)
	}
}

func TestCustodyForeignShareRefused(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 3, false)
	p1, _ := Split("demo-republic", r, 2, ck.list)
	p2, _ := Split("demo-republic", r, 2, ck.list) // same root, new polynomial
	p3, _ := Split("other-republic", r, 2, ck.list)
	if p1.PackageID() == p2.PackageID() || p1.RootCommitment() != p2.RootCommitment() {
		t.Fatal("two splits of one root: ids equal or root commitments differ")
	}
	s1 := openAll(t, p1, ck)
	s3 := openAll(t, p3, ck)
	for name, tc := range map[string]struct {
		p *CustodyPackage
		s *Share
	}{
		"other split of same root": {p2, s1[0]},
		"other guest":              {p1, s3[0]},
	} {
		err := tc.p.VerifyShare(tc.s)
		var se *ShareError
		if !errors.Is(err, ErrWrongPackage) || !errors.As(err, &se) || se.Custodian != tc.s.custodian {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := tc.p.Combine([]*Share{tc.s, openAll(t, tc.p, ck)[1]}); err == nil {
			t.Errorf("%s: combined", name)
		}
	}
	// A share relabelled with p2's id still fails the commitment check:
	// the label is not what makes it valid.
	forged := *s1[0]
	forged.packageID = p2.PackageID()
	forged.value = s1[0].value.Copy()
	if err := p2.VerifyShare(&forged); !errors.Is(err, ErrBadShare) {
		t.Errorf("relabelled share: %v", err)
	}
}

// TestCustodianCheckLearnsNothingOfR: what a custodian handles while
// checking — the package and their own opened share — contains neither R
// nor s, and alone (threshold ≥ 2) cannot be combined.
func TestCustodianCheckLearnsNothingOfR(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 3, false)
	p, _ := Split("demo-republic", r, 2, ck.list)
	// The custodian has only the package bytes and their identity.
	enc, _ := p.Marshal()
	pub, err := ParseCustodyPackage(enc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pub.OpenShare("a-custodian", ck.ids["a-custodian"])
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.VerifyShare(s); err != nil {
		t.Fatal(err)
	}
	sb, _ := r.s.MarshalBinary()
	sh, _ := s.Marshal()
	for name, hay := range map[string][]byte{"package": enc, "share": sh} {
		if bytes.Contains(hay, r.key[:]) || bytes.Contains(hay, sb) {
			t.Errorf("%s contains the root", name)
		}
	}
	if s.value.IsEqual(r.s) {
		t.Error("share equals the secret")
	}
	if _, err := pub.Combine([]*Share{s}); !errors.Is(err, ErrTooFewShares) {
		t.Errorf("one share combined: %v", err)
	}
	c, _ := r.Commitment()
	if c != pub.RootCommitment() {
		t.Error("root commitment differs from the package's")
	}
}

func TestSplitRefuses(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 3, false)
	dup := append([]Custodian{}, ck.list...)
	dup[2].ID = dup[0].ID
	cases := map[string]struct {
		guest string
		t     int
		cs    []Custodian
	}{
		"no guest":        {"", 2, ck.list},
		"threshold 0":     {"g", 0, ck.list},
		"threshold > n":   {"g", 4, ck.list},
		"no custodians":   {"g", 1, nil},
		"duplicate id":    {"g", 2, dup},
		"bad recipient":   {"g", 1, []Custodian{{ID: "x", Recipient: "age1nope"}}},
		"two recipients":  {"g", 1, []Custodian{{ID: "x", Recipient: ck.list[0].Recipient + "\n" + ck.list[1].Recipient}}},
		"empty custodian": {"g", 1, []Custodian{{ID: "", Recipient: ck.list[0].Recipient}}},
	}
	for name, tc := range cases {
		if _, err := Split(tc.guest, r, tc.t, tc.cs); err == nil {
			t.Errorf("%s: Split succeeded", name)
		}
	}
	r.Wipe()
	if _, err := Split("g", r, 1, ck.list); !errors.Is(err, ErrWiped) {
		t.Errorf("split of a wiped root: %v", err)
	}
}

func TestCustodyPackageStrict(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 3, false)
	p, _ := Split("demo-republic", r, 2, ck.list)
	enc, _ := p.Marshal()
	back, err := ParseCustodyPackage(enc)
	if err != nil {
		t.Fatal(err)
	}
	re, _ := back.Marshal()
	if !bytes.Equal(re, enc) || back.PackageID() != p.PackageID() {
		t.Fatal("package does not roundtrip")
	}
	mutate := map[string]func(b []byte) []byte{
		"trailing":      func(b []byte) []byte { return append(b, 0) },
		"truncated":     func(b []byte) []byte { return b[:len(b)-1] },
		"version":       func(b []byte) []byte { b[len("chancery-custody/v")] = '3'; return b },
		"scheme":        func(b []byte) []byte { b[len(custodyMagic)] = 1; return b },
		"threshold 0":   func(b []byte) []byte { b[len(custodyMagic)+3+len("demo-republic")] = 0; return b },
		"threshold > n": func(b []byte) []byte { b[len(custodyMagic)+3+len("demo-republic")] = 4; return b },
		"empty":         func(b []byte) []byte { return nil },
	}
	for name, m := range mutate {
		if _, err := ParseCustodyPackage(m(bytes.Clone(enc))); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// Changing any public field changes the package id, which every share
	// carries: a tampered package refuses its own shares.
	i := bytes.Index(enc, []byte("b-custodian"))
	tampered := bytes.Clone(enc)
	copy(tampered[i:], "z-custodian")
	tp, err := ParseCustodyPackage(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.OpenShare("a-custodian", ck.ids["a-custodian"]); !errors.Is(err, ErrWrongPackage) {
		t.Errorf("share of a tampered package: %v", err)
	}
}

func TestShareFiles(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 2, false)
	p, _ := Split("demo-republic", r, 2, ck.list)
	dir := t.TempDir()
	if err := p.WriteFile(filepath.Join(dir, "pkg")); err != nil {
		t.Fatal(err)
	}
	p2, err := ReadCustodyPackageFile(filepath.Join(dir, "pkg"))
	if err != nil || p2.PackageID() != p.PackageID() {
		t.Fatal("package file", err)
	}
	site, _ := age.GenerateX25519Identity()
	var paths []string
	for _, s := range openAll(t, p, ck) {
		path := filepath.Join(dir, s.custodian+".share")
		if err := WriteShareFile(path, s, site.Recipient()); err != nil {
			t.Fatal(err)
		}
		if err := WriteShareFile(path, s, site.Recipient()); err == nil {
			t.Fatal("share file overwritten")
		}
		if err := WriteShareFile(path+"2", s, nil); err == nil {
			t.Fatal("share written without a recipient")
		}
		sh, _ := s.Marshal()
		raw, _ := fsutil.Read(path, maxSmallFile)
		if bytes.Contains(raw, sh[len(sh)-32:]) {
			t.Fatal("share file holds the scalar in clear")
		}
		paths = append(paths, path)
	}
	var shares []*Share
	for _, path := range paths {
		s, err := ReadShareFile(path, site)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	got, err := p2.Combine(shares)
	if err != nil || got.key != r.key {
		t.Fatal("combine from share files", err)
	}
	if _, err := ReadShareFile(paths[0], ck.ids["a-custodian"]); err == nil {
		t.Fatal("share file opened with the wrong identity")
	}
}

func TestShareStrict(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 2, false)
	p, _ := Split("g", r, 2, ck.list)
	s := openAll(t, p, ck)[0]
	b, _ := s.Marshal()
	back, err := ParseShare(b)
	if err != nil || back.index != s.index || !back.value.IsEqual(s.value) || back.packageID != s.packageID {
		t.Fatal("share roundtrip", err)
	}
	nonCanonical := bytes.Clone(b)
	for i := len(b) - 32; i < len(b); i++ {
		nonCanonical[i] = 0xff
	}
	for name, bad := range map[string][]byte{
		"trailing":      append(bytes.Clone(b), 0),
		"truncated":     b[:len(b)-1],
		"magic":         append([]byte("chancery-share/v3\n"), b[len(shareMagic):]...),
		"non-canonical": nonCanonical,
	} {
		if _, err := ParseShare(bad); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	zeroIndex := bytes.Clone(b)
	zeroIndex[len(b)-33] = 0
	if _, err := ParseShare(zeroIndex); err == nil {
		t.Error("index 0 parsed")
	}
}

// TestCustodyPackageHoldsNoGroupElement: the package a host receives
// carries no group element — in particular not s·G, from which a quantum
// computer would recover s — and its public fields are exactly the salt,
// the root check and one 32-byte hash commitment per custodian, none of
// which equals a value an attacker could compute from s alone without R.
func TestCustodyPackageHoldsNoGroupElement(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 4, true)
	p, err := Split("demo-republic", r, 3, ck.list)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := p.Marshal()
	sG, err := suite.NewElement().MulGen(r.s).MarshalBinaryCompress()
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := r.s.MarshalBinary()
	for name, secret := range map[string][]byte{"s·G": sG, "s": sb, "R": r.key[:]} {
		if bytes.Contains(enc, secret) {
			t.Errorf("custody package contains %s", name)
		}
	}
	// Parse the public part field by field: magic, scheme, guest, M, n,
	// salt, root check, then per custodian id, recipient, index, hash
	// commitment and the age file. Nothing else is there.
	rd := reader{b: enc}
	if string(rd.bytes(len(custodyMagic), "magic")) != custodyMagic || rd.u8("scheme") != schemeHashR255 {
		t.Fatal("magic or scheme")
	}
	rd.lp("guest")
	m, n := rd.u8("m"), rd.u8("n")
	rd.bytes(saltSize, "salt")
	check := rd.bytes(32, "root check")
	want, _ := r.Commitment()
	if m != 3 || n != 4 || !bytes.Equal(check, want[:]) {
		t.Fatalf("M %d n %d root check %x, want 3 4 %x", m, n, check, want)
	}
	openShares := openAll(t, p, ck)
	for i := range int(n) {
		rd.lp("id")
		rd.lp("recipient")
		rd.u8("index")
		c := rd.bytes(32, "commitment")
		// The commitment is not a share value, nor a point of one.
		v, _ := openShares[i].value.MarshalBinary()
		vG, _ := suite.NewElement().MulGen(openShares[i].value).MarshalBinaryCompress()
		if bytes.Equal(c, v) || bytes.Equal(c, vG) || bytes.Contains(enc, vG) {
			t.Errorf("custodian %d: package carries the share or share·G", i)
		}
		if el := suite.NewElement(); el.UnmarshalBinary(c) == nil && bytes.Equal(c, sG) {
			t.Errorf("custodian %d: commitment is s·G", i)
		}
		rd.bytes(int(rd.u32("len")), "age file")
	}
	if err := rd.done("package"); err != nil {
		t.Fatal(err)
	}
	// What a package published before lets a quantum adversary do, v2
	// does not: there is no field to run a discrete log on.
	if bytes.Contains(enc, []byte("chancery-custody/v1")) {
		t.Fatal("package written in version 1")
	}
}

// TestCustodyOldFormatRefused: a version 1 (Feldman) package or share is
// refused with ErrOldCustodyFormat, whose message tells the operator what
// to do, and is never read as version 2.
func TestCustodyOldFormatRefused(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 2, false)
	p, _ := Split("demo-republic", r, 2, ck.list)
	enc, _ := p.Marshal()
	old := append([]byte(custodyMagicV1), enc[len(custodyMagic):]...)
	_, err := ParseCustodyPackage(old)
	if !errors.Is(err, ErrOldCustodyFormat) || !strings.Contains(err.Error(), "new-root") || !strings.Contains(err.Error(), "docs/seal.md") {
		t.Fatalf("v1 package: %v", err)
	}
	s := openAll(t, p, ck)[0]
	b, _ := s.Marshal()
	oldShare := append([]byte(shareMagicV1), b[len(shareMagic):]...)
	if _, err := ParseShare(oldShare); !errors.Is(err, ErrOldCustodyFormat) {
		t.Fatalf("v1 share: %v", err)
	}
}

// TestCustodySwappedShareRefused: a share moved to another custodian's
// index, or two custodians' values swapped, fails its hash commitment and
// is named; a dealing off one polynomial is caught by the root check.
func TestCustodySwappedShareRefused(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 3, false)
	p, _ := Split("demo-republic", r, 2, ck.list)
	shares := openAll(t, p, ck)
	a, b := shares[0], shares[1]
	a.value, b.value = b.value, a.value
	for _, s := range []*Share{a, b} {
		var se *ShareError
		if err := p.VerifyShare(s); !errors.Is(err, ErrBadShare) || !errors.As(err, &se) || se.Custodian != s.custodian {
			t.Errorf("swapped share of %s: %v", s.custodian, err)
		}
	}
	if _, err := p.Combine([]*Share{a, b}); !errors.Is(err, ErrBadShare) {
		t.Errorf("combine swapped: %v", err)
	}
	// A dishonest dealing: custodian c's commitment made for a value off
	// the polynomial. c's share verifies, but a and c do not rebuild R.
	a.value, b.value = b.value, a.value
	bad := shares[2]
	bad.value.Add(bad.value, suite.NewScalar().SetUint64(1))
	e, _ := p.entry(bad.custodian)
	e.commit, _ = shareCommitment(p.salt, p.guest, bad.index, bad.value)
	if err := p.VerifyShare(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Combine([]*Share{a, bad}); err == nil || !strings.Contains(err.Error(), "root check") {
		t.Errorf("combine off the polynomial: %v", err)
	}
	if got, err := p.Combine([]*Share{a, b}); err != nil || got.key != r.key {
		t.Errorf("honest pair: %v", err)
	}
}
