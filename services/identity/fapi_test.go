package identity

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// tokenRequest posts a code exchange with private_key_jwt, the PKCE
// verifier and, if proof is set, a DPoP proof.
func tokenRequest(t *testing.T, b *bench, code, verifier, proof string) (*http.Response, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {verifier},
		"client_id":             {"tax-office"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {b.w.tax.assertion(t, testIssuer)}}
	req, _ := http.NewRequest("POST", testIssuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := b.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer drain(resp)
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// TestFAPI2RequiresPARAndDPoP: with services.identity.fapi2 the issuer
// refuses an authorization request that was not pushed (400
// invalid_request, no redirect) and a token request without a DPoP proof
// (400 invalid_dpop_proof), and says so in its metadata; a pushed request
// and a DPoP proof get a DPoP-bound token.
func TestFAPI2RequiresPARAndDPoP(t *testing.T) {
	b := newBench(t, func(c *Config) { c.FAPI2 = true })
	resp, err := b.browser.Get(testIssuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	json.NewDecoder(resp.Body).Decode(&meta)
	drain(resp)
	if meta["require_pushed_authorization_requests"] != true {
		t.Errorf("metadata require_pushed_authorization_requests = %v", meta["require_pushed_authorization_requests"])
	}

	f := b.tax.start()
	resp, err = b.browser.Get(f.authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	drain(resp)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(string(body), `"invalid_request"`) || !strings.Contains(string(body), "pushed") {
		t.Fatalf("unpushed authorization request: %d %q %s, want 400 invalid_request", resp.StatusCode, resp.Header.Get("Location"), body)
	}

	au, _ := url.Parse(f.authURL)
	form := au.Query()
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", b.w.tax.assertion(t, testIssuer))
	resp, err = b.browser.PostForm(testIssuer+"/par", form)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		RequestURI string `json:"request_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&pr)
	drain(resp)
	back, err := browse(t, b.browser, testIssuer+"/authorize?"+url.Values{"client_id": {"tax-office"}, "request_uri": {pr.RequestURI}}.Encode(), b.w.alice)
	if err != nil || back.Query().Get("code") == "" {
		t.Fatalf("pushed sign-in: %v %v", back, err)
	}
	code := back.Query().Get("code")
	resp, out := tokenRequest(t, b, code, f.verifier, "")
	if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" || out["access_token"] != nil {
		t.Fatalf("token request without DPoP: %d %v, want 400 invalid_dpop_proof", resp.StatusCode, out)
	}
	key := newKey(t)
	resp, out = tokenRequest(t, b, code, f.verifier, dpopProof(t, key, "POST", testIssuer+"/oauth/token", "", time.Now()))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("token request with DPoP: %d %v", resp.StatusCode, out)
	}
}

// TestDPoPNonce: with services.identity.dpop_nonce a DPoP proof without a
// nonce this site provided is refused with use_dpop_nonce and a fresh
// nonce in DPoP-Nonce — 400 at the token endpoint (RFC 9449 § 8), 401 with
// a DPoP challenge at a resource (§ 9) — and so is a forged or expired
// nonce; the retry with the nonce is served.
func TestDPoPNonce(t *testing.T) {
	b := newBench(t, func(c *Config) { c.DPoPNonce = true })
	key := newKey(t)
	f := b.tax.start()
	back, err := browse(t, b.browser, f.authURL, b.w.alice)
	if err != nil {
		t.Fatal(err)
	}
	code := back.Query().Get("code")
	tokenURL := testIssuer + "/oauth/token"
	resp, out := tokenRequest(t, b, code, f.verifier, dpopProof(t, key, "POST", tokenURL, "", time.Now()))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusBadRequest || out["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("token request without a nonce: %d %v nonce %q, want 400 use_dpop_nonce and a DPoP-Nonce", resp.StatusCode, out, nonce)
	}
	resp, out = tokenRequest(t, b, code, f.verifier, dpopProof(t, key, "POST", tokenURL, "", time.Now(), nonce))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("token request with the nonce: %d %v", resp.StatusCode, out)
	}
	tok := out["access_token"].(string)

	recURL := testIssuer + "/records/land/L-7"
	read := func(proof string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", recURL+"?purpose=nonce", nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		resp, err := b.browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer drain(resp)
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	forged := base64.RawURLEncoding.EncodeToString(make([]byte, 24))
	for name, proof := range map[string]string{
		"no nonce":     dpopProof(t, key, "GET", recURL, tok, time.Now()),
		"forged nonce": dpopProof(t, key, "GET", recURL, tok, time.Now(), forged),
	} {
		resp, body := read(proof)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) || resp.Header.Get("DPoP-Nonce") == "" {
			t.Errorf("%s at a resource: %d %q %s, want 401 with a DPoP use_dpop_nonce challenge and a DPoP-Nonce", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	if resp, body := read(dpopProof(t, key, "GET", recURL, tok, time.Now(), nonce)); resp.StatusCode != http.StatusOK {
		t.Fatalf("read with the nonce: %d %s", resp.StatusCode, body)
	}
	// Six minutes on, the nonce has expired.
	b.home.advance(6 * time.Minute)
	if resp, body := read(dpopProof(t, key, "GET", recURL, tok, time.Now().Add(6*time.Minute), nonce)); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "use_dpop_nonce") {
		t.Errorf("expired nonce: %d %s, want 401 use_dpop_nonce", resp.StatusCode, body)
	}
}

// FuzzDPoPNonce: whatever a client sends as a nonce is answered without a
// panic, and a nonce the service made is accepted only unchanged.
func FuzzDPoPNonce(f *testing.F) {
	s := &Service{cfg: &config{Config: Config{DPoPNonce: true}}, opts: Options{Now: time.Now}}
	good := s.dpopNonce()
	f.Add(good)
	f.Add("")
	f.Add(base64.RawURLEncoding.EncodeToString(make([]byte, 24)))
	f.Fuzz(func(t *testing.T, nonce string) {
		err := s.checkNonce(nonce)
		if nonce == good && err != nil {
			t.Fatalf("the service's own nonce refused: %v", err)
		}
		if b, derr := base64.RawURLEncoding.DecodeString(nonce); err == nil && (derr != nil || len(b) != 24) {
			t.Fatalf("nonce %q of the wrong form accepted", nonce)
		}
	})
}
