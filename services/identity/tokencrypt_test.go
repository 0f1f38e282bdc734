package identity

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// TestGCMCryptoRefusesAltered: every code or token this process sealed
// opens to what was sealed; one with any byte changed, cut short, or
// sealed under another process's key does not.
func TestGCMCryptoRefusesAltered(t *testing.T) {
	var k1, k2 [32]byte
	rand.Read(k1[:])
	rand.Read(k2[:])
	c, err := newGCMCrypto(k1)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newGCMCrypto(k2)
	tok, err := c.Encrypt("token-id:P-100")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Decrypt(tok); err != nil || got != "token-id:P-100" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if again, _ := c.Encrypt("token-id:P-100"); again == tok {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		alt := append([]byte(nil), raw...)
		alt[i] ^= 1
		if got, err := c.Decrypt(base64.RawURLEncoding.EncodeToString(alt)); err == nil {
			t.Errorf("byte %d flipped: opened to %q", i, got)
		}
	}
	for _, bad := range []string{"", tok[:len(tok)-1], tok[:10], "!!!" + tok} {
		if _, err := c.Decrypt(bad); err == nil {
			t.Errorf("%q opened", bad)
		}
	}
	if _, err := other.Decrypt(tok); err == nil {
		t.Error("another process's key opened the token")
	}
}

// FuzzTokenDecrypt feeds Decrypt what a client may present as a code or an
// access token: it must refuse anything this process did not seal, never
// panic, and open what it sealed unchanged.
func FuzzTokenDecrypt(f *testing.F) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		f.Fatal(err)
	}
	c, err := newGCMCrypto(key)
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := c.Encrypt("code-or-token-id")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, "code-or-token-id")
	f.Add("", "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x")
	f.Fuzz(func(t *testing.T, presented, plain string) {
		if got, err := c.Decrypt(presented); err == nil && presented != sealed {
			// Only a value this process sealed opens: the fuzzer cannot
			// forge a GCM tag under a random key.
			t.Fatalf("Decrypt(%q) = %q: opened a value this process did not seal", presented, got)
		}
		s, err := c.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Decrypt(s); err != nil || got != plain {
			t.Fatalf("round trip of %q: %q, %v", plain, got, err)
		}
	})
}
