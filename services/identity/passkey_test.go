package identity

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/chancery-gov/chancery/services/identity/softauthn"
)

// softAuthenticator is a WebAuthn authenticator in software
// (services/identity/softauthn), as a browser's virtual authenticator
// would answer. Its RP id, origin and counter can be set wrong on purpose.
type softAuthenticator struct {
	rpID, origin string
	credID       []byte
	key          *ecdsa.PrivateKey
	count        uint32
	person       string
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// softauthn is the authenticator of this credential as it is set now.
func (a *softAuthenticator) softauthn() *softauthn.Authenticator {
	return &softauthn.Authenticator{RPID: a.rpID, Origin: a.origin, CredID: a.credID, Key: a.key, Count: a.count, UserHandle: []byte(a.person)}
}

func (a *softAuthenticator) create(t testing.TB, options json.RawMessage) []byte {
	b, err := a.softauthn().Create(options)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *softAuthenticator) get(t testing.TB, options json.RawMessage) []byte {
	b, err := a.softauthn().Get(options)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postJSON(t testing.TB, c *http.Client, url, bearer string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusSeeOther {
		return resp.StatusCode, []byte(resp.Header.Get("Location"))
	}
	return resp.StatusCode, b
}

// passkeyLogin runs the authentication ceremony for a fresh authorization
// request of rp and returns the status and body (or Location) of finish.
func passkeyLogin(t testing.TB, b *bench, rp *relyingParty, a *softAuthenticator) (int, string, flow) {
	t.Helper()
	lc, f := startLogin(t, b.browser, rp)
	begin := lc.Passkey
	st, body := postJSON(t, b.browser, begin, "", nil)
	if st != http.StatusOK {
		t.Fatalf("login begin: %d %s", st, body)
	}
	var pb struct{ Options json.RawMessage }
	json.Unmarshal(body, &pb)
	st, body = postJSON(t, b.browser, strings.Replace(begin, "/begin?", "/finish?", 1), "", a.get(t, pb.Options))
	return st, string(body), f
}

// TestPasskeyRegisteredAtHomeWorksAtEmbassy: a citizen signed in to the
// portal with the eID registers a passkey at home; at the embassy, rebuilt
// from the same root and replica, the passkey signs them in to the tax
// office; an assertion whose counter went backwards, or made for another
// RP id or origin, is refused.
func TestPasskeyRegisteredAtHomeWorksAtEmbassy(t *testing.T) {
	b := newBench(t)
	w := b.w
	portal := newRP(t, b.res, w, w.portal, portalReturn, ScopeRecords)
	ptok, _ := portal.signIn(t, b.browser, w.alice)
	a := &softAuthenticator{rpID: "portal.demo-republic.example", origin: "https://portal.demo-republic.example", credID: []byte(newID()), key: newKey(t), person: "P-100", count: 1}

	st, body := postJSON(t, b.browser, testIssuer+"/passkey/register/begin", ptok.AccessToken, nil)
	if st != http.StatusOK {
		t.Fatalf("register begin: %d %s", st, body)
	}
	var rb struct {
		Session string
		Options json.RawMessage
	}
	json.Unmarshal(body, &rb)
	if st, body = postJSON(t, b.browser, testIssuer+"/passkey/register/finish?session="+rb.Session, ptok.AccessToken, a.create(t, rb.Options)); st != http.StatusCreated {
		t.Fatalf("register finish: %d %s", st, body)
	}
	// A relying party's token does not register passkeys.
	ttok, _ := b.tax.signIn(t, b.browser, w.alice)
	if st, _ := postJSON(t, b.browser, testIssuer+"/passkey/register/begin", ttok.AccessToken, nil); st != http.StatusForbidden {
		t.Errorf("register with a relying party's token: %d", st)
	}

	// Failover to the embassy.
	b.home.close()
	embassyDir := filepath.Join(t.TempDir(), "embassy")
	copyDir(t, b.home.dir, embassyDir)
	embassy := b.w.openSite(t, "embassy-north", embassyDir, b.home.signKey)
	b.res.point(embassy)

	a.count = 5
	st, loc, f := passkeyLogin(t, b, b.tax, a)
	if st != http.StatusSeeOther {
		t.Fatalf("passkey login at the embassy: %d %s", st, loc)
	}
	resp, err := b.browser.Get(testIssuer + loc[strings.Index(loc, "/authorize"):])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back := location(t, resp)
	tok, err := b.tax.exchange(t, back.Query().Get("code"), f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := b.tax.verifier.Verify(b.tax.ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Subject != "P-100" {
		t.Fatalf("id token after passkey: %v %v", idt, err)
	}
	var amr struct{ AMR []string }
	idt.Claims(&amr)
	if len(amr.AMR) == 0 || amr.AMR[0] != "hwk" {
		t.Errorf("amr %v", amr.AMR)
	}
	if st, _, _ := b.tax.get(t, "/records/population/P-100?purpose=kyc", &oauth2.Token{AccessToken: tok.AccessToken}); st != http.StatusOK {
		t.Errorf("read with the passkey token: %d", st)
	}

	a.count = 3 // went backwards
	if st, body, _ := passkeyLogin(t, b, b.tax, a); st != http.StatusUnauthorized || !strings.Contains(body, "went backwards") {
		t.Errorf("counter backwards: %d %s", st, body)
	}
	a.count = 9
	a.origin = "https://evil.example"
	if st, body, _ := passkeyLogin(t, b, b.tax, a); st != http.StatusUnauthorized || !strings.Contains(strings.ToLower(body), "origin") {
		t.Errorf("wrong origin: %d %s", st, body)
	}
	a.origin = "https://portal.demo-republic.example"
	a.rpID = "evil.example"
	if st, body, _ := passkeyLogin(t, b, b.tax, a); st != http.StatusUnauthorized || !strings.Contains(strings.ToLower(body), "rp") {
		t.Errorf("wrong RP id: %d %s", st, body)
	}
	a.rpID = "portal.demo-republic.example"
	if st, body, _ := passkeyLogin(t, b, b.tax, a); st != http.StatusSeeOther {
		t.Errorf("good assertion after refusals: %d %s", st, body)
	}
}
