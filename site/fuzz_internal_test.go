package site

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseSigHeader: the signature header is outside input on every
// request. The parser never panics, and what it accepts it accepts in the
// canonical form a client writes.
func FuzzParseSigHeader(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v1/registries", nil)
	if err := SignRequest(req, "home", "registrar", key); err == nil {
		f.Add(req.Header.Get(SignatureHeader))
	}
	f.Add(`official="a", time="1", nonce="AAAAAAAAAAAAAAAAAAAAAA==", digest="` + strings.Repeat("0", 64) + `", sig="` + strings.Repeat("A", 86) + `=="`)
	f.Add(`official="a",,time="1"`)
	f.Fuzz(func(t *testing.T, h string) {
		s, err := parseSigHeader(h)
		if err != nil {
			return
		}
		if s.official == "" || len(s.sig) != ed25519.SignatureSize || s.unix < 0 {
			t.Fatalf("accepted %q with official %q, %d-byte sig, time %d", h, s.official, len(s.sig), s.unix)
		}
		again := fmt.Sprintf(`official=%q, time="%d", nonce=%q, digest=%q, sig=%q`, s.official, s.unix, s.nonce, s.digestHx, base64.StdEncoding.EncodeToString(s.sig))
		if s2, err := parseSigHeader(again); err != nil || s2.official != s.official || s2.unix != s.unix {
			t.Fatalf("accepted %q but not its canonical form %q: %v", h, again, err)
		}
	})
}

// FuzzParseConfig: a site config comes from an operator's file; the
// parser never panics on any bytes.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("state_dir: /var/lib/chancery\nsite: home\nlisten: 127.0.0.1:7001\ninsecure_loopback: true\npassphrase_file: pass\n"))
	f.Add([]byte("site: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseConfig(b)
	})
}
