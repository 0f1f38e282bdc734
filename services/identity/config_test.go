package identity

import (
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/seal"
)

// TestConfigRefusals: each broken services.identity is refused naming its
// field.
func TestConfigRefusals(t *testing.T) {
	for field, change := range map[string]func(c *Config){
		"services.identity.issuer":                 func(c *Config) { c.Issuer = "http://id.example/" },
		"services.identity.person_registry":        func(c *Config) { c.PersonRegistry = "people" },
		"services.identity.claims.email":           func(c *Config) { c.Claims["email"] = "mail" },
		"services.identity.eid.cas":                func(c *Config) { c.EID.CAs = nil },
		"services.identity.eid.cas[0].certificate": func(c *Config) { c.EID.CAs[0].Certificate = "not pem" },
		"services.identity.eid.crl_registry":       func(c *Config) { c.EID.CRLRegistry = "crls" },
		"services.identity.eid.challenge_ttl":      func(c *Config) { c.EID.ChallengeTTL = "-1s" },
		"services.identity.clients[0].jwks":        func(c *Config) { c.Clients[0].JWKS = `{"keys":[]}` },
		"services.identity.clients[0].redirect_uris[0]": func(c *Config) {
			c.Clients[0].RedirectURIs = []string{"http://tax.example/cb"}
		},
		"services.identity.clients[1].scopes":       func(c *Config) { c.Clients[1].Scopes = []string{"profile"} },
		"services.identity.clients[2].scopes":       func(c *Config) { c.Clients[2].Scopes = []string{"openid", ScopeVerify} },
		"services.identity.clients[1].id":           func(c *Config) { c.Clients[1].ID = "tax-office" },
		"services.identity.portal.client_id":        func(c *Config) { c.Portal.ClientID = "nobody" },
		"services.identity.portal.passkey_registry": func(c *Config) { c.Portal.PasskeyRegistry = "land" },
	} {
		w := newWorld(t)
		w.idcfg.Claims = map[string]string{"given_name": "first_name"}
		change(&w.idcfg)
		w.setIdentity(t)
		_, err := load(w.c)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// TestWrongRootRefused: a site whose root key derives another oidc key
// than the charter publishes does not start its provider.
func TestWrongRootRefused(t *testing.T) {
	w := newWorld(t)
	other, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Charter: w.c, Keys: seal.NewKeyring(w.c.Guest.ID, other)})
	if err == nil || !strings.Contains(err.Error(), "not the one charter") {
		t.Fatalf("wrong root: %v", err)
	}
}
