package site_test

// The pages in a real browser against real sites on loopback (issue 15's
// "Done when"): the dashboard follows an activation, an official works a
// birth-registration case at the desk, and the host console's notice of
// suspension lands in the guest's ledger.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/browsertest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// pageSite is a site served on loopback at a localhost URL, which Chromium
// treats as a secure context, so the Secure session cookie is kept.
type pageSite struct {
	url string
}

// listenLocalhost reserves a loopback port, so that sites can name each
// other before they start.
func listenLocalhost(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return ln, "http://localhost:" + port
}

func servePageSite(t *testing.T, ln net.Listener, url string, cfg *site.Config) *pageSite {
	t.Helper()
	s, err := site.Open(context.Background(), cfg, site.Options{Logger: slog.New(slog.DiscardHandler),
		Local: guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	// Serve answers the requests and runs the site's background work the
	// pages show (the recovery-point samples, the other sites' status).
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return &pageSite{url: url}
}

// pagesPair is a founded Demo Republic's home and embassy-north (holding a
// mirror of the home's ledger), each told where the other is.
type pagesPair struct {
	dir         string
	c           *charter.Charter
	home, north *pageSite
}

func startPagesPair(t *testing.T, homeReplicates, south bool) *pagesPair {
	t.Helper()
	dir := newStateWithPerson(t, "DR-1000001")
	c, err := charter.ReadVerified(state.Layout{Dir: dir}.Charter())
	if err != nil {
		t.Fatal(err)
	}
	homeLn, homeURL := listenLocalhost(t)
	northLn, northURL := listenLocalhost(t)
	p := &pagesPair{dir: dir, c: c}
	north := embassyConfig(t, dir, "embassy-north")
	north.Peers = map[string]string{"home": homeURL}
	if south {
		// embassy-south, a second mirror, holds the quorum the population
		// registry's writes wait for once embassy-north writes.
		southLn, southURL := listenLocalhost(t)
		north.Peers["embassy-south"] = southURL
		cfg := embassyConfig(t, dir, "embassy-south")
		cfg.Peers = map[string]string{"home": homeURL, "embassy-north": northURL}
		servePageSite(t, southLn, southURL, cfg)
	}
	p.north = servePageSite(t, northLn, northURL, north)
	p.home = servePageSite(t, homeLn, homeURL, &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true,
		Replication: site.ReplicationConfig{Disabled: !homeReplicates}, Peers: map[string]string{"embassy-north": northURL}})
	return p
}

// activateNorth activates embassy-north as the site tests do: an order
// signed by the charter's quorum, then three custodians' shares.
func (p *pagesPair) activateNorth(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	o, err := continuity.NewOrder(p.c, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite,
		Epoch: 2, NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "pages test: the home is lost"})
	if err != nil {
		t.Fatal(err)
	}
	so := &continuity.SignedOrder{Order: *o}
	for _, id := range []string{"min-interior", "cio"} {
		if err := continuity.Sign(so, id, officialKey(t, p.dir, id)); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := so.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cc := &siteapi.ContinuityClient{BaseURL: p.north.url, Guest: p.c.Guest.ID, AcceptUnfenced: true,
		Signer: &siteapi.Signer{Guest: p.c.Guest.ID, Site: "embassy-north", Official: "cio", Key: officialKey(t, p.dir, "cio")}}
	if _, err := cc.Submit(ctx, signed); err != nil {
		t.Fatal(err)
	}
	sess, err := cc.OpenUnseal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, sealed := range statetest.SealedShares(t, p.dir, []byte(testPass), sess.RecipientStatement, "cust-parliament", "cust-court", "cust-bank") {
		if _, err := cc.SubmitShare(ctx, sess.Session, sealed); err != nil {
			t.Fatalf("share %d: %v", i+1, err)
		}
	}
}

// signIn opens a browser (script on or off) and signs in as official at
// the site the way a person does: `chancery ui login`'s signed request,
// then its link.
func signIn(t *testing.T, s *pageSite, signer siteapi.Signer, operator bool, js bool) *browsertest.Browser {
	t.Helper()
	b := browsertest.New(t, js)
	var l *siteapi.UILogin
	var err error
	if operator {
		l, err = (&siteapi.OperatorClient{BaseURL: s.url, Guest: signer.Guest, Signer: signer}).LoginPages(context.Background())
	} else {
		l, err = siteapi.LoginPages(context.Background(), nil, s.url, signer.Guest, signer)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Do(30*time.Second, chromedp.Navigate(s.url+l.Path)); err != nil {
		t.Fatal(err)
	}
	return b
}

func text(t *testing.T, b *browsertest.Browser, sel string) string {
	t.Helper()
	s, err := browsertest.Run(b, 10*time.Second, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func goTo(t *testing.T, b *browsertest.Browser, url string) {
	t.Helper()
	if err := b.Do(30*time.Second, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 200 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last: %q)", what, d, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func axeClean(t *testing.T, b *browsertest.Browser, page string) {
	t.Helper()
	vs, err := b.Axe()
	if err != nil {
		t.Fatal(err)
	}
	if s := browsertest.Serious(vs); len(s) > 0 {
		t.Errorf("%s: %d serious or critical accessibility violations: %v", page, len(s), s)
	}
}

// TestDashboardFollowsAnActivation: embassy-north's dashboard, open in
// Chromium, shows it STANDBY and the home as the home says of itself;
// the test activates embassy-north with an order and the custodians'
// shares; the page turns ACTIVE by itself with script on, and after
// "Refresh now" with script off; the recovery-point plot then has points.
func TestDashboardFollowsAnActivation(t *testing.T) {
	p := startPagesPair(t, false, false)
	official := siteapi.Signer{Guest: p.c.Guest.ID, Site: "embassy-north", Official: "cio", Key: officialKey(t, p.dir, "cio")}
	withJS := signIn(t, p.north, official, false, true)
	noJS := signIn(t, p.north, official, false, false)
	mode := func(b *browsertest.Browser) string { return text(t, b, "#site-embassy-north .badge") }
	for name, b := range map[string]*browsertest.Browser{"script on": withJS, "script off": noJS} {
		if got := mode(b); got != "STANDBY" {
			t.Fatalf("%s: embassy-north shows %q before the activation, want STANDBY", name, got)
		}
		axeClean(t, b, "dashboard, "+name)
	}
	// The wider view: the home, asked over the channel replication uses,
	// says it is ACTIVE; the site that was never started is UNREACHABLE.
	waitFor(t, 20*time.Second, "the home's own report", func() (bool, string) {
		goTo(t, noJS, p.north.url+"/ui/dashboard")
		s := text(t, noJS, "#site-home td:nth-of-type(3)")
		return strings.Contains(s, "ACTIVE") && strings.Contains(s, "answered"), s
	})
	if s := text(t, noJS, "#site-embassy-south td:nth-of-type(3)"); !strings.Contains(s, "UNREACHABLE") || !strings.Contains(s, "last seen never") {
		t.Errorf("embassy-south, never started, shows %q", s)
	}

	p.activateNorth(t)

	waitFor(t, 30*time.Second, "the dashboard turns ACTIVE without a reload (script on)", func() (bool, string) {
		m := mode(withJS)
		return m == "ACTIVE", m
	})
	if m := mode(noJS); m != "STANDBY" {
		t.Fatalf("script off: the page changed by itself to %q", m)
	}
	if err := noJS.Do(30*time.Second, chromedp.Click(chromedp.CSS("#refresh-link")), chromedp.WaitVisible(chromedp.CSS("#site-embassy-north"))); err != nil {
		t.Fatal(err)
	}
	if m := mode(noJS); m != "ACTIVE" {
		t.Fatalf("script off, after Refresh now: %q, want ACTIVE", m)
	}
	// The writer samples its sites' recovery points every 2 s.
	waitFor(t, 30*time.Second, "the lag plot has points", func() (bool, string) {
		goTo(t, noJS, p.north.url+"/ui/dashboard")
		n, err := browsertest.Run(noJS, 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#lag-h ~ figure svg polyline, #lag-h ~ figure svg circle').length`))
		return err == nil && n > 0, fmt.Sprint(n, err)
	})
	axeClean(t, noJS, "dashboard after the activation, script off")
}

// TestOfficialWorksABirthCase: at the activated embassy, a registrar
// opens a birth-registration case through the API; the notary (who holds
// the registrar role) finds it in the desk's queue, opens it, reads the
// exact command that signs the step; the test runs that command with the
// chancery binary, and the case page shows the case decided
// (by itself with script on, with "Refresh now" with script off); the
// desk's search then finds the child's record, and the search is an
// access entry in the ledger.
func TestOfficialWorksABirthCase(t *testing.T) {
	p := startPagesPair(t, false, true)
	p.activateNorth(t)
	ctx := context.Background()
	api := func(id string) *siteapi.Client {
		return &siteapi.Client{BaseURL: p.north.url + "/guests/" + p.c.Guest.ID, Signer: siteapi.Signer{Guest: p.c.Guest.ID, Site: "embassy-north", Official: id, Key: officialKey(t, p.dir, id)}}
	}
	input := json.RawMessage(`{"child_id":"DR-2026000017","given_name":"Ilse","family_name":"Berg","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1000001"}`)
	cr, err := api("registrar").StartCase(ctx, "register-birth", input)
	if err != nil {
		t.Fatal(err)
	}
	id := cr.Case.ID

	notary := siteapi.Signer{Guest: p.c.Guest.ID, Site: "embassy-north", Official: "notary", Key: officialKey(t, p.dir, "notary")}
	withJS := signIn(t, p.north, notary, false, true)
	noJS := signIn(t, p.north, notary, false, false)
	for name, b := range map[string]*browsertest.Browser{"script on": withJS, "script off": noJS} {
		goTo(t, b, p.north.url+"/ui/desk")
		axeClean(t, b, "desk, "+name)
		if err := b.Do(30*time.Second, chromedp.Click(chromedp.CSS(`a[href="/ui/desk/cases/`+id+`"]`)), chromedp.WaitVisible(chromedp.CSS("#case-state"))); err != nil {
			t.Fatalf("%s: the case is not in the desk's queue: %v", name, err)
		}
		axeClean(t, b, "case page, "+name)
		if s := text(t, b, "#case-state"); s != "OPEN" {
			t.Fatalf("%s: case state %q, want OPEN", name, s)
		}
	}
	cmd := text(t, noJS, "#sign-command")
	want := fmt.Sprintf("chancery case sign %s --step decide --subject %s --site embassy-north --official notary", id, cr.Case.Subject)
	if cmd != want {
		t.Fatalf("the page shows %q, want %q", cmd, want)
	}
	// The notary runs the command where the key is.
	runChancery(t, strings.Fields(cmd)[1:], "--state", p.dir, "--url", p.north.url)

	waitFor(t, 30*time.Second, "the case page shows the step landed (script on)", func() (bool, string) {
		// The page's script replaces the case in place as it refreshes:
		// a node read just as it is replaced is gone (CDP "No node with
		// given id"), and the next poll reads the new one.
		s, err := browsertest.Run(withJS, 10*time.Second, chromedp.Text(chromedp.CSS("#case-state")))
		if err != nil {
			return false, err.Error()
		}
		s = strings.TrimSpace(s)
		return s == "DECIDED", s
	})
	if s := text(t, withJS, "#steps"); !strings.Contains(s, "notary") {
		t.Fatalf("the steps do not name the notary: %q", s)
	}
	if err := noJS.Do(30*time.Second, chromedp.Click(chromedp.CSS("#refresh-link")), chromedp.WaitVisible(chromedp.CSS("#case-state"))); err != nil {
		t.Fatal(err)
	}
	if s := text(t, noJS, "#case-state"); s != "DECIDED" {
		t.Fatalf("script off, after Refresh now: %q", s)
	}
	axeClean(t, noJS, "decided case, script off")

	// The desk's search reads the record the decision wrote.
	goTo(t, noJS, p.north.url+"/ui/desk")
	if err := noJS.Do(30*time.Second,
		chromedp.SetValue(chromedp.CSS("#registry"), "population"),
		chromedp.SetValue(chromedp.CSS("#field"), "id"),
		chromedp.SendKeys(chromedp.CSS("#value"), "DR-2026000017"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/desk/search"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#results-h")),
	); err != nil {
		t.Fatal(err)
	}
	res := text(t, noJS, "table.record")
	if !strings.Contains(res, "Ilse") || !strings.Contains(res, id) {
		t.Fatalf("search result: %q", res)
	}
	axeClean(t, noJS, "desk search results, script off")
	// The search is an access entry by the notary, as an API read is.
	if n := accessEntriesBy(t, p, "notary", "population"); n == 0 {
		t.Fatal("the desk's search left no access entry by the notary in the ledger")
	}
}

// accessEntriesBy counts the access entries of official on registry in
// embassy-north's ledger, read through the public ledger API.
func accessEntriesBy(t *testing.T, p *pagesPair, official, registry string) int {
	t.Helper()
	n := 0
	for _, e := range ledgerEntries(t, p.north.url+"/guests/"+p.c.Guest.ID+"/ledger") {
		if e.Type != ledger.TypeAccess {
			continue
		}
		var ae continuity.AccessEntry
		if json.Unmarshal(e.Payload, &ae) == nil && ae.Official == official && ae.Registry == registry {
			n++
		}
	}
	return n
}

// TestHostConsoleSuspensionInLedger: the host's operator, signed in to
// embassy-north's console, reads the exact `chancery operator suspend`
// command there (the notice carries the host key's signature, which the
// browser does not hold); the test runs that command with the chancery
// binary; the console then shows the notice, and the home, the guest's
// writer, has recorded it in the guest's ledger.
func TestHostConsoleSuspensionInLedger(t *testing.T) {
	p := startPagesPair(t, true, false)
	l := state.Layout{Dir: p.dir}
	hostKey, err := keyfile.ReadEd25519(l.Key("host", "northland"), founded.Protector())
	if err != nil {
		t.Fatal(err)
	}
	host := siteapi.Signer{Guest: p.c.Guest.ID, Site: "embassy-north", Official: "northland", Key: hostKey}
	b := signIn(t, p.north, host, true, false)
	axeClean(t, b, "host console, script off")
	cmd := text(t, b, "#suspend-h ~ pre code")
	const want = `chancery operator suspend --site embassy-north --reason "…"`
	if cmd != want {
		t.Fatalf("the console shows %q, want %q", cmd, want)
	}
	const reason = "The guest's quota payment is 90 days overdue."
	runChancery(t, strings.Fields(strings.TrimSuffix(cmd, ` --reason "…"`))[1:], "--reason", reason, "--state", p.dir, "--url", p.north.url)
	// The home's shipper reads the notice from embassy-north's receiver
	// and records it; embassy-north mirrors the entry and the console
	// says where it is.
	waitFor(t, 60*time.Second, "the console shows the notice recorded in the guest's ledger", func() (bool, string) {
		goTo(t, b, p.north.url+"/ui/host")
		s := text(t, b, "#tenants-h ~ table tbody")
		return strings.Contains(s, reason) && strings.Contains(s, "recorded in the guest's ledger at index"), s
	})
	axeClean(t, b, "host console with a notice, script off")
	found := false
	for _, e := range ledgerEntries(t, p.home.url+"/guests/"+p.c.Guest.ID+"/ledger") {
		var sn guest.SuspensionNotice
		if e.Type == ledger.TypeNotice && json.Unmarshal(e.Payload, &sn) == nil && sn.Kind == guest.NoticeKindSuspension &&
			sn.Suspension.Host == "northland" && sn.Suspension.Reason == reason {
			found = true
		}
	}
	if !found {
		t.Fatal("the notice is not an entry of the guest's ledger at the home")
	}
}

// ledgerEntries reads every entry of the ledger its site publishes at
// base, up to its signed checkpoint, as any auditor can.
func ledgerEntries(t *testing.T, base string) []ledger.Entry {
	t.Helper()
	ctx := context.Background()
	f := ledger.HTTPFetcher{Base: base}
	raw, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.ParseSignedCheckpoint(raw)
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	if err := ledger.Scan(ctx, f, 0, cp.Size, func(i uint64, e []byte) error {
		de, err := ledger.DecodeEntry(e)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, de)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// runChancery runs the chancery binary with args, then more (the
// operator's or official's context: state directory, address), the
// keys' passphrase in the environment.
func runChancery(t *testing.T, args []string, more ...string) {
	t.Helper()
	args = append(args, more...)
	run := exec.Command(testnet.BuildChancery(t), args...)
	// A context the person running the tests chose (contexts.yaml) must
	// not put its key or charter in place of the test's.
	run.Env = append(os.Environ(), keyfile.EnvPassphrase+"="+testPass, "XDG_CONFIG_HOME="+t.TempDir(), "CHANCERY_CONTEXT=")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("chancery %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
