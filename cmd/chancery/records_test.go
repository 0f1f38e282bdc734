package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// startSite runs "chancery serve" in this process with the configuration
// yaml (which must listen on addr with its pinned tls_key) and waits until
// the site answers /healthz over TLS pinned to the charter's key for id.
// The site is stopped, and its exit checked, at the end of the test.
func startSite(t *testing.T, charterFile, id, addr, yaml string) string {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), id+".yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--config", cfgFile})
	logs := &bytes.Buffer{}
	cmd.SetErr(logs)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("site %s: %v", id, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("site %s did not exit", id)
		}
	})
	hc, err := pinnedClient(charterFile, id)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := hc.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		select {
		case err := <-done:
			t.Fatalf("site %s exited: %v\n%s", id, err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s did not become healthy: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startHome serves the home of a fresh Demo Republic with its pinned TLS
// key and returns the state directory and the home's URL.
func startHome(t *testing.T) (dir, url string) {
	dir = homeState(t)
	l := state.Layout{Dir: dir}
	addr := freePort(t)
	url = startSite(t, l.Charter(), "home", addr, "state_dir: "+dir+"\nsite: home\nlisten: "+addr+"\ntls_key: "+l.Key("site-tls", "home")+
		"\nblobs:\n  backend: fs\nreplication:\n  disabled: true\n")
	return dir, url
}

// chancery runs the root command with args and stdin, as a script would:
// stdout is not a terminal.
func chancery(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestRecordsCommandsRoundTrip writes, reads, finds, attaches, lists and
// deletes records with the official's commands against a real home over
// TLS pinned by the charter, then checks that a request signed with
// another official's key is refused.
func TestRecordsCommandsRoundTrip(t *testing.T) {
	dir, url := startHome(t)
	as := []string{"--state", dir, "--site", "home", "--url", url, "--official", "registrar"}
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := chancery(t, stdin, append(args, as...)...)
		if err != nil {
			t.Fatalf("chancery %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	record := func(out string) registry.Record {
		t.Helper()
		var r registry.Record
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("output is not a record in JSON: %v\n%s", err, out)
		}
		return r
	}

	v1 := record(run(`{"national_id":"DR-1","last_name":"Berg"}`, "records", "put", "population", "DR-1", "-"))
	if v1.Version != 1 || v1.Registry != "population" || v1.ID != "DR-1" {
		t.Fatalf("put: %+v", v1)
	}
	got := record(run("", "records", "get", "population", "DR-1"))
	var compact bytes.Buffer
	if err := json.Compact(&compact, got.Data); err != nil || compact.String() != `{"national_id":"DR-1","last_name":"Berg"}` || got.Version != 1 {
		t.Fatalf("get: %s version %d", got.Data, got.Version)
	}
	file := filepath.Join(t.TempDir(), "dr1.json")
	os.WriteFile(file, []byte(`{"national_id":"DR-1","last_name":"Horak"}`), 0o600)
	if v2 := record(run("", "records", "put", "population", "DR-1", file)); v2.Version != 2 {
		t.Fatalf("second put: version %d", v2.Version)
	}
	// As of the first version's ledger index, the first version is read.
	if old := record(run("", "records", "get", "population", "DR-1", "--at-index", strconv.FormatUint(v1.Index, 10))); old.Version != 1 {
		t.Errorf("--at-index 1: version %d", old.Version)
	}
	var hist siteapi.HistoryResponse
	if err := json.Unmarshal([]byte(run("", "records", "history", "population", "DR-1")), &hist); err != nil || len(hist.Versions) != 2 {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	var found siteapi.FindResponse
	if err := json.Unmarshal([]byte(run("", "records", "find", "population", "last_name", "Horak")), &found); err != nil ||
		len(found.Records) != 1 || found.Records[0].ID != "DR-1" {
		t.Fatalf("find: %+v, %v", found, err)
	}

	// An attachment: upload, name it in a version, download it.
	deed := filepath.Join(t.TempDir(), "deed.txt")
	os.WriteFile(deed, []byte("deed of parcel P-1"), 0o600)
	var blob siteapi.BlobResponse
	if err := json.Unmarshal([]byte(run("", "blobs", "put", "land", deed)), &blob); err != nil || blob.Ref == "" || blob.Size != 18 {
		t.Fatalf("blobs put: %+v, %v", blob, err)
	}
	p1 := record(run(`{"parcel_id":"P-1","owner_id":"DR-1"}`, "records", "put", "land", "P-1", "-", "--attach", "deed.txt="+blob.Ref))
	if len(p1.Attachments) != 1 || p1.Attachments[0].Name != "deed.txt" {
		t.Fatalf("put with attachment: %+v", p1)
	}
	if out := run("", "blobs", "get", "land", "P-1", "deed.txt"); out != "deed of parcel P-1" {
		t.Fatalf("blobs get: %q", out)
	}
	saved := filepath.Join(t.TempDir(), "saved.txt")
	run("", "blobs", "get", "land", "P-1", "deed.txt", "--out", saved)
	if b, err := os.ReadFile(saved); err != nil || string(b) != "deed of parcel P-1" {
		t.Fatalf("blobs get --out: %q, %v", b, err)
	}

	if del := record(run("", "records", "delete", "population", "DR-1")); !del.Deleted || del.Version != 3 {
		t.Fatalf("delete: %+v", del)
	}

	// Registrar's name with the CIO's key: the site refuses the signature.
	out, err := chancery(t, "", append([]string{"records", "get", "land", "P-1", "--key", state.Layout{Dir: dir}.Key("official", "cio")}, as...)...)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "site home") {
		t.Fatalf("a wrong official key: %v\n%s", err, out)
	}
	// An official the charter does not know.
	out, err = chancery(t, "", "records", "get", "land", "P-1", "--state", dir, "--url", url, "--official", "nobody",
		"--key", state.Layout{Dir: dir}.Key("official", "cio"))
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("an unknown official: %v\n%s", err, out)
	}
}

// startEmbassy serves embassy-north of the state in dir, in standby, with
// its pinned TLS key, and returns its URL.
func startEmbassy(t *testing.T, dir string) string {
	l := state.Layout{Dir: dir}
	addr := freePort(t)
	return startSite(t, l.Charter(), "embassy-north", addr, "site: embassy-north\nlisten: "+addr+"\ntls_key: "+l.Key("site-tls", "embassy-north")+
		"\ndata_dir: "+t.TempDir()+"\nguests:\n  - charter: "+l.Charter()+"\n    checkpoint_key: "+l.Key("site-checkpoint", "embassy-north")+
		"\n    custody: "+l.Custody()+"\n")
}

// TestOperatorAndEmbassyPath runs the host operator's commands against a
// real embassy (signed with the host's key, found from the charter), and
// checks that an official's read at an embassy goes to the guest's API
// there: the standby embassy answers that the guest is not unsealed,
// which only that path does.
func TestOperatorAndEmbassyPath(t *testing.T) {
	dir := homeState(t)
	url := startEmbassy(t, dir)

	out, err := chancery(t, "", "operator", "status", "--state", dir, "--site", "embassy-north", "--url", url)
	if err != nil {
		t.Fatalf("operator status: %v\n%s", err, out)
	}
	var st siteapi.OperatorStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Guest != "demo-republic" || st.Site != "embassy-north" {
		t.Fatalf("operator status: %+v, %v\n%s", st, err, out)
	}
	// The other host does not run this site.
	out, err = chancery(t, "", "operator", "status", "--state", dir, "--site", "embassy-north", "--url", url, "--host", "southland")
	if err == nil || !strings.Contains(err.Error(), "host southland does not run site embassy-north") {
		t.Fatalf("operator status as southland: %v\n%s", err, out)
	}
	out, err = chancery(t, "", "operator", "suspend", "--state", dir, "--site", "embassy-north", "--url", url, "--reason", "test notice")
	if err != nil {
		t.Fatalf("operator suspend: %v\n%s", err, out)
	}
	var sp siteapi.Suspension
	if err := json.Unmarshal([]byte(out), &sp); err != nil || sp.Host != "northland" || sp.Reason != "test notice" {
		t.Fatalf("operator suspend: %+v, %v\n%s", sp, err, out)
	}

	out, err = chancery(t, "", "records", "get", "population", "DR-1", "--state", dir, "--site", "embassy-north", "--url", url, "--official", "registrar")
	if err == nil || !strings.Contains(err.Error(), "not unsealed: no registry is served") {
		t.Fatalf("records get at a standby embassy: %v\n%s", err, out)
	}
}

// TestPassphraseWithoutTerminal: with no passphrase file, no
// $CHANCERY_PASSPHRASE and no terminal to ask on, a command refuses and
// names both ways a script gives the passphrase; a passphrase file works.
func TestPassphraseWithoutTerminal(t *testing.T) {
	dir := homeState(t)
	pass := os.Getenv(keyfile.EnvPassphrase)
	t.Setenv(keyfile.EnvPassphrase, "")
	args := []string{"records", "get", "population", "DR-1", "--state", dir, "--url", "https://127.0.0.1:1", "--official", "registrar"}
	_, err := chancery(t, "", args...)
	if err == nil || !strings.Contains(err.Error(), "--passphrase-file") || !strings.Contains(err.Error(), "$CHANCERY_PASSPHRASE") {
		t.Fatalf("no passphrase, no terminal: %v", err)
	}
	// A pipe is not a terminal either.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := readPassphrase("", r, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Fatalf("stdin a pipe: %v", err)
	}
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte(pass+"\n"), 0o600)
	_, err = chancery(t, "", append(args, "--passphrase-file", pf)...)
	// The key opens; the request then fails to connect (no site there).
	if err == nil || strings.Contains(err.Error(), "passphrase") || strings.Contains(err.Error(), "key of official") {
		t.Fatalf("with --passphrase-file: %v", err)
	}
}
