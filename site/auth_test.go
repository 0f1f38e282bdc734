package site_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/siteapi"
)

func send(t *testing.T, ts *testSite, req *http.Request) (int, siteapi.ErrorBody) {
	t.Helper()
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body siteapi.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

func putReq(t *testing.T, ts *testSite, id string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, ts.srv.URL+"/v1/registries/population/records/"+id, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAuthRefusals(t *testing.T) {
	ts := startSite(t)
	key := officialKey(t, ts.dir, "registrar")
	other := officialKey(t, ts.dir, "notary")
	body, _ := json.Marshal(siteapi.PutRequest{Record: person("DR-5", "Berg", "")})
	signer := siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key}

	cases := []struct {
		name string
		req  func() *http.Request
		want string // in the error message
	}{
		{"missing header", func() *http.Request { return putReq(t, ts, "DR-5", body) }, "missing Chancery-Signature"},
		{"unknown official", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "impostor", Key: key}.Sign(r)
			return r
		}, `unknown official "impostor"`},
		{"wrong key", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: other}.Sign(r)
			return r
		}, "bad signature"},
		{"signed for another site", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			siteapi.Signer{Guest: "demo-republic", Site: "embassy-north", Official: "registrar", Key: key}.Sign(r)
			return r
		}, "bad signature"},
		// Two charters may name the same site id and the same official
		// key (an embassy serves both guests): a request signed for the
		// other guest must not be accepted here.
		{"signed for another guest of the same site", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			siteapi.Signer{Guest: "other-republic", Site: "home", Official: "registrar", Key: key}.Sign(r)
			return r
		}, "bad signature"},
		{"stale time", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key, Now: func() time.Time { return time.Now().Add(-6 * time.Minute) }}.Sign(r)
			return r
		}, "from the site's clock"},
		{"future time", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key, Now: func() time.Time { return time.Now().Add(6 * time.Minute) }}.Sign(r)
			return r
		}, "from the site's clock"},
		{"body tampered after signing", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			signer.Sign(r)
			forged := bytes.Replace(body, []byte("Berg"), []byte("Borg"), 1)
			r.Body = io.NopCloser(bytes.NewReader(forged))
			r.GetBody = nil
			return r
		}, "does not match the signed digest"},
		{"path changed after signing", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			signer.Sign(r)
			r2 := putReq(t, ts, "DR-6", body)
			r2.Header = r.Header
			return r2
		}, "bad signature"},
		{"method changed after signing", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, ts.srv.URL+"/v1/registries/population/records/DR-5", nil)
			signer.Sign(r)
			r.Method = http.MethodDelete
			return r
		}, "bad signature"},
		{"malformed header", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			r.Header.Set(siteapi.SignatureHeader, `official=registrar, time=1`)
			return r
		}, "malformed"},
		{"extra parameter", func() *http.Request {
			r := putReq(t, ts, "DR-5", body)
			signer.Sign(r)
			r.Header.Set(siteapi.SignatureHeader, r.Header.Get(siteapi.SignatureHeader)+`, role="minister"`)
			return r
		}, "unknown parameter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, eb := send(t, ts, tc.req())
			if status != http.StatusUnauthorized || !strings.Contains(eb.Error, tc.want) {
				t.Fatalf("status %d, error %q; want 401 with %q", status, eb.Error, tc.want)
			}
		})
	}

	// A blob upload whose streamed body differs from the signed digest.
	t.Run("upload tampered after signing", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodPost, ts.srv.URL+"/v1/registries/land/blobs", bytes.NewReader([]byte("the real deed")))
		signer.Sign(r)
		r.Body = io.NopCloser(bytes.NewReader([]byte("a forged deed")))
		r.GetBody = nil
		if status, eb := send(t, ts, r); status != http.StatusUnauthorized {
			t.Fatalf("status %d, %q", status, eb.Error)
		}
	})

	// Nothing refused above was written.
	r, _ := http.NewRequest(http.MethodGet, ts.srv.URL+"/v1/registries/population/records/DR-5", nil)
	signer.Sign(r)
	if status, _ := send(t, ts, r); status != http.StatusNotFound {
		t.Fatalf("after refused writes, GET DR-5: status %d, want 404", status)
	}
}

func TestAuthReplay(t *testing.T) {
	ts := startSite(t)
	body, _ := json.Marshal(siteapi.PutRequest{Record: person("DR-5", "Berg", "")})
	r := putReq(t, ts, "DR-5", body)
	if err := siteapi.SignRequest(r, "demo-republic", "home", "registrar", officialKey(t, ts.dir, "registrar")); err != nil {
		t.Fatal(err)
	}
	h := r.Header.Clone()
	if status, eb := send(t, ts, r); status != http.StatusCreated {
		t.Fatalf("first send: %d %q", status, eb.Error)
	}
	again := putReq(t, ts, "DR-5", body)
	again.Header = h
	if status, eb := send(t, ts, again); status != http.StatusUnauthorized || !strings.Contains(eb.Error, "replayed") {
		t.Fatalf("replay: %d %q", status, eb.Error)
	}
}

// TestSigningStringExample pins the worked example of docs/api.md: any
// change to the signing scheme must change the documentation with it.
func TestSigningStringExample(t *testing.T) {
	seed := sha256.Sum256([]byte("chancery docs example official key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	body := []byte(`{"record":{"national_id":"DR-0001","last_name":"Novak"}}`)
	digest := sha256.Sum256(body)
	nonce := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	msg := siteapi.SigningString("demo-republic", "home", "PUT", "/v1/registries/population/records/DR-0001", 1767225600, nonce, hex.EncodeToString(digest[:]))
	want := "chancery-request/v2\ndemo-republic\nhome\nPUT\n/v1/registries/population/records/DR-0001\n1767225600\nMDEyMzQ1Njc4OWFiY2RlZg==\n" + hex.EncodeToString(digest[:])
	if string(msg) != want {
		t.Fatalf("signing string:\n%q\nwant\n%q", msg, want)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	t.Logf("public key %s", base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	t.Logf("digest %x", digest)
	t.Logf("sig %s", sig)
	if sig != docExampleSig {
		t.Fatalf("signature %s, docs/api.md says %s", sig, docExampleSig)
	}
}

const docExampleSig = "jrBQeWtERf0OvQy9NbyIZ/JauZF8jRm7M9Zr8+hZyFckU443Ia7uw6evuLuRalqHntbNkq/doAhW2/+JU3JDAw=="
