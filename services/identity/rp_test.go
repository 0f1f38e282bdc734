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

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// relyingParty is an independent relying party: go-oidc and x/oauth2,
// configured once against the state's issuer.
type relyingParty struct {
	key      rpKey
	conf     oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	ctx      context.Context
	http     *http.Client
}

func newRP(t testing.TB, res *resolver, w *world, key rpKey, redirect string, scopes ...string) *relyingParty {
	t.Helper()
	hc := res.client(w.pki.tlsPool, true)
	ctx := oidc.ClientContext(context.Background(), hc)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	p, err := oidc.NewProvider(ctx, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	return &relyingParty{key: key, provider: p, ctx: ctx, http: hc,
		conf:     oauth2.Config{ClientID: key.id, Endpoint: ep, RedirectURL: redirect, Scopes: append([]string{oidc.ScopeOpenID}, scopes...)},
		verifier: p.Verifier(&oidc.Config{ClientID: key.id})}
}

// flow is one sign-in in progress: what the relying party remembers.
type flow struct {
	state, nonce, verifier string
	authURL                string
}

func (rp *relyingParty) start(opts ...oauth2.AuthCodeOption) flow {
	f := flow{state: newID(), nonce: newID(), verifier: oauth2.GenerateVerifier()}
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier)}, opts...)
	f.authURL = rp.conf.AuthCodeURL(f.state, opts...)
	return f
}

// exchange redeems a code with private_key_jwt and PKCE.
func (rp *relyingParty) exchange(t testing.TB, code, verifier string) (*oauth2.Token, error) {
	return rp.conf.Exchange(rp.ctx, code, oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
		oauth2.SetAuthURLParam("client_assertion", rp.key.assertion(t, testIssuer)))
}

// browse follows the citizen's browser from the authorization URL to the
// relying party's redirect, signing in with the eID on the way, and
// returns the redirect URL the browser lands on.
func browse(t testing.TB, browser *http.Client, authURL string, cit citizen) (*url.URL, error) {
	t.Helper()
	resp, err := browser.Get(authURL)
	if err != nil {
		return nil, err
	}
	drain(resp)
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("authorize: status %d", resp.StatusCode)
	}
	loc := location(t, resp)
	if !hasPrefix(loc, testIssuer+"/login") {
		return loc, nil // an error redirect to the relying party
	}
	resp, err = browser.Get(loc.String())
	if err != nil {
		return nil, err
	}
	var lc LoginChallenge
	err = json.NewDecoder(resp.Body).Decode(&lc)
	drain(resp)
	if err != nil {
		return nil, err
	}
	resp, err = browser.Post(lc.EID, "application/json", strings.NewReader(string(cit.answer(t, testIssuer, lc.Challenge))))
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	drain(resp)
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("eid login: status %d: %s", resp.StatusCode, body)
	}
	resp, err = browser.Get(location(t, resp).String())
	if err != nil {
		return nil, err
	}
	drain(resp)
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("callback: status %d", resp.StatusCode)
	}
	return location(t, resp), nil
}

// drain reads and closes a body so that the connection is reused.
func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// signIn runs a whole sign-in and returns the relying party's token and
// verified ID token.
func (rp *relyingParty) signIn(t testing.TB, browser *http.Client, cit citizen) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	f := rp.start()
	back, err := browse(t, browser, f.authURL, cit)
	if err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	if q.Get("state") != f.state || q.Get("code") == "" || q.Get("iss") != testIssuer {
		t.Fatalf("redirect back: %s", back)
	}
	tok, err := rp.exchange(t, q.Get("code"), f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(rp.ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != f.nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, f.nonce)
	}
	return tok, idt
}

// get calls a resource of the issuer with the token.
func (rp *relyingParty) get(t testing.TB, path string, tok *oauth2.Token) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", testIssuer+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := rp.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer drain(resp)
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestRelyingPartySurvivesFailover: a relying party built on go-oidc and
// x/oauth2, configured once, signs a citizen in at home and reads their
// record; home is lost; the embassy, with a keyring rebuilt from the same
// root and its replica of the ledger, answers behind the same issuer name;
// the relying party's home token is refused there with invalid_token, and
// the same configuration signs the citizen in again and reads the record.
// The citizen's data tracker at the embassy lists both reads.
func TestRelyingPartySurvivesFailover(t *testing.T) {
	w := newWorld(t)
	_, signKey, _ := ed25519.GenerateKey(rand.Reader)
	homeDir, embassyDir := filepath.Join(t.TempDir(), "home"), filepath.Join(t.TempDir(), "embassy")
	home := w.openSite(t, "home", homeDir, signKey)
	w.seed(t, home)
	res := &resolver{}
	res.point(home)
	browser := res.client(w.pki.tlsPool, false)

	tax := newRP(t, res, w, w.tax, rpRedirect, oidc.ScopeProfile, ScopeRecords)
	tok, idt := tax.signIn(t, browser, w.alice)
	if idt.Subject != "P-100" || idt.Issuer != testIssuer {
		t.Fatalf("id token sub %q iss %q", idt.Subject, idt.Issuer)
	}
	ui, err := tax.provider.UserInfo(tax.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := ui.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims["name"] != "Alice Varga" || claims["birthdate"] != "1980-02-03" || claims["family_name"] != nil {
		t.Errorf("userinfo claims %v: want name and birthdate only (the tax office's named claims)", claims)
	}
	st, body, _ := tax.get(t, "/records/land/L-7?purpose=property+tax+2026", tok)
	if st != http.StatusOK || !strings.Contains(string(body), `"owner_id":"P-100"`) {
		t.Fatalf("read own parcel at home: %d %s", st, body)
	}
	st, body, _ = tax.get(t, "/records/land/L-8?purpose=curious", tok)
	if st != http.StatusForbidden {
		t.Fatalf("read another citizen's parcel: %d %s, want 403", st, body)
	}
	homeKid := jwksKid(t, tax.http)

	// Home is lost. The embassy holds the replica and the root.
	home.fenced.Store(true)
	st, _, _ = tax.get(t, "/records/land/L-7?purpose=x", tok)
	if st != http.StatusServiceUnavailable {
		t.Fatalf("fenced home served a read: %d", st)
	}
	home.close()
	copyDir(t, homeDir, embassyDir)
	embassy := w.openSite(t, "embassy-north", embassyDir, signKey)
	res.point(embassy)

	if kid := jwksKid(t, tax.http); kid != homeKid {
		t.Fatalf("embassy kid %s, home kid %s", kid, homeKid)
	}
	st, _, hdr := tax.get(t, "/records/land/L-7?purpose=x", tok)
	if st != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("home token at the embassy: %d %q, want 401 invalid_token", st, hdr.Get("WWW-Authenticate"))
	}
	if _, err := tax.provider.UserInfo(tax.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("userinfo honoured a home token at the embassy")
	}
	tok2, idt2 := tax.signIn(t, browser, w.alice)
	if idt2.Subject != "P-100" {
		t.Fatalf("embassy sub %q", idt2.Subject)
	}
	st, body, _ = tax.get(t, "/records/land/L-7?purpose=property+tax+2026+after+failover", tok2)
	if st != http.StatusOK {
		t.Fatalf("read at the embassy: %d %s", st, body)
	}

	// The citizen signs in to the portal and reads their tracker.
	portal := newRP(t, res, w, w.portal, portalReturn, ScopeRecords)
	ptok, _ := portal.signIn(t, browser, w.alice)
	st, body, _ = portal.get(t, "/tracker", ptok)
	if st != http.StatusOK {
		t.Fatalf("tracker: %d %s", st, body)
	}
	var seen []struct{ Site, Registry, Reader, Who, Purpose string }
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range seen {
		got = append(got, fmt.Sprintf("%s %s %s %s %q", s.Site, s.Reader, s.Who, s.Registry, s.Purpose))
	}
	want := []string{
		`home client tax-office population "userinfo"`,
		`home client tax-office land "property tax 2026"`,
		`embassy-north client tax-office land "property tax 2026 after failover"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tracker:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Another client's token does not open the tracker.
	if st, _, _ := tax.get(t, "/tracker", tok2); st != http.StatusForbidden {
		t.Errorf("tracker for a relying party: %d, want 403", st)
	}
}

func jwksKid(t testing.TB, hc *http.Client) string {
	t.Helper()
	resp, err := hc.Get(testIssuer + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer drain(resp)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) != 1 || set.Keys[0].Alg != "ES256" {
		t.Fatalf("jwks: %v %+v", err, set)
	}
	return set.Keys[0].Kid
}
