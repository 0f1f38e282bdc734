package siteapi

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseSignatureHeader: the signature header is outside input on
// every request. The parser never panics, and what it accepts it accepts
// in the canonical form a client writes.
func FuzzParseSignatureHeader(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v1/registries", nil)
	if err := SignRequest(req, "demo-republic", "home", "registrar", key); err == nil {
		f.Add(req.Header.Get(SignatureHeader))
	}
	f.Add(`official="a", time="1", nonce="AAAAAAAAAAAAAAAAAAAAAA==", digest="` + strings.Repeat("0", 64) + `", sig="` + strings.Repeat("A", 86) + `=="`)
	f.Add(`official="a",,time="1"`)
	f.Fuzz(func(t *testing.T, h string) {
		s, err := ParseSignatureHeader(h)
		if err != nil {
			if !errors.Is(err, ErrMalformedSignature) {
				t.Fatalf("refused %q with %v, which is not ErrMalformedSignature", h, err)
			}
			return
		}
		if s.Official == "" || len(s.Sig) != ed25519.SignatureSize || s.Unix < 0 {
			t.Fatalf("accepted %q with official %q, %d-byte sig, time %d", h, s.Official, len(s.Sig), s.Unix)
		}
		again := fmt.Sprintf(`official=%q, time="%d", nonce=%q, digest=%q, sig=%q`, s.Official, s.Unix, s.Nonce, s.DigestHex, base64.StdEncoding.EncodeToString(s.Sig))
		if s2, err := ParseSignatureHeader(again); err != nil || s2.Official != s.Official || s2.Unix != s.Unix {
			t.Fatalf("accepted %q but not its canonical form %q: %v", h, again, err)
		}
	})
}

// TestSignVerifies: what a Signer writes parses, and its signature
// verifies over the message the site rebuilds from the request; a change
// of guest, site, method, target or body digest breaks it.
func TestSignVerifies(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1/v1/registries/population/records/p1?x=1", strings.NewReader(`{"a":1}`))
	if err := (Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key}).Sign(req); err != nil {
		t.Fatal(err)
	}
	p, err := ParseSignatureHeader(req.Header.Get(SignatureHeader))
	if err != nil {
		t.Fatal(err)
	}
	target := req.URL.RequestURI()
	if !ed25519.Verify(pub, p.Message("demo-republic", "home", http.MethodPut, target), p.Sig) {
		t.Fatal("signature does not verify")
	}
	for name, msg := range map[string][]byte{
		"guest":  p.Message("other-republic", "home", http.MethodPut, target),
		"site":   p.Message("demo-republic", "embassy-north", http.MethodPut, target),
		"method": p.Message("demo-republic", "home", http.MethodDelete, target),
		"target": p.Message("demo-republic", "home", http.MethodPut, "/v1/registries/population/records/p2"),
		"digest": SigningString("demo-republic", "home", http.MethodPut, target, p.Unix, p.Nonce, strings.Repeat("0", 64)),
	} {
		if ed25519.Verify(pub, msg, p.Sig) {
			t.Errorf("signature verifies with another %s", name)
		}
	}
}

// TestSignNeedsGuest: a signer with no guest refuses to sign, and a client
// of one guest refuses a signer made for another.
func TestSignNeedsGuest(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v1/registries", nil)
	if err := (Signer{Site: "home", Official: "registrar", Key: key}).Sign(req); err == nil || !strings.Contains(err.Error(), "no guest") {
		t.Fatalf("signed without a guest: %v", err)
	}
	s := &Signer{Guest: "a", Site: "home", Official: "registrar", Key: key}
	if _, err := s.forGuest("b"); err == nil {
		t.Fatal("a signer for guest a was used for guest b")
	}
	g, err := (&Signer{Site: "home", Official: "registrar", Key: key}).forGuest("b")
	if err != nil || g.Guest != "b" {
		t.Fatalf("forGuest: %+v %v", g, err)
	}
}
