package ui

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// fixture is a UI over figures the test controls, authorising by a session
// cookie the test sets, as the site's sign-in will.
type fixture struct {
	mu        sync.Mutex
	dash      *Dashboard
	host      *HostConsole
	suspended []string
	now       time.Time
}

const testSession = "session-of-official-1"

func newFixture(t testing.TB) (*fixture, *UI) {
	t.Helper()
	now := time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC)
	f := &fixture{now: now}
	lag := func(base float64) []Point {
		var ps []Point
		for i := range 30 {
			ps = append(ps, Point{At: now.Add(time.Duration(i-30) * 10 * time.Second), Value: base + math.Abs(math.Sin(float64(i)/3))})
		}
		return ps
	}
	f.dash = &Dashboard{
		Guest: "demo-republic",
		Sites: []SiteRow{
			{ID: "home", Role: "home", Mode: "active", Epoch: 1, LedgerSize: 1200, LastReceipt: now, Reported: "active", ReportedEpoch: 1, ReportedWriter: "home", Seen: now.Add(-time.Second)},
			{ID: "embassy-north", Role: "embassy", Host: "host-north", Mode: "standby", Epoch: 1, LedgerSize: 1198, LastReceipt: now.Add(-2 * time.Second), RPOEntries: 2, RPOSeconds: 0.4},
			{ID: "embassy-west", Role: "embassy", Host: "host-west", Mode: "unreachable", Epoch: 1, LedgerSize: 900, LastReceipt: now.Add(-5 * time.Minute), RPOEntries: 300, RPOSeconds: 300, Problem: "no answer since 22:55 UTC: dial tcp: connection refused",
				Reported: "unreachable", ReportedEpoch: 1, ReportedWriter: "home", Seen: now.Add(-5 * time.Minute), Unreached: "dial tcp: connection refused"},
		},
		Lag:    []Line{{Name: "embassy-north", Points: lag(0)}, {Name: "embassy-west", Points: lag(3)}},
		Orders: []OrderRow{{ID: "ord-7", Kind: "drill", Site: "embassy-north", Signed: []string{"min-interior"}, Needs: "2 of minister, cio", State: "waiting"}},
		Drills: []DrillRow{{Site: "embassy-north", Order: "ord-6", When: now.Add(-time.Hour), RTOSeconds: 0.64, RPOEntries: 0, Outcome: "could activate"}},
		Ledger: LedgerRow{Size: 1200, Checkpoint: 1199, Epoch: 1, Writer: "home"},
	}
	f.host = &HostConsole{
		Host: "host-north",
		Tenants: []TenantRow{
			{Guest: "demo-republic", Site: "embassy-north", Mode: "standby", UsedBytes: 3 << 30, QuotaBytes: 64 << 30, FreeBytes: 200 << 30, Batches: 5120, Refused: 3, LastBatch: now.Add(-time.Second), MaySuspend: true},
		},
		Refusals: []Line{{Name: "demo-republic", Points: lag(0)}},
	}
	u, err := New(Options{
		StateName: "Demo Republic", Site: "embassy-north", Refresh: 300 * time.Millisecond,
		Now: func() time.Time { return now },
		Authorize: func(r *http.Request, p Page) (Viewer, error) {
			if session(r) != testSession {
				return Viewer{}, errors.New("sign in first: run `chancery ui login` or use your passkey at /ui/login")
			}
			return Viewer{Name: "Official One", Session: testSession}, nil
		},
		Dashboard: func(context.Context, Viewer) (*Dashboard, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			d := *f.dash
			return &d, nil
		},
		Host:      func(context.Context, Viewer) (*HostConsole, error) { return f.host, nil },
		DeskHooks: deskFixture(),
		Suspend: func(_ context.Context, guest, reason string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.suspended = append(f.suspended, guest+": "+reason)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, u
}

func get(t testing.TB, h http.Handler, path string, signedIn bool) *http.Response {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if signedIn {
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t testing.TB, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	_, u := newFixture(t)
	for _, c := range []struct {
		path     string
		signedIn bool
		code     int
	}{
		{"/ui/", true, 200}, {"/ui/dashboard", true, 200}, {"/ui/host", true, 200},
		{"/ui/dashboard", false, 403}, {"/ui/static/style.css", false, 200}, {"/ui/nope", true, 404},
	} {
		res := get(t, u, c.path, c.signedIn)
		if res.StatusCode != c.code {
			t.Errorf("%s: %d, want %d", c.path, res.StatusCode, c.code)
		}
		h := res.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: framing/sniffing headers missing: %v", c.path, h)
		}
	}
}

func TestNoInlineScriptOrStyle(t *testing.T) {
	_, u := newFixture(t)
	for _, p := range []string{"/ui/", "/ui/dashboard", "/ui/host"} {
		b := body(t, get(t, u, p, true))
		if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`).MatchString(b) || strings.Contains(b, " style=") || strings.Contains(b, "<style") || strings.Contains(b, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(b) {
			t.Errorf("%s has inline script, style or an event handler attribute, which the CSP forbids", p)
		}
	}
}

func TestRefusedWithoutAuthorizer(t *testing.T) {
	u, err := New(Options{StateName: "Demo Republic", Dashboard: func(context.Context, Viewer) (*Dashboard, error) { return &Dashboard{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	res := get(t, u, "/ui/dashboard", true)
	if res.StatusCode != http.StatusForbidden || !strings.Contains(body(t, res), "has not configured") {
		t.Fatalf("no Authorize: %d", res.StatusCode)
	}
}

func TestRefusalSaysWhatToDo(t *testing.T) {
	_, u := newFixture(t)
	res := get(t, u, "/ui/dashboard", false)
	if b := body(t, res); !strings.Contains(b, "sign in first") || strings.Contains(b, "embassy-west") {
		t.Fatalf("refusal page: %s", b)
	}
}

func post(t testing.TB, h http.Handler, path string, form url.Values, signedIn bool) *http.Response {
	t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signedIn {
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestSuspendNeedsTheSessionsCSRFToken(t *testing.T) {
	f, u := newFixture(t)
	good := u.csrf.token(testSession)
	cases := []struct {
		name     string
		form     url.Values
		signedIn bool
		code     int
	}{
		{"no token", url.Values{"guest": {"demo-republic"}, "reason": {"unpaid"}}, true, 403},
		{"another session's token", url.Values{"guest": {"demo-republic"}, "reason": {"unpaid"}, "csrf": {u.csrf.token("other")}}, true, 403},
		{"not signed in", url.Values{"guest": {"demo-republic"}, "reason": {"unpaid"}, "csrf": {good}}, false, 403},
		{"no reason", url.Values{"guest": {"demo-republic"}, "csrf": {good}}, true, 400},
	}
	for _, c := range cases {
		res := post(t, u, "/ui/host/suspend", c.form, c.signedIn)
		if res.StatusCode != c.code {
			t.Errorf("%s: %d, want %d", c.name, res.StatusCode, c.code)
		}
	}
	if len(f.suspended) != 0 {
		t.Fatalf("a refused form served a notice: %v", f.suspended)
	}
	res := post(t, u, "/ui/host/suspend", url.Values{"guest": {"demo-republic"}, "reason": {"unpaid"}, "csrf": {good}}, true)
	if res.StatusCode != http.StatusSeeOther || len(f.suspended) != 1 {
		t.Fatalf("valid form: %d, notices %v", res.StatusCode, f.suspended)
	}
	if b := body(t, get(t, u, res.Header.Get("Location"), true)); !strings.Contains(b, "Notice of suspension served on demo-republic") {
		t.Error("no confirmation after the notice")
	}
	// A crafted confirmation link for a guest that is not a tenant says nothing.
	if b := body(t, get(t, u, "/ui/host?served=Your+account+is+closed", true)); strings.Contains(b, "account is closed") {
		t.Error("the confirmation echoes text from the link")
	}
}

func TestPlotIsWellFormedAndEscaped(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var lines []Line
		for i := range rapid.IntRange(0, 4).Draw(t, "lines") {
			n := rapid.IntRange(0, 20).Draw(t, fmt.Sprint("n", i))
			var ps []Point
			at := time.Unix(rapid.Int64Range(0, 1<<32).Draw(t, "t0"), 0)
			for j := range n {
				at = at.Add(time.Duration(rapid.IntRange(0, 1000).Draw(t, fmt.Sprint("dt", j))) * time.Millisecond)
				ps = append(ps, Point{At: at, Value: rapid.Float64Range(0, 1e6).Draw(t, fmt.Sprint("v", j))})
			}
			lines = append(lines, Line{Name: rapid.String().Draw(t, "name"), Points: ps})
		}
		p := Plot{ID: "p", Title: rapid.String().Draw(t, "title"), Unit: "s", Lines: lines}
		svg := string(p.SVG())
		d := xml.NewDecoder(strings.NewReader(svg))
		polylines := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if se.Name.Local == "script" || se.Name.Local == "foreignObject" {
					t.Fatalf("element %s in the plot", se.Name.Local)
				}
				if se.Name.Local == "polyline" {
					polylines++
				}
			}
		}
		want := 0
		for _, l := range lines {
			if len(l.Points) > 0 {
				want++
			}
		}
		if polylines != want {
			t.Fatalf("%d polylines for %d non-empty lines", polylines, want)
		}
	})
}

func TestNiceCeil(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.Float64Range(1e-9, 1e12).Draw(t, "v")
		c := niceCeil(v)
		if c < v || c > 10*v*1.0000001 {
			t.Fatalf("niceCeil(%g) = %g", v, c)
		}
	})
	if niceCeil(0) != 1 || niceCeil(math.NaN()) != 1 {
		t.Fatal("niceCeil of nothing")
	}
}

func TestSeriesKeepsNewestInOrder(t *testing.T) {
	s := NewSeries(4)
	t0 := time.Unix(100, 0)
	for i := range 7 {
		s.Add(t0.Add(time.Duration(i)*time.Second), float64(i))
	}
	s.Add(t0, 99) // older than the newest: dropped
	ps := s.Points()
	if len(ps) != 4 || ps[0].Value != 3 || ps[3].Value != 6 {
		t.Fatalf("points %v", ps)
	}
}

// TestPageWeight: every page with its assets stays under 100 KB.
func TestPageWeight(t *testing.T) {
	_, u := newFixture(t)
	assets := len(body(t, get(t, u, "/ui/static/style.css", false))) + len(body(t, get(t, u, "/ui/static/refresh.js", false)))
	for _, p := range []string{"/ui/", "/ui/dashboard", "/ui/host", "/ui/desk", "/ui/desk/cases/" + fixtureCase} {
		n := len(body(t, get(t, u, p, true))) + assets
		if n > 100<<10 {
			t.Errorf("%s weighs %d bytes with its assets, more than 100 KB", p, n)
		}
		t.Logf("%s: %d bytes with assets", p, n)
	}
}

// screenshotDir is where the browser tests write screenshots when
// CHANCERY_SCREENSHOTS=1 (docs/ui.md): the repository's docs/screenshots.
func screenshotDir(t testing.TB) string {
	if os.Getenv("CHANCERY_SCREENSHOTS") != "1" {
		return ""
	}
	dir, err := filepath.Abs("../../docs/screenshots")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
