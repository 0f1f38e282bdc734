package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// chanceryErr runs the root command like chancery, and returns its stderr
// too (warnings).
func chanceryErr(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestSiteMeansSiteID: --site names a site by its id everywhere, with
// --url for an address; the old spellings (--site URL, --site-id,
// --pin-site, --guest-charter, --package, --dir) still work for one
// release, each with a warning on stderr naming the new flag. The guest
// comes from the charter: without one, a command asks for it rather than
// assume demo-republic.
func TestSiteMeansSiteID(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir, url := startHome(t)
	charterFile := state.Layout{Dir: dir}.Charter()

	// New: the site's id and the charter; the guest from the charter.
	out, stderr, err := chanceryErr(t, "unseal", "status", "--charter", charterFile, "--site", "home", "--url", url)
	if err != nil || stderr != "" {
		t.Fatalf("unseal status --site home: %v\n%s%s", err, out, stderr)
	}
	var st siteapi.ContinuityStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Site != "home" || st.Guest != "demo-republic" {
		t.Fatalf("unseal status: %+v %v\n%s", st, err, out)
	}
	// Old: --site URL with --pin-site: works, and says what to write now.
	out, stderr, err = chanceryErr(t, "unseal", "status", "--site", url, "--charter", charterFile, "--pin-site", "home")
	if err != nil {
		t.Fatalf("unseal status --site URL: %v\n%s", err, out)
	}
	if !strings.Contains(stderr, "--site URL is deprecated") || !strings.Contains(stderr, "--url URL") || !strings.Contains(stderr, "--pin-site is deprecated") {
		t.Fatalf("no deprecation warnings for --site URL --pin-site:\n%s", stderr)
	}
	// No charter, only an address: the guest is asked for, not assumed.
	_, _, err = chanceryErr(t, "unseal", "status", "--url", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "which guest?") {
		t.Fatalf("no charter, no guest: %v", err)
	}
	// A site id the charter does not know is named with the known ones.
	_, _, err = chanceryErr(t, "unseal", "status", "--charter", charterFile, "--site", "embassy-west")
	if err == nil || !strings.Contains(err.Error(), `--site "embassy-west" is not a site`) || !strings.Contains(err.Error(), "embassy-north") {
		t.Fatalf("unknown site: %v", err)
	}

	// order new: --guest-charter is now --charter.
	o1, o2 := filepath.Join(t.TempDir(), "a.order"), filepath.Join(t.TempDir(), "b.order")
	_, stderr, err = chanceryErr(t, "order", "new", "--action", "drill", "--guest-charter", charterFile, "--site", "embassy-north", "--epoch", "1", "--out", o1)
	if err != nil || !strings.Contains(stderr, "--guest-charter is deprecated") || !strings.Contains(stderr, "use --charter") {
		t.Fatalf("order new --guest-charter: %v\n%s", err, stderr)
	}
	if _, stderr, err = chanceryErr(t, "order", "new", "--action", "drill", "--charter", charterFile, "--site", "embassy-north", "--epoch", "1", "--out", o2); err != nil || stderr != "" {
		t.Fatalf("order new --charter: %v\n%s", err, stderr)
	}
	// custody verify: --package is now --custody.
	l := state.Layout{Dir: dir}
	_, stderr, err = chanceryErr(t, "custody", "verify", "--package", l.Custody(), "--custodian", "cust-court", "--identity", l.Key("custodian", "cust-court"))
	if err != nil || !strings.Contains(stderr, "--package is deprecated") || !strings.Contains(stderr, "use --custody") {
		t.Fatalf("custody verify --package: %v\n%s", err, stderr)
	}
	if _, stderr, err = chanceryErr(t, "custody", "verify", "--custody", l.Custody(), "--custodian", "cust-court", "--identity", l.Key("custodian", "cust-court")); err != nil || strings.Contains(stderr, "deprecated") {
		t.Fatalf("custody verify --custody: %v\n%s", err, stderr)
	}
	// init: --dir is now --state (refused here: the directory exists, but
	// after the warning).
	_, stderr, _ = chanceryErr(t, "init", "--dir", dir)
	if !strings.Contains(stderr, "--dir is deprecated") || !strings.Contains(stderr, "use --state") {
		t.Fatalf("init --dir: no warning:\n%s", stderr)
	}
}

// TestContexts: a context written by "context add" (mode 0600) gives
// every command its charter, site, address, official, key and
// passphrase file, so that "records get REGISTRY ID" is the whole
// command; a flag on the command line wins; list, show and use work.
func TestContexts(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	dir, url := startHome(t)
	l := state.Layout{Dir: dir}
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte(os.Getenv("CHANCERY_PASSPHRASE")), 0o600)
	t.Setenv("CHANCERY_PASSPHRASE", "")

	// Before any context, a bare command says what is missing.
	if _, _, err := chanceryErr(t, "records", "get", "population", "DR-1"); err == nil || !strings.Contains(err.Error(), "--charter") {
		t.Fatalf("records get without a context: %v", err)
	}
	out, _, err := chanceryErr(t, "context", "add", "rehearsal", "--charter", l.Charter(), "--site", "home", "--url", "home="+url,
		"--official", "registrar", "--key", l.Key("official", "registrar"), "--passphrase-file", pf)
	if err != nil || !strings.Contains(out, "current context: rehearsal") {
		t.Fatalf("context add: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(cfg, "chancery", "contexts.yaml"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("contexts.yaml: %v %v", fi, err)
	}
	// A context is checked against the charter.
	if _, _, err := chanceryErr(t, "context", "add", "bad", "--charter", l.Charter(), "--site", "embassy-west"); err == nil || !strings.Contains(err.Error(), "embassy-west") {
		t.Fatalf("context add with an unknown site: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "r.json"), []byte(`{"national_id":"DR-1","last_name":"Berg"}`), 0o600)
	out, stderr, err := chanceryErr(t, "records", "put", "population", "DR-1", filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatalf("records put from the context: %v\n%s%s", err, out, stderr)
	}
	out, _, err = chanceryErr(t, "records", "get", "population", "DR-1")
	var r registry.Record
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Version != 1 {
		t.Fatalf("records get from the context: %v\n%s", err, out)
	}
	// A flag wins over the context: another official's key is refused.
	_, _, err = chanceryErr(t, "records", "get", "population", "DR-1", "--key", l.Key("official", "cio"))
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("records get --key of another official: %v", err)
	}
	// The continuity commands take the context too.
	out, _, err = chanceryErr(t, "unseal", "status")
	if err != nil || !strings.Contains(out, `"site": "home"`) {
		t.Fatalf("unseal status from the context: %v\n%s", err, out)
	}

	if _, _, err := chanceryErr(t, "context", "add", "north", "--charter", l.Charter(), "--site", "embassy-north"); err != nil {
		t.Fatal(err)
	}
	out, _, err = chanceryErr(t, "context", "list")
	if err != nil || !strings.Contains(lineWith(out, "rehearsal"), "*") || strings.Contains(lineWith(out, "north"), "*") {
		t.Fatalf("context list: %v\n%s", err, out)
	}
	if out, _, err = chanceryErr(t, "context", "use", "north"); err != nil {
		t.Fatalf("context use: %v\n%s", err, out)
	}
	out, _, err = chanceryErr(t, "context", "show")
	if err != nil || !strings.Contains(out, "north:") || !strings.Contains(out, "site: embassy-north") {
		t.Fatalf("context show: %v\n%s", err, out)
	}
	// --context chooses another for one command.
	out, _, err = chanceryErr(t, "unseal", "status", "--context", "rehearsal")
	if err != nil || !strings.Contains(out, `"site": "home"`) {
		t.Fatalf("--context rehearsal: %v\n%s", err, out)
	}
	if _, _, err = chanceryErr(t, "context", "use", "nowhere"); err == nil {
		t.Fatal("context use of an unknown context succeeded")
	}
}

// TestServeCheck: serve --check passes a good configuration and names
// the field of each problem: an embassy without custody, another site's
// TLS key, a key file others may read.
func TestServeCheck(t *testing.T) {
	dir := homeState(t)
	l := state.Layout{Dir: dir}
	write := func(name, yaml string) string {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, []byte(yaml), 0o600)
		return p
	}
	home := write("home.yaml", "state_dir: "+dir+"\nsite: home\nlisten: 127.0.0.1:7001\ntls_key: "+l.Key("site-tls", "home")+"\n")
	out, _, err := chanceryErr(t, "serve", "--check", "--config", home)
	if err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, "matches the charter's pin") {
		t.Fatalf("a good home: %v\n%s", err, out)
	}
	wrongTLS := write("home2.yaml", "state_dir: "+dir+"\nsite: home\nlisten: 127.0.0.1:7001\ntls_key: "+l.Key("site-tls", "embassy-north")+"\n")
	out, _, err = chanceryErr(t, "serve", "--check", "--config", wrongTLS)
	if err == nil || !strings.Contains(out, "tls_key:") || !strings.Contains(out, "not the TLS key the charter pins") {
		t.Fatalf("another site's TLS key: %v\n%s", err, out)
	}
	embassy := write("north.yaml", "site: embassy-north\nlisten: 127.0.0.1:7101\ntls_key: "+l.Key("site-tls", "embassy-north")+
		"\ndata_dir: "+t.TempDir()+"\nguests:\n  - charter: "+l.Charter()+"\n    checkpoint_key: "+l.Key("site-checkpoint", "embassy-north")+"\n")
	out, _, err = chanceryErr(t, "serve", "--check", "--config", embassy)
	if err == nil || !strings.Contains(out, "guests[0].custody: missing") {
		t.Fatalf("an embassy without custody: %v\n%s", err, out)
	}
	os.Chmod(l.Key("site-tls", "home"), 0o644)
	out, _, err = chanceryErr(t, "serve", "--check", "--config", home)
	if err == nil || !strings.Contains(out, "tls_key:") || !strings.Contains(out, "mode 0644") {
		t.Fatalf("a key file others may read: %v\n%s", err, out)
	}
	bad := write("bad.yaml", "state_dir: "+dir+"\nsite: home\n")
	out, _, err = chanceryErr(t, "serve", "--check", "--config", bad)
	if err == nil || !strings.Contains(out, "listen: required") {
		t.Fatalf("a config without listen: %v\n%s", err, out)
	}
}

// exitCode is the code main exits with for err.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// TestStatusAllBannersAndExitCodes runs a home replicating to a live
// embassy-north and an embassy-south that is down: status --all shows
// each site's banner and the writer's RPO table and exits 2 (degraded);
// one healthy site exits 0; --max-rpo below south's lag exits 3; a site
// that does not answer, asked alone, exits 1.
func TestStatusAllBannersAndExitCodes(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := homeState(t)
	l := state.Layout{Dir: dir}
	north := startEmbassy(t, dir)
	south := "https://" + freePort(t) // nothing listens there
	addr := freePort(t)
	home := startSite(t, l.Charter(), "home", addr, "state_dir: "+dir+"\nsite: home\nlisten: "+addr+"\ntls_key: "+l.Key("site-tls", "home")+
		"\nblobs:\n  backend: fs\npeers:\n  embassy-north: "+north+"\n  embassy-south: "+south+"\n")
	if _, _, err := chanceryErr(t, "context", "add", "t", "--charter", l.Charter(), "--site", "home", "--state", dir, "--official", "registrar",
		"--url", "home="+home, "--url", "embassy-north="+north, "--url", "embassy-south="+south); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(rec, []byte(`{"national_id":"DR-1","last_name":"Berg"}`), 0o600)
	if out, _, err := chanceryErr(t, "records", "put", "population", "DR-1", rec); err != nil {
		t.Fatalf("records put: %v\n%s", err, out)
	}

	out, _, err := chanceryErr(t, "status", "--all", "--timeout", "3s")
	if exitCode(err) != exitDegraded {
		t.Fatalf("status --all with south down: exit %d (%v), want 2\n%s", exitCode(err), err, out)
	}
	for site, banner := range map[string]string{"home": "ACTIVE", "embassy-north": "STANDBY", "embassy-south": "UNREACHABLE"} {
		if !strings.Contains(lineWith(out, site+" "), banner) {
			t.Errorf("status --all: %s is not %s:\n%s", site, banner, out)
		}
	}
	if !strings.Contains(out, "recovery points, as home (the writer) sees them") {
		t.Errorf("status --all: no RPO table from the writer:\n%s", out)
	}
	out, _, err = chanceryErr(t, "status", "--all", "--json", "--timeout", "3s")
	var rep statusReport
	if json.Unmarshal([]byte(out), &rep) != nil || len(rep.Sites) != 3 || rep.Exit != exitDegraded {
		t.Fatalf("status --all --json: %v\n%s", err, out)
	}

	if out, _, err = chanceryErr(t, "status"); err != nil {
		t.Fatalf("status at a ready home: %v\n%s", err, out)
	}
	out, _, err = chanceryErr(t, "status", "--max-rpo", "1ms")
	if exitCode(err) != exitRPO || !strings.Contains(out, "embassy-south") || !strings.Contains(out, "over --max-rpo") {
		t.Fatalf("status --max-rpo 1ms with south behind: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	out, _, err = chanceryErr(t, "status", "--site", "embassy-south", "--timeout", "2s")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("status of a site that is down: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	// The old spelling: the URL as an argument.
	_, stderr, err := chanceryErr(t, "status", home)
	if err != nil || !strings.Contains(stderr, "chancery status URL is deprecated") {
		t.Fatalf("status URL: %v\n%s", err, stderr)
	}

	// embassy-north is activated while the home still runs: the home
	// learns the newer epoch and fences itself. Its /readyz says so, and
	// status shows it FENCED and exits 2.
	order := filepath.Join(t.TempDir(), "activate.order")
	steps := [][]string{
		{"order", "new", "--action", "activate", "--site", "embassy-north", "--access", "read-write", "--epoch", "2", "--out", order},
		{"order", "sign", order, "--official", "min-interior", "--key", l.Key("official", "min-interior")},
		{"order", "sign", order, "--official", "cio", "--key", l.Key("official", "cio")},
		{"order", "submit", "--site", "embassy-north", "--accept-unfenced", order},
	}
	for _, args := range steps {
		if out, _, err := chanceryErr(t, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	hc, err := pinnedClient(l.Charter(), "home")
	if err != nil {
		t.Fatal(err)
	}
	var ready string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := hc.Get(home + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ready = fmt.Sprintf("%d %s", resp.StatusCode, b); resp.StatusCode == 503 && strings.Contains(ready, "fenced") {
			break
		}
	}
	if !strings.HasPrefix(ready, "503") || !strings.Contains(ready, "fenced") {
		t.Fatalf("the fenced home's /readyz: %s", ready)
	}
	out, _, err = chanceryErr(t, "status", "--site", "home")
	if exitCode(err) != exitDegraded || !strings.Contains(lineWith(out, "home "), "FENCED") || !strings.Contains(out, "fenced: a newer epoch") {
		t.Fatalf("status of the fenced home: exit %d (%v)\n%s", exitCode(err), err, out)
	}
}

// TestNextCommandShortWithContext: the next command a command prints (the
// drill's "drill submit ...") repeats --charter and --url only when the
// command line gave them; what the context gave, the next command takes
// from the same context.
func TestNextCommandShortWithContext(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv(envContext, "")
	l := state.Layout{Dir: homeState(t)}
	again := func(args ...string) string {
		t.Helper()
		root := newRootCmd()
		var f siteFlags
		cmd := &cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, _ []string) error { return nil }}
		f.register(cmd, "")
		root.AddCommand(cmd)
		root.SetArgs(append([]string{"probe"}, args...))
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		tg, err := f.resolve(cmd, false)
		if err != nil {
			t.Fatal(err)
		}
		return tg.again()
	}
	if got, want := again("--charter", l.Charter(), "--site", "embassy-north", "--url", "https://127.0.0.1:1"),
		"--site embassy-north --charter "+l.Charter()+" --url https://127.0.0.1:1"; got != want {
		t.Errorf("without a context: %q, want %q", got, want)
	}
	if _, _, err := chanceryErr(t, "context", "add", "rehearsal", "--charter", l.Charter(), "--site", "embassy-north", "--url", "embassy-north=https://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if got, want := again("--site", "embassy-north"), "--site embassy-north"; got != want {
		t.Errorf("with the current context: %q, want %q", got, want)
	}
	if got, want := again("--context", "rehearsal"), "--context rehearsal --site embassy-north"; got != want {
		t.Errorf("with --context: %q, want %q", got, want)
	}
	// A flag given on the command line is repeated.
	if got, want := again("--site", "embassy-north", "--url", "https://127.0.0.1:2"), "--site embassy-north --url https://127.0.0.1:2"; got != want {
		t.Errorf("--url over the context: %q, want %q", got, want)
	}
}
