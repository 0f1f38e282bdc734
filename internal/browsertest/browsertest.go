// Package browsertest drives Debian's headless Chromium for the tests of
// pages people use: it starts the browser, checks a page with axe-core
// (vendored here, MPL-2.0, see LICENSE.axe-core), and adds a virtual
// WebAuthn authenticator over the DevTools protocol for passkey ceremonies.
//
// A test that needs a browser calls New. Without Chromium it is skipped,
// except under CI=true, where it fails: CI must not pass while silently
// skipping the browser tests (`make deps` installs chromium with apt-get).
package browsertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

//go:embed axe.min.js
var axeSource string

// Browser is one headless Chromium process; each test gets its own, and
// t.Cleanup stops it.
type Browser struct {
	ctx      context.Context
	cancel   func()
	noScript bool
}

// Find returns the path of a Chromium binary, or "" when there is none.
func Find() string {
	if p := os.Getenv("CHANCERY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with JavaScript on or off.
func New(t testing.TB, javascript bool) *Browser {
	t.Helper()
	return NewWith(t, javascript)
}

// NewWith is New with more Chromium flags: a test that serves a page under
// a public name maps the name to loopback (host-resolver-rules) and
// trusts its test certificate (ignore-certificate-errors-spki-list).
func NewWith(t testing.TB, javascript bool, flags ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	bin := Find()
	if bin == "" {
		msg := "no chromium on PATH: `make deps` installs it (apt-get install chromium), or set CHANCERY_CHROMIUM"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		// Chromium refuses to run as root with its sandbox; tests run as
		// root on the CI machines.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	opts = append(opts, flags...)
	// Start the browser now, so a broken install fails here with its
	// reason. Chromium has been seen to exit at start, once in many CI
	// runs, before it opened its DevTools port (crashpad's warnings its
	// only output): that is retried once, with the first failure logged,
	// since nothing of the code under test has run yet.
	var err error
	for attempt := range 2 {
		b := start(javascript, opts)
		if err = chromedp.Do(b.ctx, b.scripts(javascript)); err == nil {
			t.Cleanup(b.cancel)
			return b
		}
		b.cancel()
		if attempt == 0 {
			t.Logf("start chromium %s: %v; starting it again", bin, err)
		}
	}
	t.Fatalf("start chromium %s: %v", bin, err)
	return nil
}

// start makes a browser of its own with the allocator options opts.
// Without JavaScript, the page's scripts are turned off through the
// DevTools protocol rather than a command-line switch, so that Axe can
// turn them on for its own check of the page as it rendered.
func start(javascript bool, opts []chromedp.ExecAllocatorOption) *Browser {
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	return &Browser{ctx: ctx, cancel: func() { cancel(); acancel() }, noScript: !javascript}
}

// Do runs steps with a deadline, so a page that never loads fails the
// test instead of hanging it.
func (b *Browser) Do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Run runs one action that returns a value, with a deadline.
func Run[T any](b *Browser, timeout time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// scripts turns the page's JavaScript on or off; the setting holds across
// navigations.
func (b *Browser) scripts(on bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
		return err
	})
}

// Context is the browser tab's context, for chromedp calls Run does not cover.
func (b *Browser) Context() context.Context { return b.ctx }

// Violation is one axe-core rule a page breaks.
type Violation struct {
	ID          string   `json:"id"`
	Impact      string   `json:"impact"`
	Description string   `json:"description"`
	HelpURL     string   `json:"helpUrl"`
	Targets     []string `json:"-"`
	Nodes       []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Description, strings.Join(v.Targets, ", "))
}

// Axe checks the page loaded in the browser with axe-core's WCAG 2.x A and
// AA rules and returns the violations. The script is injected through the
// DevTools protocol, so it runs even on a page whose Content-Security-Policy
// forbids inline script, and with JavaScript off for the page itself.
func (b *Browser) Axe() ([]Violation, error) {
	const run = `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}, resultTypes: ['violations']}).then(r => JSON.stringify(r.violations))`
	if b.noScript {
		// The page rendered without its scripts; axe needs script to run.
		// Nothing the page loaded runs now: its scripts were never
		// executed, so no handler is registered.
		if err := b.Do(10*time.Second, b.scripts(true)); err != nil {
			return nil, fmt.Errorf("axe-core: %w", err)
		}
		defer b.Do(10*time.Second, b.scripts(false))
	}
	if err := b.Do(60*time.Second, chromedp.Evaluate[chromedp.Void](axeSource)); err != nil {
		return nil, fmt.Errorf("axe-core: inject: %w", err)
	}
	raw, err := Run(b, 60*time.Second, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("axe-core: %w", err)
	}
	var vs []Violation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		return nil, fmt.Errorf("axe-core result: %w", err)
	}
	for i := range vs {
		for _, n := range vs[i].Nodes {
			vs[i].Targets = append(vs[i].Targets, fmt.Sprint(n.Target...))
		}
	}
	return vs, nil
}

// Serious returns the violations of impact serious or critical: the ones
// the pages' acceptance rule allows none of.
func Serious(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}

// AddVirtualAuthenticator gives the browser a CTAP2 platform authenticator
// with resident keys and user verification, as a phone or laptop passkey
// store would be, and returns its id.
func (b *Browser) AddVirtualAuthenticator() (webauthn.AuthenticatorID, error) {
	res, err := Run(b, 10*time.Second, func(ctx context.Context, t *chromedp.Target) (webauthn.AddVirtualAuthenticatorResult, error) {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return webauthn.AddVirtualAuthenticatorResult{}, err
		}
		return cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		}})
	})
	if err != nil {
		return "", fmt.Errorf("virtual authenticator: %w", err)
	}
	return res.AuthenticatorID, nil
}

// Credentials lists the credentials the virtual authenticator holds.
func (b *Browser) Credentials(id webauthn.AuthenticatorID) ([]*webauthn.Credential, error) {
	res, err := Run(b, 10*time.Second, func(ctx context.Context, t *chromedp.Target) (webauthn.GetCredentialsResult, error) {
		return cdp.Call(ctx, t, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	})
	return res.Credentials, err
}

// SetCookie puts a cookie in the browser for url, as a sign-in would, with
// the attributes the pages require (HttpOnly, Secure, SameSite=Strict);
// Chromium treats http://localhost as a secure context.
func (b *Browser) SetCookie(url, name, value string) error {
	yes := true
	return b.Do(10*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCookie, network.SetCookieParams{
			Name: name, Value: value, URL: url, Path: "/", Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict,
		})
		return err
	}))
}

// Screenshot writes a PNG of the whole page to path.
func (b *Browser) Screenshot(path string) error {
	png, err := Run(b, 30*time.Second, chromedp.FullScreenshot(100)) // 100: PNG; below, JPEG
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// AllowDownloads saves what the pages download into dir, under the names
// the site gives them.
func (b *Browser) AllowDownloads(dir string) error {
	return b.Do(10*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	}))
}
