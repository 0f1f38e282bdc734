package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

type bench struct {
	w       *world
	home    *site
	res     *resolver
	browser *http.Client
	tax     *relyingParty
}

func newBench(t testing.TB, amend ...func(*Config)) *bench {
	t.Helper()
	w := newWorld(t)
	for _, f := range amend {
		f(&w.idcfg)
		w.setIdentity(t)
	}
	if _, ok := t.(*testing.B); ok {
		w.checkpointEvery = 0 // the ledger's default, as a site runs
	}
	_, signKey, _ := ed25519.GenerateKey(rand.Reader)
	home := w.openSite(t, "home", filepath.Join(t.TempDir(), "home"), signKey)
	w.seed(t, home)
	res := &resolver{}
	res.point(home)
	b := &bench{w: w, home: home, res: res, browser: res.client(w.pki.tlsPool, false)}
	b.tax = newRP(t, res, w, w.tax, rpRedirect, oidc.ScopeProfile, ScopeRecords)
	return b
}

// startLogin starts a sign-in of rp and returns the login page's
// challenge and the relying party's flow.
func startLogin(t testing.TB, browser *http.Client, rp *relyingParty) (LoginChallenge, flow) {
	t.Helper()
	f := rp.start()
	resp, err := browser.Get(f.authURL)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	resp, err = browser.Get(location(t, resp).String())
	if err != nil {
		t.Fatal(err)
	}
	defer drain(resp)
	var lc LoginChallenge
	if err := json.NewDecoder(resp.Body).Decode(&lc); err != nil {
		t.Fatal(err)
	}
	return lc, f
}

// challenge starts a sign-in of the tax office and returns the login challenge.
func (b *bench) challenge(t testing.TB) LoginChallenge {
	lc, _ := startLogin(t, b.browser, b.tax)
	return lc
}

func (b *bench) post(t testing.TB, body []byte) (int, string) {
	t.Helper()
	resp, err := b.browser.Post(testIssuer+"/eid/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(rb)
}

// TestEIDRefusals: each bad sign-in gets a 401 access_denied naming the
// reason, and adds nothing to the ledger.
func TestEIDRefusals(t *testing.T) {
	b := newBench(t)
	w := b.w
	now := time.Now()
	stranger := w.pki.issue(t, "P-100", w.pki.otherCA, w.pki.otherCAKey, now.Add(-time.Hour), now.Add(time.Hour))
	expired := w.pki.issue(t, "P-100", w.pki.ca, w.pki.caKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	unknown := w.pki.issue(t, "P-999", w.pki.ca, w.pki.caKey, now.Add(-time.Hour), now.Add(time.Hour))
	revoked := w.pki.issue(t, "P-100", w.pki.ca, w.pki.caKey, now.Add(-time.Hour), now.Add(time.Hour))
	// The certificate signs in before its revocation (the CRL is cached),
	// and not after the new CRL lands in the registry.
	if st, body := b.post(t, revoked.answer(t, testIssuer, b.challenge(t).Challenge)); st != http.StatusSeeOther {
		t.Fatalf("before revocation: %d %s", st, body)
	}
	crl, _ := json.Marshal(map[string]any{"ca": "demo-eid-ca", "crl": w.pki.crl(t, revoked.cert)})
	if _, err := b.home.regs.Put(context.Background(), "eid-crl", "demo-eid-ca", crl, nil); err != nil {
		t.Fatal(err)
	}
	size := b.home.log.Size()

	for _, tc := range []struct {
		name string
		body func(lc LoginChallenge) []byte
		want string
	}{
		{"wrong CA", func(lc LoginChallenge) []byte { return stranger.answer(t, testIssuer, lc.Challenge) }, "does not chain"},
		{"expired certificate", func(lc LoginChallenge) []byte { return expired.answer(t, testIssuer, lc.Challenge) }, "certificate expired"},
		{"revoked certificate", func(lc LoginChallenge) []byte { return revoked.answer(t, testIssuer, lc.Challenge) }, "certificate revoked"},
		{"no person record", func(lc LoginChallenge) []byte { return unknown.answer(t, testIssuer, lc.Challenge) }, "no person record"},
		{"signature for another issuer", func(lc LoginChallenge) []byte { return w.alice.answer(t, "https://evil.example", lc.Challenge) }, "signature does not verify"},
		{"unknown challenge", func(lc LoginChallenge) []byte { return w.alice.answer(t, testIssuer, newID()+"AAAAAAAAAA") }, "unknown, expired or already used challenge"},
		{"garbage", func(lc LoginChallenge) []byte { return []byte(`{"challenge":1}`) }, "eid response"},
	} {
		lc := b.challenge(t)
		st, body := b.post(t, tc.body(lc))
		if st/100 != 4 || !strings.Contains(body, tc.want) || !strings.Contains(body, "access_denied") && st == 401 {
			t.Errorf("%s: %d %s, want 4xx naming %q", tc.name, st, body, tc.want)
		}
	}

	// Replayed: the first answer signs in, the same again is refused.
	lc := b.challenge(t)
	ans := w.alice.answer(t, testIssuer, lc.Challenge)
	if st, body := b.post(t, ans); st != http.StatusSeeOther {
		t.Fatalf("good answer: %d %s", st, body)
	}
	if st, body := b.post(t, ans); st != http.StatusUnauthorized || !strings.Contains(body, "already used") {
		t.Errorf("replayed answer: %d %s", st, body)
	}
	// Expired: the site's clock moves past the challenge's life.
	lc = b.challenge(t)
	b.home.advance(3 * time.Minute)
	st, body := b.post(t, w.alice.answer(t, testIssuer, lc.Challenge))
	b.home.now.Store(nil)
	if st != http.StatusUnauthorized || !strings.Contains(body, "expired at") {
		t.Errorf("expired challenge: %d %s", st, body)
	}
	if got := b.home.log.Size(); got != size {
		t.Errorf("refused sign-ins added %d ledger entries", got-size)
	}
}

// TestOIDCRefusals walks the authorization and token endpoints' refusals.
func TestOIDCRefusals(t *testing.T) {
	b := newBench(t)
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := b.browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	base := url.Values{"client_id": {"tax-office"}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s1"}, "nonce": {"n1"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range base {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return testIssuer + "/authorize?" + q.Encode()
	}
	if r := get(with("client_id", "nobody")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown client: %d", r.StatusCode)
	}
	if r := get(with("redirect_uri", "https://evil.example/cb")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("bad redirect: %d", r.StatusCode)
	}
	for name, u := range map[string]string{
		"no PKCE":    with("code_challenge", ""),
		"plain PKCE": with("code_challenge_method", "plain"),
	} {
		r := get(u)
		loc := location(t, r)
		if r.StatusCode != http.StatusFound || !hasPrefix(loc, rpRedirect) || loc.Query().Get("error") != "invalid_request" {
			t.Errorf("%s: %d %s, want a redirect with invalid_request", name, r.StatusCode, loc)
		}
	}
	r := get(with("scope", "openid verify profile records nonsense"))
	if loc := location(t, r); loc.Query().Get("error") != "invalid_scope" || loc.Query().Get("state") != "s1" || loc.Query().Get("iss") != testIssuer {
		t.Errorf("disallowed scope: %s", loc)
	}
	bank := newRP(t, b.res, b.w, b.w.bank, "https://bank.example/cb", ScopeRecords)
	back, err := browse(t, b.browser, bank.start().authURL, b.w.alice)
	if err != nil || back.Query().Get("error") != "invalid_scope" {
		t.Errorf("bank asking for records: %v %v", back, err)
	}

	// Wrong PKCE verifier.
	f := b.tax.start()
	back, err = browse(t, b.browser, f.authURL, b.w.alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.tax.exchange(t, back.Query().Get("code"), oauth2.GenerateVerifier()); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("wrong verifier: %v", err)
	}
	// No client assertion (a client secret instead).
	f = b.tax.start()
	back, _ = browse(t, b.browser, f.authURL, b.w.alice)
	conf := b.tax.conf
	conf.ClientSecret = "guess"
	if _, err := conf.Exchange(b.tax.ctx, back.Query().Get("code"), oauth2.VerifierOption(f.verifier)); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("client secret: %v", err)
	}
	// Reused code: refused, and the token issued from it is revoked.
	f = b.tax.start()
	back, _ = browse(t, b.browser, f.authURL, b.w.alice)
	code := back.Query().Get("code")
	tok, err := b.tax.exchange(t, code, f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := b.tax.get(t, "/records/population/P-100?purpose=x", tok); st != http.StatusOK {
		t.Fatalf("fresh token: %d", st)
	}
	if _, err := b.tax.exchange(t, code, f.verifier); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("reused code: %v", err)
	}
	if st, _, h := b.tax.get(t, "/records/population/P-100?purpose=x", tok); st != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "revoked") {
		t.Errorf("token of a reused code: %d %s", st, h.Get("WWW-Authenticate"))
	}
	// A citizen's read of another citizen's record, and one without purpose.
	tok, _ = b.tax.signIn(t, b.browser, b.w.alice)
	if st, _, _ := b.tax.get(t, "/records/population/P-200?purpose=x", tok); st != http.StatusForbidden {
		t.Errorf("other citizen's record: %d", st)
	}
	if st, _, _ := b.tax.get(t, "/records/population/P-100", tok); st != http.StatusBadRequest {
		t.Errorf("no purpose: %d", st)
	}
	if st, _, _ := b.tax.get(t, "/records/business/B-1?purpose=x", tok); st != http.StatusForbidden {
		t.Errorf("registry the client may not read: %d", st)
	}
	st, body, _ := b.tax.get(t, "/records/land?purpose=my+parcels", tok)
	if st != http.StatusOK || !strings.Contains(string(body), "L-7") || strings.Contains(string(body), "L-8") {
		t.Errorf("find own parcels: %d %s", st, body)
	}
	// A fenced site honours no token.
	b.home.fenced.Store(true)
	if st, _, _ := b.tax.get(t, "/records/population/P-100?purpose=x", tok); st != http.StatusServiceUnavailable {
		t.Errorf("fenced site: %d", st)
	}
	b.home.fenced.Store(false)
}

// TestPushedAuthorizationRequest: RFC 9126 with private_key_jwt; the
// request_uri is single-use and bound to its client.
func TestPushedAuthorizationRequest(t *testing.T) {
	b := newBench(t)
	f := b.tax.start()
	au, _ := url.Parse(f.authURL)
	form := au.Query()
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", b.w.tax.assertion(t, testIssuer))
	resp, err := b.browser.PostForm(testIssuer+"/par", form)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		RequestURI string `json:"request_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&pr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || pr.RequestURI == "" {
		t.Fatalf("par: %d", resp.StatusCode)
	}
	u := testIssuer + "/authorize?" + url.Values{"client_id": {"tax-office"}, "request_uri": {pr.RequestURI}}.Encode()
	back, err := browse(t, b.browser, u, b.w.alice)
	if err != nil || back.Query().Get("state") != f.state {
		t.Fatalf("sign-in by request_uri: %v %v", back, err)
	}
	if _, err := b.tax.exchange(t, back.Query().Get("code"), f.verifier); err != nil {
		t.Fatal(err)
	}
	resp, _ = b.browser.Get(u)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reused request_uri: %d", resp.StatusCode)
	}
	// Without a client assertion, nothing is pushed.
	form.Del("client_assertion")
	resp, _ = b.browser.PostForm(testIssuer+"/par", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("par without client authentication: %d", resp.StatusCode)
	}
	// The metadata names the endpoint.
	resp, _ = b.browser.Get(testIssuer + "/.well-known/openid-configuration")
	var meta map[string]any
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta["pushed_authorization_request_endpoint"] != testIssuer+"/par" || meta["issuer"] != testIssuer ||
		fmt.Sprint(meta["code_challenge_methods_supported"]) != "[S256]" || fmt.Sprint(meta["token_endpoint_auth_methods_supported"]) != "[private_key_jwt]" ||
		fmt.Sprint(meta["id_token_signing_alg_values_supported"]) != "[ES256]" || fmt.Sprint(meta["response_types_supported"]) != "[code]" {
		t.Errorf("metadata: %v", meta)
	}
}

// TestEndSession: RP-initiated logout with the ID token as hint ends the
// citizen's tokens at the client and returns to a registered URI.
func TestEndSession(t *testing.T) {
	b := newBench(t)
	tok, _ := b.tax.signIn(t, b.browser, b.w.alice)
	other, _ := b.tax.signIn(t, b.browser, b.w.bob)
	if st, _, _ := b.tax.get(t, "/records/population/P-100?purpose=x", tok); st != http.StatusOK {
		t.Fatalf("before logout: %d", st)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := b.tax.provider.Claims(&meta); err != nil || meta.EndSession == "" {
		t.Fatalf("no end_session_endpoint: %v", err)
	}
	u := meta.EndSession + "?" + url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"bye"}}.Encode()
	resp, err := b.browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	if loc := location(t, resp); resp.StatusCode != http.StatusFound || !hasPrefix(loc, rpLoggedOut) {
		t.Fatalf("end session: %d %s", resp.StatusCode, loc)
	}
	if st, _, _ := b.tax.get(t, "/records/population/P-100?purpose=x", tok); st != http.StatusUnauthorized {
		t.Errorf("token after logout: %d, want 401", st)
	}
	if st, _, _ := b.tax.get(t, "/records/population/P-200?purpose=x", other); st != http.StatusOK {
		t.Errorf("another citizen's token after the logout: %d", st)
	}
	// Revocation (RFC 7009) with private_key_jwt.
	resp, err = b.browser.PostForm(testIssuer+"/revoke", url.Values{"token": {other.AccessToken}, "token_type_hint": {"access_token"},
		"client_id":             {"tax-office"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {b.w.tax.assertion(t, testIssuer)}})
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if st, _, _ := b.tax.get(t, "/records/population/P-200?purpose=x", other); st != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", st)
	}
}

// TestVerificationAPI: match or no-match, nothing else; only for clients
// allowed to; rate-limited; every call an access entry.
func TestVerificationAPI(t *testing.T) {
	b := newBench(t)
	call := func(k rpKey, q string) (int, string) {
		t.Helper()
		resp, err := b.browser.PostForm(testIssuer+"/verify", url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {k.assertion(t, testIssuer)},
			"request":               {q}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	size := b.home.log.Size()
	for _, tc := range []struct{ q, want string }{
		{`{"id":"P-100","given_name":"alice","family_name":"Varga","birthdate":"1980-02-03","purpose":"open account"}`, `{"match":true}`},
		{`{"id":"P-100","birthdate":"1980-02-04","purpose":"open account"}`, `{"match":false}`},
		{`{"id":"P-404","family_name":"Varga","purpose":"open account"}`, `{"match":false}`},
	} {
		if st, body := call(b.w.tax, tc.q); st != http.StatusOK || body != tc.want {
			t.Errorf("%s: %d %s, want %s", tc.q, st, body, tc.want)
		}
	}
	if got := b.home.log.Size() - size; got != 3 {
		t.Errorf("%d access entries for 3 verifications", got)
	}
	if st, body := call(b.w.tax, `{"id":"P-100","given_name":"Alice","purpose":"x"}`); st != http.StatusTooManyRequests {
		t.Errorf("past the burst: %d %s", st, body)
	}
	if st, _ := call(b.w.bank, `{"id":"P-100","given_name":"Alice","purpose":"x"}`); st != http.StatusForbidden {
		t.Errorf("client without verify: %d", st)
	}
	if st, _ := call(rpKey{id: "tax-office", kid: "tax-1", key: newKey(t)}, `{"id":"P-100","given_name":"Alice","purpose":"x"}`); st != http.StatusUnauthorized {
		t.Errorf("forged assertion: %d", st)
	}
	seen, err := b.home.svc.TrackerForAuditor(context.Background(), "aud-1", "P-100")
	if err != nil || len(seen) != 2 || seen[0].Kind != "verify" || seen[0].Purpose != "open account" {
		t.Errorf("auditor's tracker: %+v %v", seen, err)
	}
	if _, err := b.home.svc.TrackerForAuditor(context.Background(), "reg-1", "P-100"); err == nil {
		t.Error("a registrar read a citizen's tracker")
	}
}

// TestClientAssertionReplay: a client assertion is used once; one without
// jti is refused.
func TestClientAssertionReplay(t *testing.T) {
	b := newBench(t)
	assertion := b.w.tax.assertion(t, testIssuer)
	redeem := func(assertion string) (int, string) {
		t.Helper()
		f := b.tax.start()
		back, err := browse(t, b.browser, f.authURL, b.w.alice)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := b.browser.PostForm(testIssuer+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
			"redirect_uri": {rpRedirect}, "code_verifier": {f.verifier}, "client_id": {"tax-office"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer drain(resp)
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if st, body := redeem(assertion); st != http.StatusOK {
		t.Fatalf("first use: %d %s", st, body)
	}
	if st, body := redeem(assertion); st != http.StatusUnauthorized || !strings.Contains(body, "already used") {
		t.Errorf("replayed assertion: %d %s", st, body)
	}
	noJTI := b.w.tax.assertionWith(t, testIssuer, "")
	if st, body := redeem(noJTI); st != http.StatusUnauthorized || !strings.Contains(body, "no jti") {
		t.Errorf("assertion without jti: %d %s", st, body)
	}
}
