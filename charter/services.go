package charter

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// StateKey is the public half of one of the guest's state keys: the keys a
// site signs with in the state's name (certified extracts, OpenID Connect
// ID tokens), derived from the root key (seal.Keyring.StateSigner) so that
// whichever site holds R signs as the same state. Publishing them here lets
// a verifier with only the charter check what a site issued.
type StateKey struct {
	// Purpose names what the key signs: "extract", "oidc".
	Purpose string `yaml:"purpose"`
	// Alg is "EdDSA" (Ed25519) or "ES256" (ECDSA P-256).
	Alg string `yaml:"alg"`
	// Generation is the derivation generation; a new generation rotates
	// the key while the charter keeps the old one for what it signed.
	Generation uint32 `yaml:"generation"`
	// Key is the public key, PKIX DER in standard base64.
	Key string `yaml:"key"`
}

var statePurposeRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// PublicKey parses the key and checks that it is of the declared algorithm.
func (k StateKey) PublicKey() (crypto.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(k.Key)
	if err != nil {
		return nil, fmt.Errorf("key: not standard base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if k.Alg == "EdDSA" {
			return p, nil
		}
	case *ecdsa.PublicKey:
		if k.Alg == "ES256" && p.Curve == elliptic.P256() {
			return p, nil
		}
	}
	return nil, fmt.Errorf("key: a %T does not match alg %q (want EdDSA with an Ed25519 key or ES256 with a P-256 key)", pub, k.Alg)
}

// NewStateKey makes the charter entry for pub.
func NewStateKey(purpose, alg string, gen uint32, pub crypto.PublicKey) (StateKey, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return StateKey{}, fmt.Errorf("state key %s: %w", purpose, err)
	}
	k := StateKey{Purpose: purpose, Alg: alg, Generation: gen, Key: base64.StdEncoding.EncodeToString(der)}
	if _, err := k.PublicKey(); err != nil {
		return StateKey{}, fmt.Errorf("state key %s: %w", purpose, err)
	}
	return k, nil
}

// StateKeyFor returns the newest generation of the state key for purpose.
func (c *Charter) StateKeyFor(purpose string) (StateKey, crypto.PublicKey, error) {
	var best *StateKey
	for i := range c.StateKeys {
		k := &c.StateKeys[i]
		if k.Purpose == purpose && (best == nil || k.Generation > best.Generation) {
			best = k
		}
	}
	if best == nil {
		return StateKey{}, nil, fmt.Errorf("charter v%d names no state key for %q (state_keys)", c.Version, purpose)
	}
	pub, err := best.PublicKey()
	if err != nil {
		return StateKey{}, nil, fmt.Errorf("charter state_keys %s generation %d: %w", purpose, best.Generation, err)
	}
	return *best, pub, nil
}

func (c *Charter) validateStateKeys(p *problems) {
	seen := map[string]bool{}
	for i, k := range c.StateKeys {
		path := fmt.Sprintf("state_keys[%d]", i)
		if !statePurposeRe.MatchString(k.Purpose) {
			p.add(path+".purpose", "%q must be a lowercase name of at most 32 characters", k.Purpose)
		}
		if k.Alg != "EdDSA" && k.Alg != "ES256" {
			p.add(path+".alg", "%q: want EdDSA or ES256", k.Alg)
		} else if _, err := k.PublicKey(); err != nil {
			p.add(path+".key", "%v", err)
		}
		id := fmt.Sprintf("%s/%d", k.Purpose, k.Generation)
		if seen[id] {
			p.add(path, "a second key for purpose %q generation %d", k.Purpose, k.Generation)
		}
		seen[id] = true
	}
}

// Services are the configuration sections of the services an active site
// runs (identity, access rules, procedures, notices...), keyed by service
// name. The charter signs them like every other field but does not read
// them: each service decodes its own section with Service and refuses to
// start on one it cannot use, naming the field. Keeping them opaque here
// lets a service's configuration grow without a change to this package.

var serviceNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Service decodes the section services.<name> into v, strictly: an unknown
// field is an error that names it. It returns false when the section is
// absent, leaving v as it was.
func (c *Charter) Service(name string, v any) (bool, error) {
	sec, ok := c.Services[name]
	if !ok {
		return false, nil
	}
	b, err := yaml.Marshal(sec)
	if err != nil {
		return true, fmt.Errorf("charter services.%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return true, fmt.Errorf("charter services.%s: %w", name, err)
	}
	return true, nil
}

// SetService replaces the section services.<name> with v's YAML form.
func (c *Charter) SetService(name string, v any) error {
	if !serviceNameRe.MatchString(name) {
		return fmt.Errorf("charter services.%s: a service name is a lowercase name of at most 32 characters", name)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("charter services.%s: %w", name, err)
	}
	var sec any
	if err := yaml.Unmarshal(b, &sec); err != nil {
		return fmt.Errorf("charter services.%s: %w", name, err)
	}
	if c.Services == nil {
		c.Services = map[string]any{}
	}
	c.Services[name] = sec
	if _, err := canonServices(c.Services); err != nil {
		delete(c.Services, name)
		return err
	}
	return nil
}

func (c *Charter) validateServices(p *problems) {
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !serviceNameRe.MatchString(n) {
			p.add("services."+n, "a service name is a lowercase name of at most 32 characters")
		}
		if _, err := canonServices(map[string]any{n: c.Services[n]}); err != nil {
			p.add("services."+n, "%v", err)
		}
	}
}

// canonServices is the canonical JSON of the services sections: maps with
// string keys (sorted by encoding/json), lists, strings, numbers, booleans
// and null. A map with a non-string key (YAML allows them) has no JSON form
// and is refused by Validate, so CanonicalBytes never meets one.
func canonServices(s map[string]any) (json.RawMessage, error) {
	if len(s) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("not representable as JSON (a key that is not a string?): %w", err)
	}
	return json.RawMessage(strings.TrimSuffix(buf.String(), "\n")), nil
}
