package found

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/identity"
)

// TestFoundingIdentityServices: the founding charter's services.access and
// services.identity (written as plain maps, founding being below the
// services) are what the services accept: the access rules parse, and an
// identity service starts over the founded state.
func TestFoundingIdentityServices(t *testing.T) {
	dir := t.TempDir()
	c, err := Init(context.Background(), InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: []byte("found identity test"), WorkFactor: 10}, NoLedger: true})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := access.FromCharter(c)
	if err != nil {
		t.Fatal(err)
	}
	if !rules.IsAuditor(DemoAuditor) || !rules.MayVerify(DemoTaxClient) {
		t.Errorf("access rules: auditor %v, tax office verifies %v", rules.IsAuditor(DemoAuditor), rules.MayVerify(DemoTaxClient))
	}
	var cfg identity.Config
	if ok, err := c.Service(identity.Section, &cfg); !ok || err != nil {
		t.Fatalf("services.identity: %v %v", ok, err)
	}
	if cfg.Issuer != DemoIssuer || len(cfg.Clients) != 2 || cfg.Portal.PasskeyRegistry != DemoPasskeyRegist || cfg.EID.CAs[0].Name != DemoEIDCA {
		t.Errorf("services.identity: %+v", cfg)
	}
	// The portal is the one every site serves on the issuer's name
	// (site/portal.go): its client's JWKS holds the key derived from the
	// root, its redirect is <issuer>/portal/callback, and passkeys are
	// bound to the issuer's host and origin.
	root, err := seal.ReadRootKeyFile(state.Layout{Dir: dir}.RootKey(), []byte("found identity test"))
	if err != nil {
		t.Fatal(err)
	}
	kr := seal.NewKeyring(c.Guest.ID, root)
	_, kid, err := state.PortalKey(kr)
	kr.Wipe()
	root.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := url.Parse(DemoIssuer)
	if cfg.Portal.ClientID != DemoPortalClient || cfg.Portal.RPID != issuer.Hostname() || !slices.Equal(cfg.Portal.Origins, []string{DemoIssuer}) {
		t.Errorf("services.identity.portal: %+v, want client %s, RP id %s, origins [%s]", cfg.Portal, DemoPortalClient, issuer.Hostname(), DemoIssuer)
	}
	var portal *identity.Client
	for i := range cfg.Clients {
		if cfg.Clients[i].ID == DemoPortalClient {
			portal = &cfg.Clients[i]
		}
	}
	if portal == nil {
		t.Fatalf("services.identity.clients: no %s", DemoPortalClient)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(portal.JWKS), &set); err != nil || len(set.Key(kid)) != 1 {
		t.Errorf("portal client JWKS %s: want the root-derived key %s (%v)", portal.JWKS, kid, err)
	}
	if !slices.Equal(portal.RedirectURIs, []string{DemoIssuer + "/portal/callback"}) {
		t.Errorf("portal client redirect URIs %v", portal.RedirectURIs)
	}
	if _, err := os.Stat(IdentityFiles{Dir: dir}.ClientKey(DemoPortalClient)); !os.IsNotExist(err) {
		t.Errorf("a portal client key file: %v; the portal's key is the root's", err)
	}

	ca, err := ReadCert(IdentityFiles{Dir: dir}.CACert())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ReadCert(IdentityFiles{Dir: dir}.CitizenCert(DemoCitizens[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil || cert.Subject.SerialNumber != DemoSerialPrefix+DemoCitizens[0] {
		t.Errorf("citizen certificate %q: %v", cert.Subject.SerialNumber, err)
	}
	for _, f := range []string{IdentityFiles{Dir: dir}.CAKey(), IdentityFiles{Dir: dir}.CitizenKey(DemoCitizens[0]), IdentityFiles{Dir: dir}.ClientKey(DemoTaxClient)} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
		if _, err := ReadKey(f); err != nil {
			t.Error(err)
		}
	}
}
