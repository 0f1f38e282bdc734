package site_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// pageSession signs official in to ts's pages and returns a function that
// GETs a page with the session.
func pageSession(t *testing.T, ts *testSite, official string) func(path string) (int, string) {
	t.Helper()
	signer := siteapi.Signer{Site: "home", Official: official, Key: officialKey(t, ts.dir, official)}
	l, err := siteapi.LoginPages(context.Background(), nil, ts.srv.URL, "demo-republic", signer)
	if err != nil {
		t.Fatal(err)
	}
	nofollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := nofollow.Get(ts.srv.URL + l.Path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == ui.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	return func(path string) (int, string) { return getWithSession(t, ts.srv.URL+path, cookie) }
}

// getWithSession GETs url with the session cookie, as a browser would.
func getWithSession(t *testing.T, url string, cookie *http.Cookie) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestDeskOrdersWaitingForSignatures: an order the cio signed and left at
// the site is on the minister's desk with who signed, what the quorum
// still needs and the exact commands that sign it; its file downloads;
// the minister's signature left in a second copy is merged and the desk
// says the quorum is met; a copy with a forged signature is refused. An
// official whose signature would not count is shown no command.
func TestDeskOrdersWaitingForSignatures(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	c, err := charter.ReadVerified(ts.dir + "/charter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o, err := continuity.NewOrder(c, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite,
		Epoch: 2, NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "desk test"})
	if err != nil {
		t.Fatal(err)
	}
	so := &continuity.SignedOrder{Order: *o}
	if err := continuity.Sign(so, "cio", officialKey(t, ts.dir, "cio")); err != nil {
		t.Fatal(err)
	}
	raw, _ := so.Marshal()
	leave := func(as string, order []byte) (*siteapi.LeftOrder, error) {
		return siteapi.LeaveOrder(ctx, nil, ts.srv.URL, "demo-republic", siteapi.Signer{Site: "home", Official: as, Key: officialKey(t, ts.dir, as)}, order)
	}
	left, err := leave("cio", raw)
	if err != nil {
		t.Fatal(err)
	}
	if left.Missing == "" || strings.Join(left.Signers, ",") != "cio" {
		t.Fatalf("left: %+v", left)
	}
	// Only an official's signed request leaves an order.
	res, err := http.Post(ts.srv.URL+"/ui/v1/guests/demo-republic/orders", "application/json", strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", res.StatusCode)
	}

	get := pageSession(t, ts, "min-interior")
	code, body := get("/ui/desk")
	if code != http.StatusOK {
		t.Fatalf("desk: %d\n%s", code, body)
	}
	for _, want := range []string{"Order " + o.ID, "cio", "minister", "chancery order sign " + o.ID + ".order --official min-interior &amp;&amp; chancery ui order " + o.ID + ".order --site home --official min-interior"} {
		if !strings.Contains(body, want) {
			t.Fatalf("desk lacks %q:\n%s", want, body)
		}
	}
	// The registrar's signature would not count for an activation: the
	// registrar sees the order, not a command to sign it.
	if _, reg := pageSession(t, ts, "registrar")("/ui/desk"); !strings.Contains(reg, "Order "+o.ID) || strings.Contains(reg, "chancery order sign") {
		t.Fatalf("the registrar's desk:\n%s", reg)
	}
	// The dashboard lists it too, with its signatures.
	if _, dash := get("/ui/dashboard"); !strings.Contains(dash, o.ID) || !strings.Contains(dash, "waiting for signatures") {
		t.Fatalf("the dashboard does not list the order waiting:\n%s", dash)
	}
	code, file := get("/ui/desk/orders/" + o.ID)
	if code != http.StatusOK {
		t.Fatalf("order file: %d", code)
	}
	dl, err := continuity.ParseSignedOrder([]byte(strings.TrimSpace(file)))
	if err != nil || dl.Order.ID != o.ID {
		t.Fatalf("downloaded order: %v", err)
	}

	// The minister signs the downloaded file and leaves it again.
	if err := continuity.Sign(dl, "min-interior", officialKey(t, ts.dir, "min-interior")); err != nil {
		t.Fatal(err)
	}
	raw2, _ := dl.Marshal()
	if left, err = leave("min-interior", raw2); err != nil || left.Missing != "" {
		t.Fatalf("second copy: %+v, %v", left, err)
	}
	if _, body = get("/ui/desk"); !strings.Contains(body, "nothing: the quorum is met") {
		t.Fatalf("desk after the second signature:\n%s", body)
	}

	// A signature by a key that is not the official's is refused.
	forged := &continuity.SignedOrder{Order: *o}
	if err := continuity.Sign(forged, "minister-x", officialKey(t, ts.dir, "cio")); err != nil {
		t.Fatal(err)
	}
	forged.Signatures[0].Official = "registrar"
	raw3, _ := forged.Marshal()
	var ae *siteapi.APIError
	if _, err := leave("registrar", raw3); !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Fatalf("forged signature: %v", err)
	}
}
