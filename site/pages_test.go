package site_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestPagesSignIn: a page is reached only through a session that a
// request signed by an official opened; the link works once; the
// dashboard shows the site's own mode; the host console is not the
// official's.
func TestPagesSignIn(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	get := func(c *http.Client, path string) (int, string) {
		t.Helper()
		res, err := c.Get(ts.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}

	if code, body := get(browser, "/ui/dashboard"); code != http.StatusForbidden || !strings.Contains(body, "chancery ui login") {
		t.Fatalf("dashboard without a session: %d, want 403 naming the command to sign in", code)
	}
	// An unsigned or wrongly signed login request opens nothing.
	res, err := http.Post(ts.srv.URL+"/ui/v1/guests/demo-republic/login", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned login: %d", res.StatusCode)
	}
	impostor := siteapi.Signer{Site: "home", Official: "registrar", Key: officialKey(t, ts.dir, "notary")}
	if _, err := siteapi.LoginPages(ctx, nil, ts.srv.URL, "demo-republic", impostor); err == nil {
		t.Fatal("a login signed with another official's key was accepted")
	}

	signer := siteapi.Signer{Site: "home", Official: "registrar", Key: officialKey(t, ts.dir, "registrar")}
	l, err := siteapi.LoginPages(ctx, nil, ts.srv.URL, "demo-republic", signer)
	if err != nil {
		t.Fatal(err)
	}
	// The session cookie must be Secure; the test server is plain http on
	// loopback, so the jar would not send it back: read it by hand.
	nofollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = nofollow.Get(ts.srv.URL + l.Path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/dashboard" {
		t.Fatalf("login link: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == ui.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict", cookie)
	}
	withSession := func(path string) (int, string) { return getWithSession(t, ts.srv.URL+path, cookie) }
	code, body := withSession("/ui/dashboard")
	if code != http.StatusOK || !strings.Contains(body, "ACTIVE") || !strings.Contains(body, "embassy-north") {
		t.Fatalf("dashboard: %d\n%s", code, body)
	}
	if code, _ := withSession("/ui/host"); code != http.StatusForbidden {
		t.Fatalf("an official's session reached the host console: %d", code)
	}
	// The link worked once.
	res, err = nofollow.Get(ts.srv.URL + l.Path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a used link opened a second session: %d", res.StatusCode)
	}
}
