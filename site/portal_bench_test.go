package site_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/loadgen"
)

var (
	challengeRe = regexp.MustCompile(`name="challenge" value="([^"]+)"`)
	csrfRe      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// signInOverHTTP signs a citizen in to the portal with their eID as a
// browser without script does, and returns the browser (its cookies).
func (pc *portalCluster) signInOverHTTP(tb testing.TB, h eidHolder) *http.Client {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	c := pc.client()
	c.Jar, c.CheckRedirect = jar, nil
	res, err := c.Get(portalIssuer + "/portal/signin")
	if err != nil {
		tb.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	ch, tok := challengeRe.FindSubmatch(page), csrfRe.FindSubmatch(page)
	if ch == nil || tok == nil {
		tb.Fatalf("sign-in page: %d %s", res.StatusCode, page)
	}
	form := url.Values{"csrf": {string(tok[1])}, "challenge": {string(ch[1])}, "signature": {h.sign(tb, string(ch[1]))},
		"certificate": {base64.StdEncoding.EncodeToString(h.cert.Raw)}}
	res, err = c.PostForm(portalIssuer+"/portal/signin/eid", form)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasSuffix(res.Request.URL.Path, "/portal/records") {
		tb.Fatalf("eID sign-in over HTTP ended at %s with %d", res.Request.URL, res.StatusCode)
	}
	return c
}

// BenchmarkPortalTTFB: 200 citizens, each signed in with their eID in
// their own session, load My records at a real home over TLS on
// loopback (its ledger checkpointing as serve's does), pausing a second
// between pages. Each page reads the citizen's
// records through the provider's bearer-token API, three finds, each an
// access entry appended to the ledger before the page answers. Reports
// time to first byte p50/p99 and the pages/s served (issue 15: p99 ≤ 50
// ms on 2 cores).
func BenchmarkPortalTTFB(b *testing.B) {
	pc := startPortalCluster(b, 0) // the ledger's default, as serve runs
	const users = 200
	const think = time.Second
	clients := make([]*http.Client, users)
	for i := range clients {
		h := pc.alice
		if i%2 == 1 {
			h = pc.bob
		}
		clients[i] = pc.signInOverHTTP(b, h)
	}
	loadgen.TTFB(b, users, think, func(u int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", portalIssuer+"/portal/records", nil)
		return loadgen.FirstByte(clients[u], req)
	})
}
