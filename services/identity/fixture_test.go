package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
)

const (
	testIssuer   = "https://id.demo-republic.example"
	issuerHost   = "id.demo-republic.example"
	rpRedirect   = "https://tax.demo-republic.example/callback"
	rpLoggedOut  = "https://tax.demo-republic.example/bye"
	portalReturn = "https://portal.demo-republic.example/callback"
)

// pki is the test's eID PKI and the TLS certificate of the issuer name.
type pki struct {
	ca, otherCA       *x509.Certificate
	caKey, otherCAKey *ecdsa.PrivateKey
	tlsCert           tls.Certificate
	tlsPool           *x509.CertPool
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serial is a random certificate or CRL serial number.
func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mkCert(t testing.TB, tmpl *x509.Certificate, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = serial(t)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newPKI(t testing.TB) *pki {
	p := &pki{caKey: newKey(t), otherCAKey: newKey(t)}
	now := time.Now()
	ca := func(name string, k *ecdsa.PrivateKey) *x509.Certificate {
		return mkCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, nil, &k.PublicKey, k)
	}
	p.ca = ca("Demo Republic eID CA", p.caKey)
	p.otherCA = ca("Some Other CA", p.otherCAKey)
	tk := newKey(t)
	tc := mkCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: issuerHost}, DNSNames: []string{issuerHost}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, nil, &tk.PublicKey, tk)
	p.tlsCert = tls.Certificate{Certificate: [][]byte{tc.Raw}, PrivateKey: tk, Leaf: tc}
	p.tlsPool = x509.NewCertPool()
	p.tlsPool.AddCert(tc)
	return p
}

// citizen is an eID holder: a certificate and its key.
type citizen struct {
	person string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

func (p *pki) issue(t testing.TB, person string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, notBefore, notAfter time.Time) citizen {
	k := newKey(t)
	c := mkCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Citizen " + person, SerialNumber: "PNODR-" + person},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, &k.PublicKey, caKey)
	return citizen{person: person, cert: c, key: k}
}

func (p *pki) crl(t testing.TB, revoked ...*x509.Certificate) []byte {
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: serial(t), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries}, p.ca, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// answer is the eID software's response to a challenge.
func (c citizen) answer(t testing.TB, issuer, challenge string) []byte {
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256sum(EIDMessage(issuer, raw))
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, h)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(EIDResponse{Challenge: challenge, Chain: []string{base64.StdEncoding.EncodeToString(c.cert.Raw)}, Signature: base64.StdEncoding.EncodeToString(sig)})
	return b
}

// rpKey is a relying party's private_key_jwt key.
type rpKey struct {
	id  string
	kid string
	key *ecdsa.PrivateKey
}

func (k rpKey) jwks() string {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}}})
	return string(b)
}

// assertion is a private_key_jwt client assertion (RFC 7523), made with
// go-jose as a relying party would.
func (k rpKey) assertion(t testing.TB, aud string) string {
	return k.assertionWith(t, aud, newID())
}

// assertionWith makes an assertion with the given jti ("" for none).
func (k rpKey) assertionWith(t testing.TB, aud, jti string) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: k.id, Subject: k.id, Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: jti}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// world is a guest state: root key, charter, PKI, relying parties, and
// the home's ledger and registries.
type world struct {
	root   *seal.RootKey
	c      *charter.Charter
	pki    *pki
	tax    rpKey
	portal rpKey
	bank   rpKey
	alice  citizen // P-100
	bob    citizen // P-200
	// checkpointEvery is the sites' ledger checkpoint interval: short in
	// tests, so trackers see entries at once; the ledger's default in
	// benchmarks, as a site runs.
	checkpointEvery time.Duration
	// idcfg is the charter's services.identity (setIdentity writes it).
	idcfg Config
}

func newWorld(t testing.TB) *world {
	w := &world{pki: newPKI(t), checkpointEvery: time.Millisecond}
	var err error
	if w.root, err = seal.NewRootKey(); err != nil {
		t.Fatal(err)
	}
	w.tax = rpKey{id: "tax-office", kid: "tax-1", key: newKey(t)}
	w.portal = rpKey{id: "portal", kid: "portal-1", key: newKey(t)}
	w.bank = rpKey{id: "bank", kid: "bank-1", key: newKey(t)}
	now := time.Now()
	w.alice = w.pki.issue(t, "P-100", w.pki.ca, w.pki.caKey, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	w.bob = w.pki.issue(t, "P-200", w.pki.ca, w.pki.caKey, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	sites := []string{"home", "embassy-north"}
	w.c = &charter.Charter{
		Guest: charter.Guest{ID: "demo-republic", Origin: "ledger.test.example"},
		Officials: []charter.Official{
			{ID: "reg-1", Roles: []string{"registrar"}},
			{ID: "aud-1", Roles: []string{"auditor"}},
		},
		Registries: []charter.Registry{
			{Name: "population", Sites: sites, Index: []string{"national_id", "last_name"}, Sync: charter.SyncAsync},
			{Name: "land", Sites: sites, Index: []string{"parcel_id", "owner_id"}, Sync: charter.SyncAsync},
			{Name: "business", Sites: sites, Index: []string{"registration_no", "owner_id"}, Sync: charter.SyncAsync},
			{Name: "eid-crl", Sites: sites, Index: []string{"ca"}, Sync: charter.SyncAsync},
			{Name: "passkeys", Sites: sites, Index: []string{"person_id"}, Sync: charter.SyncAsync},
		},
	}
	kr := seal.NewKeyring(w.c.Guest.ID, w.root)
	s, err := kr.StateSigner("oidc", seal.StateAlgES256, 0)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := charter.NewStateKey("oidc", seal.StateAlgES256, 0, s.Public())
	if err != nil {
		t.Fatal(err)
	}
	w.c.StateKeys = []charter.StateKey{sk}
	if err := w.c.SetService(access.Service, access.Config{
		Auditors:  []string{"aud-1"},
		Officials: map[string]map[string][]string{"registrar": {"population": {access.Read, access.Find, access.Write}}},
		Citizens:  map[string]string{"population": "national_id", "land": "owner_id", "business": "owner_id"},
		Clients: map[string]access.ClientRule{
			"tax-office": {Registries: []string{"population", "land"}, Claims: []string{"name", "birthdate"}, Verify: true},
			"bank":       {Claims: []string{"name"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	pemCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.pki.ca.Raw}))
	w.idcfg = Config{
		Issuer:         testIssuer,
		PersonRegistry: "population",
		Claims:         map[string]string{"given_name": "first_name", "family_name": "last_name", "birthdate": "birth_date"},
		EID:            EIDConfig{CAs: []EIDCA{{Name: "demo-eid-ca", Certificate: pemCA}}, CRLRegistry: "eid-crl", SerialPrefix: "PNODR-"},
		Portal:         Portal{ClientID: "portal", RPID: "portal.demo-republic.example", Origins: []string{"https://portal.demo-republic.example"}, PasskeyRegistry: "passkeys"},
		Clients: []Client{
			{ID: "tax-office", JWKS: w.tax.jwks(), RedirectURIs: []string{rpRedirect}, PostLogoutRedirectURIs: []string{rpLoggedOut}, Scopes: []string{"openid", "profile", ScopeRecords, ScopeVerify}},
			{ID: "portal", JWKS: w.portal.jwks(), RedirectURIs: []string{portalReturn}, Scopes: []string{"openid", "profile", ScopeRecords}},
			{ID: "bank", JWKS: w.bank.jwks(), RedirectURIs: []string{"https://bank.example/cb"}, Scopes: []string{"openid", "profile"}},
		},
		VerifyPerMinute: 60, VerifyBurst: 3,
	}
	w.setIdentity(t)
	return w
}

// setIdentity writes w.idcfg into the charter's services.identity.
func (w *world) setIdentity(t testing.TB) {
	t.Helper()
	if err := w.c.SetService(Section, w.idcfg); err != nil {
		t.Fatal(err)
	}
}

// site is one site serving the guest: its ledger, registries, keys and
// the identity service behind a TLS server for the issuer's name.
type site struct {
	id      string
	dir     string
	log     *ledger.Log
	keys    *seal.Keyring
	regs    *registry.Registries
	svc     *Service
	srv     *httptest.Server
	fenced  atomic.Bool
	now     atomic.Pointer[time.Time]
	signKey ed25519.PrivateKey
}

func (w *world) openSite(t testing.TB, id, dir string, signKey ed25519.PrivateKey) *site {
	t.Helper()
	ctx := context.Background()
	s := &site{id: id, dir: dir, signKey: signKey}
	signer, _, err := ledger.NewLogSigner(w.c.Guest.Origin, signKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.log, err = ledger.Open(ctx, filepath.Join(dir, "ledger"), ledger.Options{Origin: w.c.Guest.Origin, Signer: signer, CheckpointInterval: w.checkpointEvery}); err != nil {
		t.Fatal(err)
	}
	s.keys = seal.NewKeyring(w.c.Guest.ID, w.root) // rebuilt from the root at this site
	if s.regs, err = registry.Open(ctx, registry.Options{Charter: w.c, Site: id, Log: s.log, Keys: s.keys}); err != nil {
		t.Fatal(err)
	}
	s.svc, err = New(Options{Charter: w.c, Keys: s.keys, Registries: s.regs, Log: s.log, Site: id,
		Active: func() error {
			if s.fenced.Load() {
				return fmt.Errorf("site %s is fenced", id)
			}
			return nil
		},
		Now: func() time.Time {
			if p := s.now.Load(); p != nil {
				return *p
			}
			return time.Now()
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewUnstartedServer(s.svc)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{w.pki.tlsCert}}
	s.srv.StartTLS()
	t.Cleanup(s.close)
	return s
}

func (s *site) close() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
	if s.regs != nil {
		s.regs.Close()
		s.regs = nil
	}
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

func (s *site) advance(d time.Duration) {
	t := time.Now().Add(d)
	s.now.Store(&t)
}

// seed writes the demo records at home.
func (w *world) seed(t testing.TB, s *site) {
	ctx := context.Background()
	put := func(reg, id, data string) {
		t.Helper()
		if _, err := s.regs.Put(ctx, reg, id, json.RawMessage(data), nil); err != nil {
			t.Fatal(err)
		}
	}
	put("population", "P-100", `{"national_id":"P-100","first_name":"Alice","last_name":"Varga","birth_date":"1980-02-03"}`)
	put("population", "P-200", `{"national_id":"P-200","first_name":"Bob","last_name":"Horvat","birth_date":"1975-11-30"}`)
	put("land", "L-7", `{"parcel_id":"L-7","owner_id":"P-100","area_m2":812}`)
	put("land", "L-8", `{"parcel_id":"L-8","owner_id":"P-200","area_m2":90}`)
	put("business", "B-1", `{"registration_no":"B-1","owner_id":"P-100"}`)
	crl, _ := json.Marshal(map[string]any{"ca": "demo-eid-ca", "crl": w.pki.crl(t)})
	put("eid-crl", "demo-eid-ca", string(crl))
}

// resolver sends the issuer's name to whichever site is active now: the
// address behind the name moves, nothing else.
type resolver struct {
	mu   sync.Mutex
	addr string
}

func (r *resolver) point(s *site) {
	r.mu.Lock()
	r.addr = s.srv.Listener.Addr().String()
	r.mu.Unlock()
}

func (r *resolver) client(pool *x509.CertPool, follow bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == issuerHost+":443" {
				r.mu.Lock()
				addr = r.addr
				r.mu.Unlock()
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 64,
	}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// copyDir copies a closed site's directory: the embassy's replica, as
// replication would have left it.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, fi.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sha256sum(b []byte) []byte {
	h := crypto.SHA256.New()
	h.Write(b)
	return h.Sum(nil)
}

// location resolves a redirect's Location against the issuer.
func location(t testing.TB, resp *http.Response) *url.URL {
	t.Helper()
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("status %d, no Location", resp.StatusCode)
	}
	u, err := url.Parse(testIssuer + "/")
	if err != nil {
		t.Fatal(err)
	}
	l, err := u.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func hasPrefix(u *url.URL, p string) bool { return strings.HasPrefix(u.String(), p) }
