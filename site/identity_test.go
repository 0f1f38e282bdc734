package site_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/site"
)

// foundWithIssuer founds a Demo Republic whose charter names an OpenID
// Connect issuer (services.identity) with one eID CA and one relying party.
func foundWithIssuer(t *testing.T, issuer string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Demo Republic eID CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	rpKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rpKey.PublicKey, KeyID: "tax-1", Algorithm: "ES256", Use: "sig"}}})
	dir := t.TempDir()
	_, err = found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: []byte(testPass), WorkFactor: 10},
		Amend: func(c *charter.Charter) error {
			c.Registries = append(c.Registries, charter.Registry{Name: "crls", Classification: charter.ClassPublic,
				Sites: []string{"home", "embassy-north", "embassy-south"}, Sync: charter.SyncAsync})
			return c.SetService(identity.Section, identity.Config{
				Issuer: issuer, PersonRegistry: "population",
				EID:     identity.EIDConfig{CAs: []identity.EIDCA{{Name: "eid-ca", Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}}, CRLRegistry: "crls"},
				Clients: []identity.Client{{ID: "tax-office", JWKS: string(jwks), RedirectURIs: []string{"https://tax.example/cb"}, Scopes: []string{"openid", "profile"}}},
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveIssuerHome serves the home of the state founded in dir, without
// replication, on a loopback test server.
func serveIssuerHome(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	s, err := site.Open(context.Background(), &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true,
		Replication: site.ReplicationConfig{Disabled: true}}, site.Options{
		Logger: slog.New(slog.DiscardHandler),
		Local:  guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// getHost GETs path from srv under the name host (the issuer's, or the
// site's own).
func getHost(t *testing.T, srv *httptest.Server, host, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Host = host
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestIssuerServedByTheActiveSite: requests for the state's issuer name
// reach the identity service, signed with the state's oidc key from the
// charter, at an active site; the site's own name does not serve them.
func TestIssuerServedByTheActiveSite(t *testing.T) {
	const issuer = "https://id.demo-republic.example"
	dir := foundWithIssuer(t, issuer)
	srv := serveIssuerHome(t, dir)

	get := func(host, path string) (int, []byte) { return getHost(t, srv, host, path) }
	code, body := get("id.demo-republic.example", "/.well-known/openid-configuration")
	if code != http.StatusOK {
		t.Fatalf("discovery under the issuer's name: %d %s", code, body)
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &disc); err != nil || disc.Issuer != issuer {
		t.Fatalf("discovery names issuer %q (%v)", disc.Issuer, err)
	}
	code, body = get("ID.demo-republic.example:443", "/keys")
	var set jose.JSONWebKeySet
	if code != http.StatusOK || json.Unmarshal(body, &set) != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %d %s", code, body)
	}
	c, err := charter.ReadVerified(dir + "/charter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := c.StateKeyFor("oidc")
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := identity.Thumbprint(pub)
	if set.Keys[0].KeyID != kid {
		t.Fatalf("JWKS kid %q, want the charter's oidc key %q", set.Keys[0].KeyID, kid)
	}
	// The site's own name is not the issuer.
	if code, _ := get("127.0.0.1", "/.well-known/openid-configuration"); code != http.StatusNotFound {
		t.Fatalf("discovery under the site's own address: %d", code)
	}
}
