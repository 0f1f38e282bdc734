package continuity_test

import (
	"errors"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"filippo.io/age"
	"github.com/cloudflare/circl/group"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/seal"
)

// custody is the Demo Republic's custody package and each custodian's
// real age identity (D/keys/custodian-<id>.key; hybrid post-quantum and
// X25519 alternate).
type custody struct {
	pkg *seal.CustodyPackage
	ids map[string]age.Identity
	ord []string
}

func (r *republic) custody(t *testing.T) custody {
	t.Helper()
	pkg, err := seal.ReadCustodyPackageFile(r.layout.Custody())
	if err != nil {
		t.Fatal(err)
	}
	c := custody{pkg: pkg, ids: map[string]age.Identity{}}
	for _, m := range pkg.Custodians() {
		id, err := keyfile.ReadAgeIdentity(r.layout.Key("custodian", m.ID), r.prot)
		if err != nil {
			t.Fatal(err)
		}
		c.ids[m.ID] = id
		c.ord = append(c.ord, m.ID)
	}
	return c
}

// reseal is what `chancery custody reseal` does for custodian id: open the
// share with their own identity, seal it to the session's recipient.
func (c custody) reseal(t *testing.T, pkg *seal.CustodyPackage, id, recipient string) []byte {
	t.Helper()
	sh, err := pkg.OpenShare(id, c.ids[id])
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Wipe()
	rcpt, err := age.ParseHybridRecipient(recipient)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sh.SealTo(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scalarOf reaches the scalar inside a share (unexported in seal), so the
// test can look at the very value the session wipes rather than a copy.
func scalarOf(t *testing.T, s *seal.Share) group.Scalar { return scalarField(t, s, "value") }

// scalarField reaches the unexported scalar field of *p.
func scalarField(t *testing.T, p any, field string) group.Scalar {
	t.Helper()
	f := reflect.ValueOf(p).Elem().FieldByName(field)
	if !f.IsValid() {
		t.Fatalf("%T has no field %s: update the test", p, field)
	}
	v, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(group.Scalar)
	if !ok || v == nil {
		t.Fatalf("%T.%s is not a scalar", p, field)
	}
	return v
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func TestUnsealThreeOfFive(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	s, err := continuity.NewUnsealSession(c.pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.ID()) != 32 {
		t.Errorf("session id %q", s.ID())
	}
	// Custodians 5, 2 and 4 answer.
	for i, id := range []string{c.ord[4], c.ord[1]} {
		have, need, err := s.Submit(c.reseal(t, c.pkg, id, s.Recipient()))
		if err != nil || have != i+1 || need != 3 {
			t.Fatalf("submit %s: %d of %d, %v", id, have, need, err)
		}
	}
	// Below the threshold nothing is rebuilt and the shares stay.
	if _, err := s.Combine(); !errors.Is(err, seal.ErrTooFewShares) {
		t.Fatalf("combine with 2 of 3: %v", err)
	}
	if have, _, who := s.Status(); have != 2 || who[0] != c.ord[4] || who[1] != c.ord[1] {
		t.Fatalf("status after a refused combine: %d %v", have, who)
	}
	have, need, err := s.Submit(c.reseal(t, c.pkg, c.ord[3], s.Recipient()))
	if err != nil || have != 3 || need != 3 {
		t.Fatalf("third share: %d of %d, %v", have, need, err)
	}
	if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[0], s.Recipient())); !errors.Is(err, continuity.ErrEnoughShares) {
		t.Fatalf("a fourth share: %v", err)
	}
	root, err := s.Combine()
	if err != nil {
		t.Fatal(err)
	}
	// The rebuilt root is the home's.
	home, err := seal.ReadRootKeyFile(r.layout.RootKey(), r.prot.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer home.Wipe()
	got, err1 := root.Commitment()
	want, err2 := home.Commitment()
	if err1 != nil || err2 != nil || got != want || got != c.pkg.RootCommitment() {
		t.Fatalf("rebuilt root %x, home's %x (%v %v)", got, want, err1, err2)
	}
	// The caller wipes the root; `chancery seal` does.
	root.Wipe()
	if _, err := root.Commitment(); !errors.Is(err, seal.ErrWiped) {
		t.Errorf("root usable after Wipe: %v", err)
	}
	// Combine ended the session.
	if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[0], s.Recipient())); !errors.Is(err, continuity.ErrSessionClosed) {
		t.Errorf("submit after combine: %v", err)
	}
}

func TestUnsealRefusesShares(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	s, err := continuity.NewUnsealSession(c.pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := continuity.NewUnsealSession(c.pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.Recipient() == s.Recipient() || other.ID() == s.ID() {
		t.Fatal("two sessions share a key or an id")
	}

	// Sealed to another session's one-time key.
	if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[0], other.Recipient())); !errors.Is(err, continuity.ErrNotForSession) {
		t.Errorf("share for another session: %v", err)
	}
	// Tampered in transit: age authenticates every chunk.
	good := c.reseal(t, c.pkg, c.ord[0], s.Recipient())
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	if _, _, err := s.Submit(bad); !errors.Is(err, continuity.ErrShareUnreadable) {
		t.Errorf("tampered share: %v", err)
	}
	if _, _, err := s.Submit([]byte("not an age file")); !errors.Is(err, continuity.ErrShareUnreadable) {
		t.Errorf("garbage: %v", err)
	}
	// A share of another split of the same root (another package).
	root, err := seal.ReadRootKeyFile(r.layout.RootKey(), r.prot.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	pkg2, err := seal.Split(c.pkg.Guest(), root, c.pkg.Threshold(), c.pkg.Custodians())
	root.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Submit(c.reseal(t, pkg2, c.ord[1], s.Recipient())); !errors.Is(err, seal.ErrWrongPackage) {
		t.Errorf("share of another package: %v", err)
	}
	// Duplicates by custodian.
	if have, _, err := s.Submit(good); err != nil || have != 1 {
		t.Fatalf("good share: %d %v", have, err)
	}
	if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[0], s.Recipient())); !errors.Is(err, continuity.ErrDuplicateShare) {
		t.Errorf("second share of one custodian: %v", err)
	}
	if have, _, _ := s.Status(); have != 1 {
		t.Errorf("refused shares were kept: %d", have)
	}
}

// TestUnsealWipes holds on to the very scalars and key bytes a session
// keeps, and checks they are zero after Combine, after Close and after the
// session expires.
func TestUnsealWipes(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	open := func(t *testing.T, n int) (*continuity.UnsealSession, []group.Scalar, []byte) {
		s, err := continuity.NewUnsealSession(c.pkg, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range c.ord[:n] {
			if _, _, err := s.Submit(c.reseal(t, c.pkg, id, s.Recipient())); err != nil {
				t.Fatal(err)
			}
		}
		var scalars []group.Scalar
		for _, sh := range s.HeldShares() {
			sc := scalarOf(t, sh)
			if sc.IsZero() {
				t.Fatal("a held share is zero before wiping")
			}
			scalars = append(scalars, sc)
		}
		key := s.IdentityScalar()
		if len(key) != 32 || isZero(key) {
			t.Fatalf("identity scalar %d bytes, zero %v", len(key), isZero(key))
		}
		return s, scalars, key
	}
	check := func(t *testing.T, s *continuity.UnsealSession, scalars []group.Scalar, key []byte) {
		t.Helper()
		for i, sc := range scalars {
			if !sc.IsZero() {
				t.Errorf("share %d not wiped", i)
			}
		}
		if !isZero(key) || !s.IdentityWiped() {
			t.Error("one-time identity not wiped")
		}
		if len(s.HeldShares()) != 0 || s.IdentityScalar() != nil {
			t.Error("the session still references secrets")
		}
		if have, _, _ := s.Status(); have != 0 {
			t.Errorf("status says %d shares after wiping", have)
		}
	}

	t.Run("combine", func(t *testing.T) {
		s, scalars, key := open(t, 3)
		root, err := s.Combine()
		if err != nil {
			t.Fatal(err)
		}
		defer root.Wipe()
		check(t, s, scalars, key)
	})
	t.Run("close", func(t *testing.T) {
		s, scalars, key := open(t, 2)
		s.Close()
		check(t, s, scalars, key)
		s.Close() // idempotent
		if _, err := s.Combine(); !errors.Is(err, continuity.ErrSessionClosed) {
			t.Errorf("combine after close: %v", err)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		s, scalars, key := open(t, 2)
		s.SetClock(func() time.Time { return s.Expires() })
		if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[2], s.Recipient())); !errors.Is(err, continuity.ErrSessionExpired) {
			t.Fatalf("submit to an expired session: %v", err)
		}
		check(t, s, scalars, key)
	})
}

func TestUnsealSessionArguments(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	if _, err := continuity.NewUnsealSession(nil, time.Hour); err == nil {
		t.Error("session without a package")
	}
	if _, err := continuity.NewUnsealSession(c.pkg, 0); err == nil {
		t.Error("session without a ttl")
	}
}
