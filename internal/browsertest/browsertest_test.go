package browsertest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func serve(t *testing.T, pages map[string]string) string {
	t.Helper()
	mux := http.NewServeMux()
	for path, body := range pages {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			// The pages under test forbid inline script; the harness must
			// still be able to check them.
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'")
			fmt.Fprint(w, body)
		})
	}
	// WebAuthn needs a secure context: http://localhost is one.
	ln, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "http://localhost:" + strings.TrimPrefix(srv.URL[strings.LastIndex(srv.URL, ":"):], ":")
}

const clean = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Clean</title></head>
<body><main><h1>Records</h1><p>Nothing to see.</p><form><label for="q">Search</label><input id="q" name="q"><button type="submit">Search</button></form></main></body></html>`

const broken = `<!doctype html><html><head><title>Broken</title></head>
<body><img src="/x.png"><form><input name="q"><button></button></form></body></html>`

func TestAxeFindsWhatIsWrongAndOnlyThat(t *testing.T) {
	b := New(t, true)
	base := serve(t, map[string]string{"/clean": clean, "/broken": broken})

	if err := b.Do(30*time.Second, chromedp.Navigate(base+"/broken")); err != nil {
		t.Fatal(err)
	}
	vs, err := b.Axe()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, v := range Serious(vs) {
		ids[v.ID] = true
	}
	for _, want := range []string{"image-alt", "button-name", "label"} {
		if !ids[want] {
			t.Errorf("axe did not report %s on the broken page; it reported %v", want, vs)
		}
	}

	if err := b.Do(30*time.Second, chromedp.Navigate(base+"/clean")); err != nil {
		t.Fatal(err)
	}
	vs, err = b.Axe()
	if err != nil {
		t.Fatal(err)
	}
	if s := Serious(vs); len(s) > 0 {
		t.Errorf("clean page: %v", s)
	}
}

func TestJavaScriptOff(t *testing.T) {
	// The script marks the page when it runs.
	const page = `<!doctype html><html lang="en"><head><title>Page</title><script src="/s.js"></script></head><body><main><h1>x</h1></main></body></html>`
	base := serve(t, map[string]string{"/": page, "/s.js": "document.documentElement.dataset.ran = 'yes';"})
	for _, js := range []bool{true, false} {
		b := New(t, js)
		if err := b.Do(30*time.Second, chromedp.Navigate(base+"/")); err != nil {
			t.Fatal(err)
		}
		vs, err := b.Axe()
		if err != nil {
			t.Fatalf("javascript=%v: axe: %v", js, err)
		}
		if s := Serious(vs); len(s) > 0 {
			t.Errorf("javascript=%v: %v", js, s)
		}
		// Axe turned script on for itself only: the page's own script
		// still has not run, and does not run on the next page either.
		if err := b.Do(30*time.Second, chromedp.Navigate(base+"/?again")); err != nil {
			t.Fatal(err)
		}
		ran, err := Run(b, 10*time.Second, chromedp.AttributeValue(chromedp.CSS("html"), "data-ran"))
		if err != nil {
			t.Fatal(err)
		}
		if (ran.Value == "yes") != js {
			t.Errorf("javascript=%v: the page's script ran: %q", js, ran.Value)
		}
	}
}

func TestVirtualAuthenticatorMakesAPasskey(t *testing.T) {
	const page = `<!doctype html><html lang="en"><head><title>Passkey</title></head><body><main><h1>Passkey</h1></main></body></html>`
	base := serve(t, map[string]string{"/": page})
	b := New(t, true)
	id, err := b.AddVirtualAuthenticator()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Do(30*time.Second, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	const create = `navigator.credentials.create({publicKey: {
		challenge: new Uint8Array(32), rp: {name: "Demo Republic", id: "localhost"},
		user: {id: new Uint8Array([1,2,3]), name: "citizen", displayName: "Citizen"},
		pubKeyCredParams: [{type: "public-key", alg: -7}],
		authenticatorSelection: {residentKey: "required", userVerification: "required"}}}).then(c => c.type)`
	typ, err := Run(b, 30*time.Second, chromedp.Evaluate[string](create, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if typ != "public-key" {
		t.Fatalf("credential type %q", typ)
	}
	cs, err := b.Credentials(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].RpID != "localhost" {
		t.Fatalf("authenticator holds %d credentials: %+v", len(cs), cs)
	}
}

// TestStartsAgainAfterChromiumExitsAtStart: a Chromium that exits before
// it opens its DevTools port, once, is started again, and the browser
// then works; the two starts are the wrapper's two runs.
func TestStartsAgainAfterChromiumExitsAtStart(t *testing.T) {
	real := Find()
	if real == "" {
		t.Skip("no chromium")
	}
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	wrapper := filepath.Join(dir, "chromium")
	script := fmt.Sprintf("#!/bin/sh\necho run >> %q\nif [ ! -e %q ]; then touch %q; exit 1; fi\nexec %q \"$@\"\n",
		runs, filepath.Join(dir, "failed"), filepath.Join(dir, "failed"), real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHANCERY_CHROMIUM", wrapper)
	b := New(t, false)
	url := serve(t, map[string]string{"/": clean})
	if err := b.Do(30*time.Second, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(runs)
	if err != nil || strings.Count(string(got), "run") != 2 {
		t.Fatalf("chromium started %d times (%v), want 2", strings.Count(string(got), "run"), err)
	}
}
