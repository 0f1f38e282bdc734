package seal

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

func TestStateSignerDeterministicAndSeparated(t *testing.T) {
	r1, err := NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := func(k *Keyring, purpose, alg string, gen uint32) crypto.PublicKey {
		t.Helper()
		s, err := k.StateSigner(purpose, alg, gen)
		if err != nil {
			t.Fatalf("StateSigner(%s, %s, %d): %v", purpose, alg, gen, err)
		}
		return s.Public()
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	same := func(a, b crypto.PublicKey) bool { return a.(equaler).Equal(b) }
	a, b := NewKeyring("g", r1), NewKeyring("g", r1)
	for _, alg := range []string{StateAlgEdDSA, StateAlgES256} {
		if !same(pub(a, "extract", alg, 0), pub(b, "extract", alg, 0)) {
			t.Errorf("%s: two keyrings of one root derive different keys", alg)
		}
		for _, other := range []struct {
			name string
			k    crypto.PublicKey
		}{
			{"another purpose", pub(a, "oidc", alg, 0)},
			{"another generation", pub(a, "extract", alg, 1)},
			{"another guest", pub(NewKeyring("h", r1), "extract", alg, 0)},
			{"another root", pub(NewKeyring("g", r2), "extract", alg, 0)},
		} {
			if same(pub(a, "extract", alg, 0), other.k) {
				t.Errorf("%s: %s derives the same key", alg, other.name)
			}
		}
	}
	// The keys sign and verify.
	msg := sha256.Sum256([]byte("extract"))
	es, _ := a.StateSigner("extract", StateAlgES256, 0)
	sig, err := es.Sign(rand.Reader, msg[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(es.Public().(*ecdsa.PublicKey), msg[:], sig) {
		t.Fatalf("ES256 state key does not verify its own signature: %v", err)
	}
	ed, _ := a.StateSigner("extract", StateAlgEdDSA, 0)
	sig, err = ed.Sign(rand.Reader, msg[:], crypto.Hash(0))
	if err != nil || !ed25519.Verify(ed.Public().(ed25519.PublicKey), msg[:], sig) {
		t.Fatalf("EdDSA state key does not verify its own signature: %v", err)
	}
}

func TestStateSignerRefuses(t *testing.T) {
	r, _ := NewRootKey()
	k := NewKeyring("g", r)
	for _, c := range []struct{ purpose, alg string }{
		{"Extract", StateAlgEdDSA}, {"", StateAlgEdDSA}, {"extract", "RS256"},
	} {
		if _, err := k.StateSigner(c.purpose, c.alg, 0); err == nil {
			t.Errorf("StateSigner(%q, %q) accepted", c.purpose, c.alg)
		}
	}
	k.Wipe()
	if _, err := k.StateSigner("extract", StateAlgEdDSA, 0); err == nil {
		t.Error("a wiped keyring derived a state key")
	}
}
