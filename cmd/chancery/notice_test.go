package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/extract/offline"
	"github.com/chancery-gov/chancery/services/message"
)

// startPlainHome serves the home of the state in dir over plain HTTP on
// loopback (no replication) in this process and returns its URL.
func startPlainHome(t *testing.T, dir string) string {
	t.Helper()
	addr := freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "home.yaml")
	if err := os.WriteFile(cfgFile, []byte("state_dir: "+dir+"\nsite: home\nlisten: "+addr+"\ninsecure_loopback: true\nreplication:\n  disabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--config", cfgFile})
	cmd.SetErr(&bytes.Buffer{})
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("home: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("home did not exit")
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("home did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNoticeCommands drafts a notice, has the cio sign it (short of the
// continuity class's quorum: verify and the site both name the minister
// missing), then a minister, and publishes it at a live home; signing
// twice is refused. Then the online check the --online flag makes, before
// and after a new version of a record.
func TestNoticeCommands(t *testing.T) {
	dir := homeState(t)
	l := state.Layout{Dir: dir}
	url := startPlainHome(t, dir)
	file := filepath.Join(t.TempDir(), "abroad.notice")
	run := func(args ...string) (string, error) { return chancery(t, "", args...) }
	out, err := run("notice", "draft", "--charter", l.Charter(), "--class", "continuity", "--id", "abroad-1",
		"--title", "The government is operating from abroad", "--body", "Services continue.", "--lang", "en", "--site", "home", "--epoch", "1", "--out", file)
	if err != nil || !strings.Contains(out, "minister") {
		t.Fatalf("draft: %v\n%s", err, out)
	}
	if _, err := run("notice", "draft", "--charter", l.Charter(), "--class", "gossip", "--title", "t", "--site", "home", "--epoch", "1", "--out", file+"2"); err == nil || !strings.Contains(err.Error(), "continuity") {
		t.Fatalf("an unknown class: %v", err)
	}
	sign := func(official string) (string, error) {
		return run("notice", "sign", file, "--official", official, "--key", l.Key("official", official), "--charter", l.Charter())
	}
	if out, err := sign("cio"); err != nil || !strings.Contains(out, "quorum NOT met") {
		t.Fatalf("sign as cio: %v\n%s", err, out)
	}
	if _, err := sign("cio"); err == nil || !strings.Contains(err.Error(), "already signed") {
		t.Fatalf("signing twice: %v", err)
	}
	if _, err := run("notice", "verify", file, "--charter", l.Charter()); err == nil || !strings.Contains(err.Error(), "minister") {
		t.Fatalf("verify short of the quorum: %v", err)
	}
	site := []string{"--state", dir, "--site", "home", "--url", url, "--official", "registrar"}
	if _, err := run(append([]string{"notice", "publish", file}, site...)...); err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "minister") {
		t.Fatalf("publish short of the quorum: %v", err)
	}
	if out, err := sign("min-interior"); err != nil || !strings.Contains(out, "quorum met") {
		t.Fatalf("sign as min-interior: %v\n%s", err, out)
	}
	if out, err := run("notice", "verify", file, "--charter", l.Charter()); err != nil || !strings.Contains(out, "cio, min-interior") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if out, err := run(append([]string{"notice", "publish", file}, site...)...); err != nil || !strings.Contains(out, "published notice abroad-1") {
		t.Fatalf("publish: %v\n%s", err, out)
	}

	// The online check, as extract verify --online makes it.
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	put := func(last string) registry.Record {
		t.Helper()
		out, err := chancery(t, `{"national_id":"DR-9","last_name":"`+last+`"}`, append([]string{"records", "put", "population", "DR-9", "-"}, site...)...)
		var r registry.Record
		if err != nil || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("put: %v\n%s", err, out)
		}
		return r
	}
	v1 := put("Berg")
	cl := &offline.Claims{ID: "X", Registry: "population", Record: "DR-9", Version: v1.Version, RecordIndex: v1.Index}
	ctx := context.Background()
	var buf bytes.Buffer
	for deadline := time.Now().Add(10 * time.Second); ; {
		// The version is answered for once a checkpoint covers it.
		buf.Reset()
		err = checkOnline(ctx, &buf, c, url, cl)
		if err == nil || !strings.Contains(err.Error(), "entries") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || !strings.Contains(buf.String(), "not superseded") {
		t.Fatalf("online check before a new version: %v\n%s", err, buf.String())
	}
	v2 := put("Horak")
	buf.Reset()
	for deadline := time.Now().Add(10 * time.Second); ; {
		err = checkOnline(ctx, &buf, c, url, cl)
		if err != nil || time.Now().After(deadline) {
			break
		}
		buf.Reset()
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "superseded") || !strings.Contains(buf.String(), "SUPERSEDED by version 2") || v2.Version != 2 {
		t.Fatalf("online check after a new version: %v\n%s", err, buf.String())
	}
	if _, err := run("extract", "verify", file, "--charter", l.Charter(), "--online", "nowhere"); err == nil {
		t.Fatal("extract verify of a notice file verified")
	}
}

// TestMessageSend sends a citizen a message with the command against a
// live home whose charter keeps messages; one to a person the population
// register lacks is refused, naming them.
func TestMessageSend(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("message test passphrase")
	_, err := found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10},
		Amend: func(c *charter.Charter) error {
			c.Registries = append(c.Registries, charter.Registry{Name: "messages", Classification: charter.ClassSecret,
				Sites: []string{"home", "embassy-north", "embassy-south"}, Index: []string{"person"}, Sync: charter.SyncAsync})
			return c.SetService(message.Section, message.Config{People: "population"})
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(keyfile.EnvPassphrase, string(pass))
	url := startPlainHome(t, dir)
	site := []string{"--state", dir, "--site", "home", "--url", url, "--official", "registrar"}
	if out, err := chancery(t, `{"national_id":"DR-5","last_name":"Varga"}`, append([]string{"records", "put", "population", "DR-5", "-"}, site...)...); err != nil {
		t.Fatalf("put: %v\n%s", err, out)
	}
	body := filepath.Join(t.TempDir(), "body.txt")
	os.WriteFile(body, []byte("Your pension is paid abroad."), 0o600)
	out, err := chancery(t, "", append([]string{"message", "send", "DR-5", "--subject", "Pension", "--body-file", body}, site...)...)
	if err != nil || !strings.Contains(out, "sent message m-") {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if _, err := chancery(t, "", append([]string{"message", "send", "DR-6", "--subject", "x", "--body", "y"}, site...)...); err == nil || !strings.Contains(err.Error(), "DR-6") {
		t.Fatalf("to a person not in the register: %v", err)
	}
	if _, err := chancery(t, "", append([]string{"message", "send", "DR-5", "--subject", "x", "--body", "y", "--body-file", body}, site...)...); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("--body and --body-file: %v", err)
	}
}
