package identity

import (
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// dpopProof makes a DPoP proof as a client library would (go-jose, the
// public key embedded in the header).
func dpopProof(t testing.TB, key *ecdsa.PrivateKey, method, url, token string, iat time.Time, nonce ...string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"jti": newID(), "htm": method, "htu": url, "iat": iat.Unix()}
	if token != "" {
		claims["ath"] = AccessTokenHash(token)
	}
	if len(nonce) > 0 {
		claims["nonce"] = nonce[0]
	}
	obj, err := sig.Sign(mustJSON(claims))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dpopTransport adds a DPoP proof to the relying party's token requests.
type dpopTransport struct {
	t    testing.TB
	key  *ecdsa.PrivateKey
	next http.RoundTripper
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/oauth/token" {
		r = r.Clone(r.Context())
		r.Header.Set("DPoP", dpopProof(d.t, d.key, r.Method, testIssuer+r.URL.Path, "", time.Now()))
	}
	return d.next.RoundTrip(r)
}

// TestDPoPBoundTokens: a relying party that sends a DPoP proof to the
// token endpoint gets a DPoP token; it is honoured with a fresh proof by
// the same key, and refused as a bearer token, with another key's proof,
// with a replayed proof, or with a proof for another URL.
func TestDPoPBoundTokens(t *testing.T) {
	b := newBench(t)
	key := newKey(t)
	rp := newRP(t, b.res, b.w, b.w.tax, rpRedirect, oidc.ScopeProfile, ScopeRecords)
	rp.http.Transport = &dpopTransport{t: t, key: key, next: rp.http.Transport}
	tok, idt := rp.signIn(t, b.browser, b.w.alice)
	if tok.TokenType != "DPoP" || idt.Subject != "P-100" {
		t.Fatalf("token type %q sub %q", tok.TokenType, idt.Subject)
	}
	path := "/records/land/L-7?purpose=dpop"
	call := func(scheme, proof string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", testIssuer+path, nil)
		req.Header.Set("Authorization", scheme+" "+tok.AccessToken)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := b.browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer drain(resp)
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate") + " " + string(body)
	}
	url := testIssuer + "/records/land/L-7"
	good := dpopProof(t, key, "GET", url, tok.AccessToken, time.Now())
	if st, body := call("DPoP", good); st != http.StatusOK {
		t.Fatalf("DPoP read: %d %s", st, body)
	}
	for name, tc := range map[string]struct{ scheme, proof, want string }{
		"as bearer":      {"Bearer", "", "bound to a DPoP key"},
		"replayed proof": {"DPoP", good, "already used"},
		"other key":      {"DPoP", dpopProof(t, newKey(t), "GET", url, tok.AccessToken, time.Now()), "bound to a DPoP key"},
		"other URL":      {"DPoP", dpopProof(t, key, "GET", testIssuer+"/records/land/L-8", tok.AccessToken, time.Now()), "htu"},
		"other method":   {"DPoP", dpopProof(t, key, "POST", url, tok.AccessToken, time.Now()), "htm"},
		"stale":          {"DPoP", dpopProof(t, key, "GET", url, tok.AccessToken, time.Now().Add(-5*time.Minute)), "iat"},
		"no ath":         {"DPoP", dpopProof(t, key, "GET", url, "", time.Now()), "ath"},
		"no proof":       {"DPoP", "", "DPoP header"},
	} {
		if st, body := call(tc.scheme, tc.proof); st != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 401 naming %q", name, st, body, tc.want)
		}
	}
	// userinfo through the library, with and without the proof.
	req, _ := http.NewRequest("GET", testIssuer+"/userinfo", nil)
	req.Header.Set("Authorization", "DPoP "+tok.AccessToken)
	req.Header.Set("DPoP", dpopProof(t, key, "GET", testIssuer+"/userinfo", tok.AccessToken, time.Now()))
	resp, err := b.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	drain(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Alice Varga") {
		t.Errorf("DPoP userinfo: %d %s", resp.StatusCode, body)
	}
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer"})); err == nil {
		t.Error("userinfo honoured a DPoP token presented as bearer")
	}
	// A bad proof at the token endpoint gets invalid_dpop_proof.
	rp.http.Transport.(*dpopTransport).key = nil
	f := rp.start()
	back, _ := browse(t, b.browser, f.authURL, b.w.alice)
	hc := b.res.client(b.w.pki.tlsPool, false)
	r2, _ := http.NewRequest("POST", testIssuer+"/oauth/token", strings.NewReader("grant_type=authorization_code&code="+back.Query().Get("code")))
	r2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r2.Header.Set("DPoP", "not-a-jwt")
	resp, err = hc.Do(r2)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	drain(resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_dpop_proof") {
		t.Errorf("bad proof at the token endpoint: %d %s", resp.StatusCode, body)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
