package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
)

// chromium finds Debian's chromium. Under CI=true a missing browser fails
// the test (make test installs it); elsewhere the test skips.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (make deps installs it with apt-get)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// portalPage is the citizen portal's passkey page, reduced to what the
// ceremony needs: the browser's own JSON codecs for WebAuthn options and
// credentials, and same-origin calls to the identity service.
const portalPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Passkeys</title></head>
<body><h1>Demo Republic passkeys</h1>
<script>
async function register(token) {
  const auth = {Authorization: 'Bearer ' + token};
  const b = await (await fetch('/passkey/register/begin', {method: 'POST', headers: auth})).json();
  const cred = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(b.options.publicKey)});
  const r = await fetch('/passkey/register/finish?session=' + encodeURIComponent(b.session),
    {method: 'POST', headers: Object.assign({'Content-Type': 'application/json'}, auth), body: JSON.stringify(cred.toJSON())});
  return r.status + ' ' + await r.text();
}
async function login(authRequestID) {
  const q = '?authRequestID=' + encodeURIComponent(authRequestID);
  const b = await (await fetch('/passkey/login/begin' + q, {method: 'POST'})).json();
  const cred = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(b.options.publicKey)});
  const r = await fetch('/passkey/login/finish' + q, {method: 'POST', redirect: 'manual',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(cred.toJSON())});
  return r.type === 'opaqueredirect' ? 'signed in' : r.status + ' ' + await r.text();
}
</script></body></html>`

// TestPasskeyInChromium registers a passkey in headless Chromium with a
// virtual authenticator (WebAuthn domain of the DevTools protocol) and
// signs in with it; the relying party (go-oidc) then redeems the code.
// The portal is served on http://localhost, a secure context, which is
// the RP id and origin the charter names for this test.
func TestPasskeyInChromium(t *testing.T) {
	bin := chromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	w := newWorld(t)
	w.idcfg.Portal.RPID = "localhost"
	w.idcfg.Portal.Origins = []string{origin}
	w.setIdentity(t)
	_, signKey, _ := ed25519.GenerateKey(rand.Reader)
	home := w.openSite(t, "home", filepath.Join(t.TempDir(), "home"), signKey)
	w.seed(t, home)
	res := &resolver{}
	res.point(home)
	browser := res.client(w.pki.tlsPool, false)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /portal", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.Write([]byte(portalPage))
	})
	mux.Handle("/", home.svc)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})

	portal := newRP(t, res, w, w.portal, portalReturn, ScopeRecords)
	ptok, _ := portal.signIn(t, browser, w.alice)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	eval := func(js string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return out
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/portal")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21, Transport: cdpwebauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}}); err != nil {
		t.Fatal(err)
	}
	tokJSON, _ := json.Marshal(ptok.AccessToken)
	if got := eval("register(" + string(tokJSON) + ")"); !strings.HasPrefix(got, "201 ") {
		t.Fatalf("registration in Chromium: %s", got)
	}

	// The tax office starts a sign-in; the citizen's browser answers with
	// the passkey; the tax office redeems the code.
	tax := newRP(t, res, w, w.tax, rpRedirect, oidc.ScopeProfile, ScopeRecords)
	f := tax.start()
	resp, err := browser.Get(f.authURL)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	authReq := location(t, resp).Query().Get("authRequestID")
	idJSON, _ := json.Marshal(authReq)
	if got := eval("login(" + string(idJSON) + ")"); got != "signed in" {
		t.Fatalf("passkey sign-in in Chromium: %s", got)
	}
	resp, err = browser.Get(testIssuer + "/authorize/callback?id=" + authReq)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	back := location(t, resp)
	tok, err := tax.exchange(t, back.Query().Get("code"), f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := tax.verifier.Verify(tax.ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Subject != "P-100" {
		t.Fatalf("id token: %v %v", idt, err)
	}
	// A second sign-in with the same passkey: the counter moved on.
	f = tax.start()
	resp, _ = browser.Get(f.authURL)
	drain(resp)
	idJSON, _ = json.Marshal(location(t, resp).Query().Get("authRequestID"))
	if got := eval("login(" + string(idJSON) + ")"); got != "signed in" {
		t.Fatalf("second passkey sign-in: %s", got)
	}
}
