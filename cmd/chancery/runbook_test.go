package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chancery-gov/chancery/internal/browsertest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/siteapi"
)

// A shell block of a document: the commands of one ```sh fence, and the
// headings it stands under.
type shBlock struct {
	line     int    // line of the opening fence
	heading  string // the nearest heading above (## or ###)
	section  string // the nearest ## heading above
	commands string
}

// shBlocks parses the ```sh fenced blocks of a Markdown file. Commands
// shown any other way (indented, or in a fence of another language) are
// illustrations a test does not run: a daemon started, a file edited.
func shBlocks(t *testing.T, path string) []shBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out              []shBlock
		heading, section string
		cur              *shBlock
		fence            string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.commands += line + "\n"
		case fence != "" && strings.TrimSpace(line) == "```":
			fence = ""
		case fence != "":
		case strings.HasPrefix(strings.TrimSpace(line), "```sh"):
			cur = &shBlock{line: n, heading: heading, section: section}
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			fence = line
		case strings.HasPrefix(line, "## "):
			section, heading = line, line
		case strings.HasPrefix(line, "### "):
			heading = line
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed ```sh block", path, cur.line)
	}
	return out
}

// buildChancery builds the binary the documents' commands run, once per
// test, into a directory it returns for $PATH.
func buildChancery(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "chancery"), ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// deployment is a guest's three sites, each a "chancery serve" process of
// the built binary on loopback, serving with its pinned TLS key.
type deployment struct {
	t     *testing.T
	bin   string
	dir   string // the home's state directory D
	pass  string
	addrs map[string]string // site id -> host:port
	procs map[string]*exec.Cmd
	logs  map[string]*bytes.Buffer
}

func (d *deployment) url(id string) string { return "https://" + d.addrs[id] }

func (d *deployment) peers(self string) string {
	var b strings.Builder
	b.WriteString("peers:\n")
	for _, id := range []string{"home", "embassy-north", "embassy-south"} {
		if id != self {
			fmt.Fprintf(&b, "  %s: %s\n", id, d.url(id))
		}
	}
	return b.String()
}

func (d *deployment) homeConfig(standby bool) string {
	l := state.Layout{Dir: d.dir}
	cfg := "state_dir: " + d.dir + "\nsite: home\nlisten: " + d.addrs["home"] + "\ntls_key: " + l.Key("site-tls", "home") + "\nblobs:\n  backend: fs\n" + d.peers("home")
	if standby {
		cfg += "standby: true\n"
	}
	return cfg
}

func (d *deployment) embassyConfig(id string) string {
	l := state.Layout{Dir: d.dir}
	return "site: " + id + "\nlisten: " + d.addrs[id] + "\ntls_key: " + l.Key("site-tls", id) + "\ndata_dir: " + filepath.Join(d.dir, "sites", id) +
		"\nguests:\n  - charter: " + l.Charter() + "\n    checkpoint_key: " + l.Key("site-checkpoint", id) + "\n    custody: " + l.Custody() + "\n" + d.peers(id)
}

// start runs site id with cfg and waits until it answers /healthz.
func (d *deployment) start(id, cfg string) {
	t := d.t
	t.Helper()
	file := filepath.Join(d.dir, id+".yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(d.bin, "chancery"), "serve", "--config", file, "--log-format", "text")
	cmd.Env = append(os.Environ(), keyfile.EnvPassphrase+"="+d.pass)
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.procs[id], d.logs[id] = cmd, logs
	hc, err := pinnedClient(state.Layout{Dir: d.dir}.Charter(), id)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get(d.url(id) + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s did not come up: %v\n%s", id, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill ends site id at once, as a disaster does.
func (d *deployment) kill(id string) {
	if p := d.procs[id]; p != nil {
		p.Process.Signal(syscall.SIGKILL)
		p.Wait()
		delete(d.procs, id)
	}
}

func (d *deployment) stopAll() {
	for id, p := range d.procs {
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			p.Process.Kill()
			<-done
		}
		delete(d.procs, id)
	}
}

// status is the guest's continuity status at site id.
func (d *deployment) status(id string) (*siteapi.ContinuityStatus, error) {
	hc, err := pinnedClient(state.Layout{Dir: d.dir}.Charter(), id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return (&siteapi.ContinuityClient{BaseURL: d.url(id), Guest: "demo-republic", HTTP: hc}).Status(ctx)
}

// waitFor polls until ok holds of site id's status.
func (d *deployment) waitFor(id, what string, ok func(*siteapi.ContinuityStatus) bool) {
	d.t.Helper()
	var last *siteapi.ContinuityStatus
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last, err = d.status(id); err == nil && ok(last) {
			return
		}
	}
	d.t.Fatalf("site %s: %s never came: %+v %v\n%s", id, what, last, err, d.logs[id])
}

// newDeployment founds a Demo Republic and starts its three sites, and
// lays out a working directory as the runbook's reader has it: the
// charter, the custody package, the escrow, and each official's and
// custodian's key file under their id.
func newDeployment(t *testing.T, bin string) (*deployment, string) {
	dir := homeState(t)
	d := &deployment{t: t, bin: bin, dir: dir, pass: os.Getenv(keyfile.EnvPassphrase), addrs: map[string]string{},
		procs: map[string]*exec.Cmd{}, logs: map[string]*bytes.Buffer{}}
	t.Cleanup(d.stopAll)
	for _, id := range []string{"home", "embassy-north", "embassy-south"} {
		d.addrs[id] = freePort(t)
	}
	d.start("embassy-north", d.embassyConfig("embassy-north"))
	d.start("embassy-south", d.embassyConfig("embassy-south"))
	d.start("home", d.homeConfig(false))

	work := t.TempDir()
	l := state.Layout{Dir: dir}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(to), 0o700)
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(l.Charter(), filepath.Join(work, "charter.yaml"))
	copyFile(l.Custody(), filepath.Join(work, "custody.json"))
	keys, _ := filepath.Glob(filepath.Join(l.Keys(), "*.key"))
	for _, k := range keys {
		base := filepath.Base(k)
		for _, kind := range []string{"official-", "custodian-"} {
			if id, ok := strings.CutPrefix(base, kind); ok {
				copyFile(k, filepath.Join(work, id))
			}
		}
	}
	escrow, _ := filepath.Glob(filepath.Join(dir, "escrow", "*"))
	for _, e := range escrow {
		copyFile(e, filepath.Join(work, "escrow", filepath.Base(e)))
	}
	return d, work
}

// runBlock runs one block of commands with sh -e in work, as a reader
// would paste it, and returns its output.
func runBlock(t *testing.T, doc string, b shBlock, work string, env []string, edit func(string) string) string {
	t.Helper()
	script := b.commands
	if edit != nil {
		script = edit(script)
	}
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = work
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s:%d (%s, %s):\n%s%s", doc, b.line, b.heading, time.Since(start).Round(time.Millisecond), script, indent(out.String()))
	if err != nil {
		t.Fatalf("%s:%d under %q: %v\n%s\n%s", doc, b.line, b.heading, err, script, out.String())
	}
	return out.String()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  | ") + "\n"
}

// TestRunbookRuns walks docs/continuity.md: it runs every command of its
// ```sh blocks, in order, with the binary built from this tree, against a
// Demo Republic's home and two embassies running as processes on
// loopback with pinned TLS. Between sections the test does what the
// runbook says happens outside the commands: the home is lost before the
// activation, and comes back as a standby mirror before the failback.
// Its context (chancery context add) is given the sites' loopback
// addresses; nothing else in a command is changed. So the runbook's
// commands cannot drift from the code.
func TestRunbookRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and walks the whole runbook")
	}
	const doc = "../../docs/continuity.md"
	blocks := shBlocks(t, doc)
	if len(blocks) < 20 {
		t.Fatalf("%s has %d ```sh blocks: the runbook's commands are not where this test looks", doc, len(blocks))
	}
	bin := buildChancery(t)
	d, work := newDeployment(t, bin)
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_CONFIG_HOME="+t.TempDir(), "D="+d.dir)
	// A record the officials read at the activated site.
	rec := filepath.Join(work, "seed.json")
	os.WriteFile(rec, []byte(`{"national_id":"DR-0001","first_name":"Ana","last_name":"Berg"}`), 0o600)
	seed := exec.Command(filepath.Join(bin, "chancery"), "records", "put", "population", "DR-0001", rec, "--state", d.dir,
		"--url", d.url("home"), "--official", "registrar")
	seed.Env = env
	if out, err := seed.CombinedOutput(); err != nil {
		t.Fatalf("seed a record: %v\n%s", err, out)
	}

	addURLs := func(s string) string {
		return strings.ReplaceAll(s, "chancery context add", fmt.Sprintf("chancery context add --url home=%s --url embassy-north=%s --url embassy-south=%s",
			d.url("home"), d.url("embassy-north"), d.url("embassy-south")))
	}
	did := map[string]bool{}
	once := func(key string, f func()) {
		if !did[key] {
			did[key] = true
			f()
		}
	}
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b.section, "## Activation"):
			once("disaster", func() {
				// Wait until both embassies hold everything, then lose
				// the home.
				home, err := d.status("home")
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range []string{"embassy-north", "embassy-south"} {
					d.waitFor(id, "the home's ledger", func(s *siteapi.ContinuityStatus) bool { return s.Size >= home.Size })
				}
				d.kill("home")
			})
		case strings.HasPrefix(b.section, "## Failback"):
			once("home back", func() {
				// Step 1 of the failback: the home starts as a standby
				// mirror and catches up from the active site.
				d.start("home", d.homeConfig(true))
				north, err := d.status("embassy-north")
				if err != nil {
					t.Fatal(err)
				}
				d.waitFor("home", "catching up", func(s *siteapi.ContinuityStatus) bool { return s.Size >= north.Size && s.Epoch == north.Epoch })
			})
			if strings.HasPrefix(b.heading, "### 6.") {
				once("home writes", func() {
					d.waitFor("home", "the failback", func(s *siteapi.ContinuityStatus) bool { return s.Mode == siteapi.ModeActive && s.Unsealed })
				})
			}
		case strings.HasPrefix(b.section, "## Drills") && strings.HasPrefix(b.heading, "### 2."):
			once("drill arrives", func() {
				d.waitFor("embassy-north", "the drill order", func(s *siteapi.ContinuityStatus) bool { return s.Mode == siteapi.ModeDrill })
			})
		}
		out := runBlock(t, doc, b, work, env, addURLs)
		if strings.HasPrefix(b.heading, "### 10. Serve") && strings.Contains(b.commands, "unseal status") {
			// The first read at the activated site gave the activation
			// its RTO, in the site's status.
			if !strings.Contains(out, `"first_read_at"`) || !strings.Contains(out, `"rto_seconds"`) {
				t.Errorf("%s:%d: after the first read, no RTO in the status:\n%s", doc, b.line, out)
			}
			did["rto"] = true
		}
		if strings.HasPrefix(b.heading, "### 10. Serve") && strings.Contains(b.commands, "extract verify") {
			// A certified extract issued at the activated embassy, its
			// receipt cosigned by the other embassy, verifies offline.
			if !strings.Contains(out, "issued by site embassy-north") || strings.Contains(out, "FAILED") {
				t.Errorf("%s:%d: the extract issued at the activated embassy does not verify:\n%s", doc, b.line, out)
			}
			did["extract"] = true
		}
	}
	if !did["extract"] {
		t.Errorf("%s: no ```sh block under \"### 10. Serve\" issues and verifies an extract", doc)
	}
	if !did["rto"] {
		t.Errorf("%s: no ```sh block under \"### 10. Serve\": the first read and the RTO are not shown", doc)
	}

}

// TestReadmeTourRuns runs the ```sh block of README.md's tour of the CLI,
// as written, in an empty directory with the binary built from this tree
// on $PATH: the tour is what a new operator types first.
func TestReadmeTourRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and founds a state with production key sealing")
	}
	const doc = "../../README.md"
	var tour []shBlock
	for _, b := range shBlocks(t, doc) {
		if strings.HasPrefix(b.section, "## A short tour of the CLI") {
			tour = append(tour, b)
		}
	}
	if len(tour) == 0 {
		t.Fatalf("%s: no ```sh block under \"## A short tour of the CLI\"", doc)
	}
	bin := buildChancery(t)
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_CONFIG_HOME="+t.TempDir(),
		keyfile.EnvPassphrase+"=a readme tour passphrase, long enough")
	work := t.TempDir()
	var out string
	for _, b := range tour {
		out += runBlock(t, doc, b, work, env, nil)
	}
	if !strings.Contains(out, "result: acceptable") {
		t.Errorf("the tour's order does not verify:\n%s", out)
	}
}

// TestDemoKeep runs "chancery demo --keep" as a person would: once the
// story is told, the sites stay up and a context "demo" is written, so
// that status and records commands work against them with no other flag
// (the passphrase from the file the demo names); Ctrl-C stops the sites.
func TestDemoKeep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	bin := buildChancery(t)
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_CONFIG_HOME="+t.TempDir(), keyfile.EnvPassphrase+"=")
	demo := exec.Command(filepath.Join(bin, "chancery"), "demo", "--keep", "--persons", "200", "--deed-persons", "1", "--updates", "50", "--appenders", "4")
	demo.Env = env
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	demo.Stderr = &stderr
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	defer demo.Process.Kill()
	// A demo that never prints the way to its portal ends the scan below.
	watchdog := time.AfterFunc(5*time.Minute, func() { demo.Process.Kill() })
	defer watchdog.Stop()
	var out strings.Builder
	urls := map[string]string{}
	sc := bufio.NewScanner(stdout)
	site := regexp.MustCompile(`^\s+(home|embassy-north|embassy-south|portal|desk|dashboard)\s+(http\S+)`)
	curl := regexp.MustCompile(`^\s+curl --connect-to (\S+):443:(\S+) --cacert (\S+) (\S+)$`)
	spki := regexp.MustCompile(`--ignore-certificate-errors-spki-list=(\S+)`)
	eid := regexp.MustCompile(`sign in as citizen (\S+) .*: certificate (\S+), key (\S+)$`)
	var front, spkiList, citizen []string
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if m := site.FindStringSubmatch(line); m != nil {
			urls[m[1]] = m[2]
		}
		if m := curl.FindStringSubmatch(line); m != nil {
			front = m[1:]
		}
		if m := spki.FindStringSubmatch(line); m != nil {
			spkiList = m[1:]
		}
		if m := eid.FindStringSubmatch(line); m != nil {
			citizen = m[1:]
			break
		}
	}
	if len(urls) != 6 || front == nil || spkiList == nil || citizen == nil || !strings.Contains(out.String(), "passphrase of the key files:") || !strings.Contains(out.String(), `context "demo" written`) {
		t.Fatalf("demo --keep did not print the sites, the pages, the way to the portal, the passphrase file and the context:\n%s\n%s", out.String(), stderr.String())
	}
	pages := map[string]string{"portal": urls["portal"], "desk": urls["desk"], "dashboard": urls["dashboard"]}
	for _, p := range []string{"portal", "desk", "dashboard"} {
		delete(urls, p)
	}
	go io.Copy(io.Discard, stdout)
	run := func(args ...string) (string, error) {
		c := exec.Command(filepath.Join(bin, "chancery"), args...)
		c.Env = env
		b, err := c.CombinedOutput()
		return string(b), err
	}
	if o, err := run("context", "use", "demo"); err != nil {
		t.Fatalf("context use demo: %v\n%s", err, o)
	}
	o, _ := run("status", "--all")
	if !strings.Contains(lineWith(o, "home "), "ACTIVE") {
		t.Fatalf("status --all on the kept sites:\n%s", o)
	}
	if o, err := run("records", "find", "population", "last_name", "Berg"); err != nil || !strings.Contains(o, `"registry": "population"`) {
		t.Fatalf("records find on the kept home, from the context alone: %v\n%s", err, o)
	}
	// The pages: ui login prints a single-use link that opens a session
	// on the kept home's dashboard.
	o, err = run("ui", "login", "--json")
	var link struct {
		URL string `json:"url"`
	}
	if err != nil || json.Unmarshal([]byte(o[strings.Index(o, "{"):]), &link) != nil || !strings.Contains(link.URL, "/ui/login?token=") {
		t.Fatalf("ui login on the kept home: %v\n%s", err, o)
	}
	nofollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := nofollow.Get(link.URL); err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/dashboard" {
		t.Fatalf("the ui login link: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// The pages it printed: the desk and the dashboard at the site that
	// writes, and the citizen portal on the issuer's name, reached as the
	// printed curl command does (the name to the demo's TLS front, its
	// certificate trusted): the start page, and the sign-in page, which
	// the portal draws only once the provider knows it as the charter's
	// client with the root-derived key.
	for _, p := range []string{"desk", "dashboard"} {
		if !strings.HasPrefix(pages[p], urls["home"]+"/ui/") {
			t.Errorf("%s %s: want a page of the home, which writes after failback (%s)", p, pages[p], urls["home"])
		}
	}
	host, addr, certFile, portalURL := front[0], front[1], front[2], front[3]
	if portalURL != pages["portal"] || !strings.HasPrefix(portalURL, "https://"+host+"/portal/") {
		t.Fatalf("portal %s, curl's %s on %s", pages["portal"], portalURL, host)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", certFile)
	}
	browser := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a != host+":443" {
				return nil, fmt.Errorf("only the issuer's name, not %s", a)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	for _, pg := range []struct{ path, want string }{{"", "Your records, in the state"}, {"signin", `action="/portal/signin/eid"`}} {
		resp, err := browser.Get(portalURL + pg.path)
		if err != nil {
			t.Fatalf("the kept portal %s%s: %v", portalURL, pg.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), pg.want) {
			t.Fatalf("the kept portal %s%s: %s, want %q in\n%s", portalURL, pg.path, resp.Status, pg.want, b)
		}
	}
	if browsertest.Find() != "" {
		portalSignInAsPrinted(t, portalURL, host, addr, spkiList[0], citizen)
	}
	// Ctrl-C stops the sites and the demo.
	demo.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- demo.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo --keep did not stop on Ctrl-C")
	}
	for id, u := range urls {
		if resp, err := http.Get(u + "/livez"); err == nil {
			resp.Body.Close()
			t.Errorf("site %s still answers at %s after Ctrl-C", id, u)
		}
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("the portal's TLS front still listens at %s after Ctrl-C", addr)
	}
}

// portalSignInAsPrinted signs the demo citizen in to the kept portal in
// headless Chromium started with the flags demo --keep printed, with the
// eID files it named: the sign-in page's challenge signed with her key,
// her certificate and the signature pasted into the form, as the page
// tells a citizen to do with openssl.
func portalSignInAsPrinted(t *testing.T, portalURL, host, addr, spki string, citizen []string) {
	t.Helper()
	person, certFile, keyFile := citizen[0], citizen[1], citizen[2]
	cert, err := found.ReadCert(certFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := found.ReadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.NewWith(t, false,
		chromedp.Flag("host-resolver-rules", "MAP "+host+":443 "+addr),
		chromedp.Flag("ignore-certificate-errors-spki-list", spki))
	if err := b.Do(30*time.Second, chromedp.Navigate(portalURL), chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("#eid-h"))); err != nil {
		t.Fatalf("the kept portal's sign-in page in Chromium: %v", err)
	}
	challenge, err := browsertest.Run(b, 10*time.Second, chromedp.Value(chromedp.CSS(`input[name="challenge"]`)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil {
		t.Fatalf("challenge %q: %v", challenge, err)
	}
	d := sha256.Sum256(identity.EIDMessage(strings.TrimSuffix(portalURL, "/portal/"), raw))
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Do(30*time.Second,
		chromedp.SetValue(chromedp.CSS("#certificate"), base64.StdEncoding.EncodeToString(cert.Raw)),
		chromedp.SetValue(chromedp.CSS("#signature"), base64.StdEncoding.EncodeToString(sig)),
		chromedp.Click(chromedp.CSS(`form[action="/portal/signin/eid"] button`)),
		chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	var h1, main string
	deadline := time.Now().Add(30 * time.Second)
	for h1 != "My records" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		h1, _ = browsertest.Run(b, 10*time.Second, chromedp.Text(chromedp.CSS("h1")))
	}
	main, _ = browsertest.Run(b, 10*time.Second, chromedp.Text(chromedp.CSS("main")))
	if h1 != "My records" || !strings.Contains(main, person) {
		t.Fatalf("after the eID sign-in at the kept portal: %q, want My records with %s:\n%s", h1, person, main)
	}
}
