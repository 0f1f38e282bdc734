package site_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/browsertest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/services/message"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

const (
	portalIssuer = "https://id.demo-republic.example"
	portalHost   = "id.demo-republic.example"
)

// eidHolder is a citizen's eID: a certificate from the test's eID CA and
// its key, as the card holds them.
type eidHolder struct {
	person string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

// sign is what the citizen's eID tool does with a challenge: sign the
// issuer-bound message with the card's key.
func (h eidHolder) sign(t testing.TB, challenge string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(identity.EIDMessage(portalIssuer, raw))
	sig, err := ecdsa.SignASN1(rand.Reader, h.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// portalCluster is a Demo Republic whose charter names the state's
// issuer and its portal: home and embassy-north on loopback (north
// cosigns extracts), and the issuer's name served over TLS by the home.
type portalCluster struct {
	c            *charter.Charter
	dir          string
	home, north  *site.Site
	homeURL      string
	issuerAddr   string // where the browser finds https://id.demo-republic.example
	behind       atomic.Pointer[handlerBox]
	northURL     string
	tlsCert      *x509.Certificate
	alice, bob   eidHolder
	aliceParcel  string
	bobParcel    string
	officialsKey func(id string) siteapi.Signer
}

// handlerBox holds the handler behind the issuer's name.
type handlerBox struct{ h http.Handler }

// startPortalCluster founds the state and serves it; checkpointEvery is
// the ledgers' checkpoint interval.
func startPortalCluster(t testing.TB, checkpointEvery time.Duration) *portalCluster {
	t.Helper()
	ctx := context.Background()
	pc := &portalCluster{aliceParcel: "P-101", bobParcel: "P-102"}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Demo Republic eID CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, nil, &caKey.PublicKey, caKey)
	holder := func(person string, serial int64) eidHolder {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "Citizen " + person, SerialNumber: "PNODR-" + person},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}, ca, &k.PublicKey, caKey)
		return eidHolder{person: person, cert: c, key: k}
	}
	pc.alice, pc.bob = holder("DR-0000101", 100), holder("DR-0000102", 101)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	sites := []string{"home", "embassy-north", "embassy-south"}
	pc.dir = t.TempDir()
	pc.c, err = found.Init(ctx, found.InitOptions{Dir: pc.dir, Protector: keyfile.Protector{Passphrase: []byte(testPass), WorkFactor: 10},
		Amend: func(c *charter.Charter) error {
			for i := range c.Registries {
				if c.Registries[i].Name == "business" {
					c.Registries[i].Index = append(c.Registries[i].Index, "owner_id")
				}
			}
			// The founded charter's own passkeys registry (found/identity.go)
			// is replaced by this test's, indexed by person_id.
			c.Registries = slices.DeleteFunc(c.Registries, func(r charter.Registry) bool { return r.Name == "passkeys" })
			c.Registries = append(c.Registries,
				charter.Registry{Name: "crls", Classification: charter.ClassPublic, Sites: sites, Sync: charter.SyncAsync},
				charter.Registry{Name: "passkeys", Classification: charter.ClassSecret, Sites: sites, Index: []string{"person_id"}, Sync: charter.SyncAsync},
				charter.Registry{Name: "messages", Classification: charter.ClassSecret, Sites: sites, Index: []string{"person"}, Sync: charter.SyncAsync})
			if err := c.SetService(message.Section, message.Config{Registry: "messages", People: "population"}); err != nil {
				return err
			}
			return c.SetService(access.Service, access.Config{
				Auditors: []string{"notary"},
				Citizens: map[string]string{"population": "national_id", "land": "owner_id", "business": "owner_id"},
			})
		},
		AmendKeyed: func(c *charter.Charter, kr *seal.Keyring) error {
			jwks, err := site.PortalJWKS(kr)
			if err != nil {
				return err
			}
			return c.SetService(identity.Section, identity.Config{
				Issuer: portalIssuer, PersonRegistry: "population",
				Claims: map[string]string{"given_name": "first_name", "family_name": "last_name", "birthdate": "birth_date"},
				EID: identity.EIDConfig{CAs: []identity.EIDCA{{Name: "eid-ca", Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))}},
					CRLRegistry: "crls", SerialPrefix: "PNODR-"},
				Portal: identity.Portal{ClientID: "portal", RPID: portalHost, RPName: "Demo Republic", Origins: []string{portalIssuer}, PasskeyRegistry: "passkeys"},
				Clients: []identity.Client{{ID: "portal", Name: "Demo Republic citizen portal", JWKS: jwks,
					RedirectURIs: []string{portalIssuer + "/portal/callback"}, Scopes: []string{"openid", "profile", identity.ScopeRecords}}},
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: pc.dir, Site: "home", Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ reg, id, data string }{
		{"population", pc.alice.person, `{"national_id":"DR-0000101","first_name":"Alice","last_name":"Varga","birth_date":"1980-02-03"}`},
		{"population", pc.bob.person, `{"national_id":"DR-0000102","first_name":"Bob","last_name":"Horvat","birth_date":"1975-11-30"}`},
		{"land", pc.aliceParcel, `{"parcel_id":"P-101","owner_id":"DR-0000101","area_m2":812}`},
		{"land", pc.bobParcel, `{"parcel_id":"P-102","owner_id":"DR-0000102","area_m2":90}`},
		{"business", "B-000101", `{"registration_no":"B-000101","owner_id":"DR-0000101","name":"Varga Bakery"}`},
	} {
		if _, err := loc.Registries.Put(ctx, r.reg, r.id, json.RawMessage(r.data), nil); err != nil {
			t.Fatal(err)
		}
	}
	crlRec, _ := json.Marshal(map[string]any{"crl": crl})
	if _, err := loc.Registries.Put(ctx, "crls", "eid-ca", crlRec, nil); err != nil {
		t.Fatal(err)
	}
	if err := loc.Close(); err != nil {
		t.Fatal(err)
	}

	pair := startHomeAndNorth(t, pc.dir, &syncBuffer{}, pairOptions{checkpointEvery: checkpointEvery})
	pc.home, pc.north, pc.homeURL, pc.northURL = pair.home, pair.north, pair.homeURL, pair.northURL

	// The state's issuer name, served by the home over TLS: the browser
	// resolves it to this listener and trusts this certificate.
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pc.tlsCert = mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: portalHost}, DNSNames: []string{portalHost},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, nil, &tk.PublicKey, tk)
	// The address behind the issuer's name: the home's, until a test
	// moves it to the activated embassy (nothing else changes).
	pc.behind.Store(&handlerBox{pc.home.Handler()})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pc.behind.Load().h.ServeHTTP(w, r) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{pc.tlsCert.Raw}, PrivateKey: tk}}}
	srv.StartTLS()
	pc.issuerAddr = srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	pc.officialsKey = func(id string) siteapi.Signer {
		return siteapi.Signer{Guest: pc.c.Guest.ID, Site: "home", Official: id, Key: officialKey(t, pc.dir, id)}
	}
	return pc
}

// browser starts Chromium resolving the issuer's name to the test's TLS
// listener and trusting its certificate, as a citizen's browser trusts
// the state's.
func (pc *portalCluster) browser(t *testing.T, javascript bool) *browsertest.Browser {
	spki := sha256.Sum256(pc.tlsCert.RawSubjectPublicKeyInfo)
	return browsertest.NewWith(t, javascript,
		chromedp.Flag("host-resolver-rules", "MAP "+portalHost+":443 "+pc.issuerAddr),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
}

// client is a Go HTTP client for the issuer's name, not following redirects.
func (pc *portalCluster) client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(pc.tlsCert)
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == portalHost+":443" {
					addr = pc.issuerAddr
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, b *browsertest.Browser, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := b.Do(60*time.Second, steps...); err != nil {
		t.Fatal(err)
	}
}

func shot(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	if os.Getenv("CHANCERY_SCREENSHOTS") != "1" {
		return
	}
	if err := b.Screenshot(filepath.Join("..", "docs", "screenshots", name)); err != nil {
		t.Fatal(err)
	}
}

// signInWithEID runs the eID sign-in as a citizen does: open the sign-in
// page, give the challenge to the eID tool (here, the card's key in Go),
// paste the certificate and the signature into the form.
func signInWithEID(t *testing.T, b *browsertest.Browser, js bool, h eidHolder) {
	t.Helper()
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/"))
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/"))
	if js {
		shot(t, b, "portal.png")
	}
	do(t, b, chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("#eid-h")))
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/signin"))
	if js {
		shot(t, b, "portal-signin.png")
	}
	challenge, err := browsertest.Run(b, 10*time.Second, chromedp.Value(chromedp.CSS(`input[name="challenge"]`)))
	if err != nil {
		t.Fatal(err)
	}
	do(t, b,
		chromedp.SetValue(chromedp.CSS("#certificate"), base64.StdEncoding.EncodeToString(h.cert.Raw)),
		chromedp.SetValue(chromedp.CSS("#signature"), h.sign(t, challenge)),
		chromedp.Click(chromedp.CSS(`form[action="/portal/signin/eid"] button`)))
	waitLocation(t, b, "/portal/signin/eid")
	if h1 := text(t, b, "h1"); h1 != "My records" {
		t.Fatalf("after the eID sign-in: %q: %s", h1, text(t, b, "main"))
	}
}

// TestCitizenPortalInABrowser: a citizen signs in to the portal on the
// state's issuer name through its OpenID Connect provider — with their
// eID (script off), and with a passkey registered through the portal at
// home (script on, a virtual authenticator); sees their records and, in
// the data tracker, the reads that caused; downloads a certified extract
// (PDF and QR PNG) that verifies offline with the charter alone. Every
// portal page passes axe-core with script on and off. A forged CSRF token
// and another citizen's record are refused; an official's page session
// does not open the portal, nor a citizen's the officials' pages.
func TestCitizenPortalInABrowser(t *testing.T) {
	if browsertest.Find() == "" && os.Getenv("CI") != "true" {
		t.Skip("no chromium")
	}
	pc := startPortalCluster(t, time.Millisecond)
	verifier, err := offline.NewVerifier(pc.c)
	if err != nil {
		t.Fatal(err)
	}
	registrar := &siteapi.Client{BaseURL: pc.homeURL, Signer: pc.officialsKey("registrar")}
	if _, err := registrar.SendMessage(context.Background(), siteapi.MessageRequest{Person: pc.alice.person,
		Subject: "Your passport renewal", Body: "Your new passport is ready at the embassy in Northland."}); err != nil {
		t.Fatal(err)
	}

	for _, js := range []bool{false, true} {
		b := pc.browser(t, js)
		signInWithEID(t, b, js, pc.alice)
		main := text(t, b, "main")
		for _, want := range []string{"Alice Varga", pc.aliceParcel, "B-000101", "Varga Bakery"} {
			if !strings.Contains(main, want) {
				t.Errorf("javascript=%v: my records lack %q", js, want)
			}
		}
		if strings.Contains(main, pc.bobParcel) {
			t.Errorf("javascript=%v: Alice's records show Bob's parcel", js)
		}
		axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/records"))
		if js {
			shot(t, b, "portal-records.png")
		}

		// The data tracker shows the reads the records page caused.
		do(t, b, chromedp.Navigate(portalIssuer+"/portal/tracker"))
		if tr := text(t, b, "main"); !strings.Contains(tr, "the citizen reads their records in the portal") || !strings.Contains(tr, "you") {
			t.Fatalf("javascript=%v: the tracker does not show the portal's reads: %s", js, tr)
		}
		axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/tracker"))
		if js {
			shot(t, b, "portal-tracker.png")
		}

		// A form with a forged CSRF token changes nothing.
		landForm := `form[action="/portal/extracts"]:has(input[name="registry"][value="land"])`
		do(t, b, chromedp.Navigate(portalIssuer+"/portal/records"),
			chromedp.SetValue(chromedp.CSS(landForm+` input[name="csrf"]`), "forged"),
			chromedp.Click(chromedp.CSS(landForm+" button")), chromedp.WaitVisible(chromedp.CSS(".problem")))
		if h1 := text(t, b, "h1"); h1 != "The form was refused" {
			t.Fatalf("javascript=%v: a forged CSRF token: %q", js, h1)
		}
		axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "refusal"))

		// Bob's parcel through Alice's form: refused by the access rules.
		do(t, b, chromedp.Navigate(portalIssuer+"/portal/records"),
			chromedp.SetValue(chromedp.CSS(landForm+` input[name="record"]`), pc.bobParcel),
			chromedp.Click(chromedp.CSS(landForm+" button")), chromedp.WaitVisible(chromedp.CSS(".problem")))
		if p := text(t, b, ".problem"); !strings.Contains(p, "not the citizen's own record") {
			t.Fatalf("javascript=%v: another citizen's record: %q", js, p)
		}

		// A certified extract of Alice's parcel, downloaded as PDF and QR.
		do(t, b, chromedp.Navigate(portalIssuer+"/portal/records"),
			chromedp.Click(chromedp.CSS(landForm+" button")), chromedp.WaitVisible(chromedp.CSS(".cards")))
		if h1 := text(t, b, "h1"); h1 != "Your certified extract" {
			t.Fatalf("javascript=%v: extract: %q: %s", js, h1, text(t, b, "main"))
		}
		axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/extracts/{id}"))
		if js {
			shot(t, b, "portal-extract.png")
		}
		dir := t.TempDir()
		if err := b.AllowDownloads(dir); err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct{ link, file string }{
			{`a[href$="/extract.pdf"]`, "land-" + pc.aliceParcel + ".pdf"},
			{`a[href$="/qr.png?download"]`, "land-" + pc.aliceParcel + "-qr.png"},
		} {
			do(t, b, chromedp.Click(chromedp.CSS(f.link)))
			data := waitFile(t, filepath.Join(dir, f.file))
			rep, kind, err := extract.VerifyFile(verifier, data)
			if err != nil {
				t.Fatalf("javascript=%v: the downloaded %s (%s) does not verify offline: %v", js, f.file, kind, err)
			}
			if rep.Claims.Record != pc.aliceParcel || rep.Claims.Fields["owner_id"] != pc.alice.person {
				t.Fatalf("javascript=%v: %s certifies %+v", js, f.file, rep.Claims)
			}
		}
		do(t, b, chromedp.Navigate(portalIssuer+"/portal/tracker"))
		if tr := text(t, b, "main"); !strings.Contains(tr, "the citizen asks for a certified extract in the portal") {
			t.Fatalf("javascript=%v: the tracker does not show the extract's read: %s", js, tr)
		}

		inboxAndProcedures(t, pc, b, js)
		if js {
			passkeySignIn(t, pc, b)
		}
		checkSessionKinds(t, pc, b)
	}
}

// inboxAndProcedures: the citizen reads the message an official sent
// (the reading in the tracker), sees the notices, changes their address
// (decided at once, the population record changed), and, as a parcel's
// seller, starts its transfer and gives their consent in the queue.
func inboxAndProcedures(t *testing.T, pc *portalCluster, b *browsertest.Browser, js bool) {
	t.Helper()
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/inbox"))
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/inbox"))
	do(t, b, chromedp.Click(chromedp.CSS(`td a[href^="/portal/inbox/"]`)), chromedp.WaitVisible(chromedp.CSS(".body")))
	if m := text(t, b, "main"); !strings.Contains(m, "ready at the embassy in Northland") {
		t.Fatalf("javascript=%v: the message: %s", js, m)
	}
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/inbox/{id}"))
	if js {
		shot(t, b, "portal-message.png")
	}
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/notices"))
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/notices"))

	do(t, b, chromedp.Navigate(portalIssuer+"/portal/procedures"))
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/procedures"))
	if js {
		shot(t, b, "portal-procedures.png")
	}
	street := "12 Harbour Street"
	if js {
		street = "3 Station Road"
	}
	do(t, b,
		chromedp.SetValue(chromedp.CSS("#change-address-street"), street),
		chromedp.SetValue(chromedp.CSS("#change-address-city"), "Northland"),
		chromedp.SetValue(chromedp.CSS("#change-address-postcode"), "10115"),
		chromedp.Click(chromedp.CSS(`#p-change-address + form button`)))
	waitAt(t, b, "/portal/cases/")
	if m := text(t, b, "main"); !strings.Contains(m, "DECIDED") || !strings.Contains(m, "population record "+pc.alice.person) {
		t.Fatalf("javascript=%v: change of address: %s", js, m)
	}
	axeClean(t, b, fmt.Sprintf("javascript=%v %s", js, "/portal/cases/{id}"))
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/records"))
	if m := text(t, b, "main"); !strings.Contains(m, street+", 10115 Northland") {
		t.Fatalf("javascript=%v: the new address is not in the records: %s", js, m)
	}
	if js {
		return
	}
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/procedures"),
		chromedp.SetValue(chromedp.CSS("#transfer-parcel-parcel_id"), pc.aliceParcel),
		chromedp.SetValue(chromedp.CSS("#transfer-parcel-buyer_id"), pc.bob.person),
		chromedp.SetValue(chromedp.CSS("#transfer-parcel-price"), "25000"),
		chromedp.Click(chromedp.CSS(`#p-transfer-parcel + form button`)))
	waitAt(t, b, "/portal/cases/")
	if m := text(t, b, "main"); !strings.Contains(m, "OPEN") {
		t.Fatalf("transfer of a parcel: %s", m)
	}
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/procedures"),
		chromedp.Click(chromedp.CSS(`form[action="/portal/procedures/consent"] button`)))
	waitAt(t, b, "/portal/cases/")
	if m := text(t, b, "main"); !strings.Contains(m, "seller-consents: citizen "+pc.alice.person) {
		t.Fatalf("the seller's consent: %s", m)
	}
}

// passkeySignIn registers a passkey through the portal (signed in with
// the eID, at home), signs out, and signs in with the passkey alone.
func passkeySignIn(t *testing.T, pc *portalCluster, b *browsertest.Browser) {
	t.Helper()
	auth, err := b.AddVirtualAuthenticator()
	if err != nil {
		t.Fatal(err)
	}
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/records"), chromedp.Click(chromedp.CSS("#passkey-register-button")))
	waitText(t, b, "#passkey-register-status", "registered")
	if creds, err := b.Credentials(auth); err != nil || len(creds) != 1 {
		t.Fatalf("the authenticator holds %d credentials (%v)", len(creds), err)
	}
	do(t, b, chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("a.button")))
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/records"))
	if h1 := text(t, b, "h1"); h1 != "Sign in to see this page" {
		t.Fatalf("after signing out: %q", h1)
	}
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/signin"), chromedp.Click(chromedp.CSS("#passkey-button")))
	waitLocation(t, b, "/portal/signin")
	if main := text(t, b, "main"); !strings.Contains(main, "Alice Varga") {
		t.Fatalf("after the passkey sign-in: %s", main)
	}
}

// checkSessionKinds: the browser's citizen session opens no officials'
// page; an official's page session opens no portal page.
func checkSessionKinds(t *testing.T, pc *portalCluster, b *browsertest.Browser) {
	t.Helper()
	cookies, err := browsertest.Run(b, 10*time.Second, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{portalIssuer + "/portal/"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	var citizen string
	for _, c := range cookies.Cookies {
		if c.Name == ui.SessionCookie {
			citizen = c.Value
			if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict {
				t.Errorf("the citizen's session cookie is %+v: want HttpOnly, Secure, SameSite=Strict", c)
			}
		}
	}
	if citizen == "" {
		t.Fatal("no session cookie in the browser")
	}
	get := func(base, path, session string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.AddCookie(&http.Cookie{Name: ui.SessionCookie, Value: session})
		res, err := pc.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if code, body := get(pc.homeURL, "/ui/dashboard", citizen); code != http.StatusForbidden || !strings.Contains(body, "citizen portal") {
		t.Errorf("a citizen's session on the dashboard: %d", code)
	}
	login, err := siteapi.LoginPages(context.Background(), http.DefaultClient, pc.homeURL, pc.c.Guest.ID, pc.officialsKey("cio"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := pc.client().Get(pc.homeURL + login.Path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var official string
	for _, c := range res.Cookies() {
		if c.Name == ui.SessionCookie {
			official = c.Value
		}
	}
	if code, _ := get(pc.homeURL, "/ui/dashboard", official); code != http.StatusOK {
		t.Fatalf("the official's own session on the dashboard: %d", code)
	}
	if code, body := get(portalIssuer, "/portal/records", official); code != http.StatusForbidden || !strings.Contains(body, "for citizens") {
		t.Errorf("an official's session on the portal: %d %s", code, body)
	}
}

// location is the browser's address.
func location(t *testing.T, b *browsertest.Browser) string {
	t.Helper()
	loc, err := browsertest.Run(b, 10*time.Second, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// waitLocation waits until the browser has left the page at path (and
// the sign-in page), for wherever it went: the test then says what it shows.
func waitLocation(t *testing.T, b *browsertest.Browser, from string) {
	t.Helper()
	waitFor(t, 30*time.Second, "leave "+from, func() (bool, string) {
		loc := location(t, b)
		return !strings.HasSuffix(loc, from) && !strings.HasSuffix(loc, "/portal/signin"), loc
	})
	do(t, b, chromedp.WaitReady(chromedp.CSS("footer")))
}

// waitAt waits until the browser is at a page whose address holds want.
func waitAt(t *testing.T, b *browsertest.Browser, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, "reach "+want, func() (bool, string) {
		loc := location(t, b)
		return strings.Contains(loc, want), loc
	})
	do(t, b, chromedp.WaitReady(chromedp.CSS("footer")))
}

func waitText(t *testing.T, b *browsertest.Browser, sel, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, sel+" saying "+want, func() (bool, string) {
		got := text(t, b, sel)
		return strings.Contains(got, want), got
	})
}

// waitFile waits for a download to land.
func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	var data []byte
	waitFor(t, 30*time.Second, "download "+filepath.Base(path), func() (bool, string) {
		b, err := os.ReadFile(path)
		data = b
		return err == nil && len(b) > 0, fmt.Sprint(err)
	})
	return data
}

// TestPortalNeedsItsClient: a charter that names an issuer but no portal
// client gets no portal, and the page says what the charter lacks; the
// site's own address serves no portal at all.
func TestPortalNeedsItsClient(t *testing.T) {
	srv := serveIssuerHome(t, foundWithIssuer(t, portalIssuer))
	get := func(host string) (int, string) {
		code, b := getHost(t, srv, host, "/portal/signin")
		return code, string(b)
	}
	if code, body := get(portalHost); code != http.StatusServiceUnavailable || !strings.Contains(body, "names no portal client") {
		t.Fatalf("a charter without a portal client: %d %s", code, body)
	}
	if code, _ := get("127.0.0.1"); code != http.StatusNotFound {
		t.Fatalf("the portal under the site's own address: %d", code)
	}
}

// TestPortalAtTheActivatedEmbassy: a citizen registers a passkey through
// the portal at home; the home is lost, embassy-north is activated, and
// only the address behind the issuer's name moves. The same browser signs
// in with the same passkey at the embassy's portal and sees their
// records, served by embassy-north.
func TestPortalAtTheActivatedEmbassy(t *testing.T) {
	if browsertest.Find() == "" && os.Getenv("CI") != "true" {
		t.Skip("no chromium")
	}
	pc := startPortalCluster(t, time.Millisecond)
	b := pc.browser(t, true)
	signInWithEID(t, b, true, pc.alice)
	if _, err := b.AddVirtualAuthenticator(); err != nil {
		t.Fatal(err)
	}
	do(t, b, chromedp.Click(chromedp.CSS("#passkey-register-button")))
	waitText(t, b, "#passkey-register-status", "registered")

	// The passkey record reaches embassy-north's mirror.
	size := func(base string) uint64 {
		raw, err := (ledger.HTTPFetcher{Base: base}).Fetch(context.Background(), ledger.CheckpointPath)
		if err != nil {
			return 0
		}
		cp, err := ledger.ParseSignedCheckpoint(raw)
		if err != nil {
			return 0
		}
		return cp.Size
	}
	home := size(pc.homeURL + "/ledger")
	waitFor(t, 30*time.Second, "embassy-north's mirror holding the passkey", func() (bool, string) {
		n := size(pc.northURL + "/guests/" + pc.c.Guest.ID + "/ledger")
		return n >= home, fmt.Sprintf("%d of %d entries", n, home)
	})

	(&pagesPair{dir: pc.dir, c: pc.c, north: &pageSite{url: pc.northURL}}).activateNorth(t)
	pc.behind.Store(&handlerBox{pc.north.Handler()})
	waitFor(t, 60*time.Second, "embassy-north serving the issuer", func() (bool, string) {
		res, err := pc.client().Get(portalIssuer + "/.well-known/openid-configuration")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})

	// The home's session is gone with the home; the passkey is not.
	do(t, b, chromedp.Navigate(portalIssuer+"/portal/signin"))
	waitFor(t, 60*time.Second, "the portal's sign-in at embassy-north", func() (bool, string) {
		h := text(t, b, "h1")
		if h != "Sign in" {
			do(t, b, chromedp.Navigate(portalIssuer+"/portal/signin"))
		}
		return h == "Sign in", h
	})
	do(t, b, chromedp.Click(chromedp.CSS("#passkey-button")))
	waitAt(t, b, "/portal/records")
	if where := text(t, b, ".where"); !strings.Contains(where, "embassy-north") {
		t.Fatalf("the records are served by %q", where)
	}
	if main := text(t, b, "main"); !strings.Contains(main, "Alice Varga") || !strings.Contains(main, pc.aliceParcel) {
		t.Fatalf("Alice's records at embassy-north: %s", main)
	}
	axeClean(t, b, "/portal/records at embassy-north")
}
