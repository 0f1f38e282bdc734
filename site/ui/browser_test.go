package ui

import (
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/browsertest"
	"github.com/chromedp/chromedp"
)

func serveUI(t *testing.T, u *UI) string {
	t.Helper()
	ln, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(u)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://localhost:" + port
}

// TestPagesInABrowser: every page passes axe-core with no serious or
// critical violation, with JavaScript on and off; the dashboard refreshes
// itself when script runs; the host console's form serves a notice with
// script off.
func TestPagesInABrowser(t *testing.T) {
	f, u := newFixture(t)
	base := serveUI(t, u)
	shots := screenshotDir(t)
	for _, js := range []bool{true, false} {
		b := browsertest.New(t, js)
		if err := b.SetCookie(base, SessionCookie, testSession); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/ui/", "/ui/dashboard", "/ui/host", "/ui/desk", "/ui/desk/cases/" + fixtureCase} {
			if err := b.Do(30*time.Second, chromedp.Navigate(base+p)); err != nil {
				t.Fatal(err)
			}
			h1, err := browsertest.Run(b, 10*time.Second, chromedp.Text(chromedp.CSS("h1")))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(h1, "cannot see") {
				t.Fatalf("javascript=%v %s: refused: the session cookie did not reach the page", js, p)
			}
			vs, err := b.Axe()
			if err != nil {
				t.Fatal(err)
			}
			if s := browsertest.Serious(vs); len(s) > 0 {
				t.Errorf("javascript=%v %s: %d serious or critical accessibility violations: %v", js, p, len(s), s)
			}
			if shots != "" && js {
				name := strings.Trim(strings.ReplaceAll(strings.ReplaceAll(p, "/"+fixtureCase, ""), "/", "-"), "-") + ".png"
				if err := b.Screenshot(filepath.Join(shots, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	t.Run("dashboard refreshes itself", func(t *testing.T) {
		b := browsertest.New(t, true)
		if err := b.SetCookie(base, SessionCookie, testSession); err != nil {
			t.Fatal(err)
		}
		if err := b.Do(30*time.Second, chromedp.Navigate(base+"/ui/dashboard")); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.dash.Sites[1].Mode = "active"
		f.mu.Unlock()
		// The row of embassy-north turns ACTIVE without a reload.
		deadline := time.Now().Add(20 * time.Second)
		for {
			txt, err := browsertest.Run(b, 10*time.Second, chromedp.Text(chromedp.CSS("tbody tr:nth-child(2) .badge")))
			if err != nil {
				t.Fatal(err)
			}
			if txt == "ACTIVE" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("embassy-north still shows %q after 20 s", txt)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("host serves a notice without script", func(t *testing.T) {
		b := browsertest.New(t, false)
		if err := b.SetCookie(base, SessionCookie, testSession); err != nil {
			t.Fatal(err)
		}
		err := b.Do(30*time.Second,
			chromedp.Navigate(base+"/ui/host"),
			chromedp.SendKeys(chromedp.CSS("#reason"), "The guest's quota payment is 90 days overdue."),
			chromedp.Click(chromedp.CSS("form button")),
			chromedp.WaitVisible(chromedp.CSS(".flash")),
		)
		if err != nil {
			t.Fatal(err)
		}
		flash, err := browsertest.Run(b, 10*time.Second, chromedp.Text(chromedp.CSS(".flash")))
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !strings.Contains(flash, "demo-republic") || len(f.suspended) != 1 || !strings.Contains(f.suspended[0], "90 days overdue") {
			t.Fatalf("flash %q, notices %v", flash, f.suspended)
		}
	})
}
