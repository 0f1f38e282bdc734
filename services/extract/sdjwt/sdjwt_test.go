package sdjwt_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/services/extract/sdjwt"
)

func issue(t testing.TB) (string, ed25519.PublicKey) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tok, err := sdjwt.Issue(priv, "extract/0",
		map[string]any{"iss": "ledger.demo-republic.example", "vct": "urn:chancery:extract:population", "iat": 1796428800},
		map[string]any{"birth_date": "2001-02-03", "age_over_18": true, "given_name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	return tok, pub
}

func TestSelectiveDisclosure(t *testing.T) {
	tok, pub := issue(t)
	v, err := sdjwt.Verify(tok, pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Claims["birth_date"] != "2001-02-03" || len(v.Disclosed) != 3 {
		t.Fatalf("full: %v", v.Claims)
	}
	over18, err := sdjwt.Present(tok, func(n string) bool { return n == "age_over_18" })
	if err != nil {
		t.Fatal(err)
	}
	v, err = sdjwt.Verify(over18, pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Claims["birth_date"]; ok || v.Claims["age_over_18"] != true {
		t.Fatalf("age only: %v", v.Claims)
	}
	if strings.Contains(over18, "2001") {
		t.Fatal("the birth date leaks")
	}
}

func TestRefusals(t *testing.T) {
	tok, pub := issue(t)
	parts := strings.Split(tok, "~")
	other, _ := issue(t)
	for name, bad := range map[string]string{
		"key binding":       tok + "eyJhbGciOiJFZERTQSJ9.e30.AA",
		"repeated":          tok + parts[1] + "~",
		"foreign":           parts[0] + "~" + strings.Split(other, "~")[1] + "~",
		"no tilde":          parts[0],
		"altered signature": strings.Replace(parts[0], parts[0][len(parts[0])-3:], "AAA", 1) + "~",
	} {
		if _, err := sdjwt.Verify(bad, pub); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for i := range len(tok) - 1 {
		b := []byte(tok)
		b[i] ^= 0x01
		if v, err := sdjwt.Verify(string(b), pub); err == nil && len(v.Disclosed) == 3 {
			t.Fatalf("byte %d altered: accepted with every disclosure", i)
		}
	}
}

func FuzzVerify(f *testing.F) {
	tok, pub := issue(f)
	f.Add(tok)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := sdjwt.Verify(s, pub)
		if err == nil && v.Claims["iss"] != "ledger.demo-republic.example" {
			t.Fatalf("accepted claims never issued: %v", v.Claims)
		}
	})
}
