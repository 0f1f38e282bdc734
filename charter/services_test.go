package charter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
)

type identitySection struct {
	Issuer  string   `yaml:"issuer"`
	Clients []string `yaml:"clients"`
}

func TestServicesSignedAndStrict(t *testing.T) {
	f := newFixture(t)
	base := f.charter(t)
	plain := base.CanonicalBytes()

	c := f.charter(t)
	if err := c.SetService("identity", identitySection{Issuer: "https://id.example", Clients: []string{"tax"}}); err != nil {
		t.Fatal(err)
	}
	withSvc := c.CanonicalBytes()
	if bytes.Equal(plain, withSvc) {
		t.Fatal("a services section does not change the canonical bytes: signatures would not cover it")
	}
	if !bytes.Contains(withSvc, []byte(`"services":{"identity":{"clients":["tax"],"issuer":"https://id.example"}}`)) {
		t.Errorf("canonical services not as documented:\n%s", withSvc)
	}
	// Round trip through YAML: the same bytes, the same section.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("charter with services does not parse back: %v", err)
	}
	if !bytes.Equal(back.CanonicalBytes(), withSvc) {
		t.Error("canonical bytes changed across a YAML round trip")
	}
	var got identitySection
	if ok, err := back.Service("identity", &got); !ok || err != nil || got.Issuer != "https://id.example" {
		t.Fatalf("Service(identity) = %v, %v, %+v", ok, err, got)
	}
	if ok, err := back.Service("payments", &got); ok || err != nil {
		t.Errorf("absent section: ok=%v err=%v", ok, err)
	}
	// Strict: an unknown field is named.
	c.Services["identity"].(map[string]any)["isuer"] = "typo"
	if _, err := c.Service("identity", &got); err == nil || !strings.Contains(err.Error(), "isuer") || !strings.Contains(err.Error(), "services.identity") {
		t.Errorf("unknown field: %v", err)
	}
	// Absent sections keep the old bytes: charters signed before services
	// existed stay valid.
	c.Services = map[string]any{}
	if !bytes.Equal(c.CanonicalBytes(), plain) {
		t.Error("an empty services map changes the canonical bytes")
	}
}

func TestServicesRefusedShapes(t *testing.T) {
	f := newFixture(t)
	c := f.charter(t)
	c.Services = map[string]any{"Bad Name": map[string]any{}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "services.Bad Name") {
		t.Errorf("bad service name: %v", err)
	}
	doc := f.yaml + "services:\n  identity:\n    1: one\n"
	if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "services.identity") {
		t.Errorf("a map with a non-string key: %v", err)
	}
}

func TestStateKeys(t *testing.T) {
	f := newFixture(t)
	c := f.charter(t)
	plain := c.CanonicalBytes()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k1, err := NewStateKey("extract", "EdDSA", 0, edPub)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewStateKey("oidc", "ES256", 0, ec.Public())
	if err != nil {
		t.Fatal(err)
	}
	k3, err := NewStateKey("extract", "EdDSA", 1, ec.Public())
	if err == nil {
		t.Fatalf("an ECDSA key accepted as EdDSA: %+v", k3)
	}
	c.StateKeys = []StateKey{k2, k1}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(plain, c.CanonicalBytes()) {
		t.Fatal("state keys are not covered by the canonical bytes")
	}
	// Order does not matter.
	d := f.charter(t)
	d.StateKeys = []StateKey{k1, k2}
	if !bytes.Equal(c.CanonicalBytes(), d.CanonicalBytes()) {
		t.Error("state key order changes the canonical bytes")
	}
	got, pub, err := c.StateKeyFor("oidc")
	if err != nil || got.Alg != "ES256" || !ec.PublicKey.Equal(pub) {
		t.Fatalf("StateKeyFor(oidc) = %+v, %v", got, err)
	}
	if _, _, err := c.StateKeyFor("payments"); err == nil {
		t.Error("a missing purpose was found")
	}
	// A newer generation wins.
	edPub2, _, _ := ed25519.GenerateKey(rand.Reader)
	k4, _ := NewStateKey("extract", "EdDSA", 1, edPub2)
	c.StateKeys = append(c.StateKeys, k4)
	if _, pub, _ := c.StateKeyFor("extract"); !edPub2.Equal(pub) {
		t.Error("StateKeyFor did not return the newest generation")
	}
	for name, mut := range map[string]func(k *StateKey){
		"purpose":   func(k *StateKey) { k.Purpose = "Extract" },
		"alg":       func(k *StateKey) { k.Alg = "RS256" },
		"key":       func(k *StateKey) { k.Key = "AAAA" },
		"mismatch":  func(k *StateKey) { k.Alg = "ES256" },
		"duplicate": func(k *StateKey) { k.Generation = 0 },
	} {
		c.StateKeys = []StateKey{k1, k4}
		mut(&c.StateKeys[1])
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "state_keys[1]") {
			t.Errorf("%s: Validate = %v, want an error naming state_keys[1]", name, err)
		}
	}
}
