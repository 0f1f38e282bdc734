package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// freePort finds a loopback port nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestServeRunsAndDrains(t *testing.T) {
	dir := homeState(t)
	addr := freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "home.yaml")
	cfg := "state_dir: " + dir + "\nsite: home\nlisten: " + addr + "\ninsecure_loopback: true\nblobs:\n  backend: fs\nreplication:\n  disabled: true\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &bytes.Buffer{}
	done := make(chan error, 1)
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--config", cfgFile})
	cmd.SetErr(logs)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("site did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}

	key, err := keyfile.ReadEd25519(state.Layout{Dir: dir}.Key("official", "registrar"), keyfile.Protector{Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	c := &siteapi.Client{BaseURL: base, Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key}}
	rec, err := c.Put(ctx, "business", "B-100", json.RawMessage(`{"registration_no":"B-100","name":"Acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "business", "B-100", registry.AsOf{}); err != nil || got.Version != rec.Version {
		t.Fatalf("get: %+v, %v", got, err)
	}

	// /livez: the process is up; /readyz: the guest can do its job.
	for _, path := range []string{"/livez", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}

	cancel() // what SIGTERM does through main's signal context
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not drain and exit")
	}
	if !strings.Contains(logs.String(), `"msg":"closed"`) {
		t.Errorf("no clean close in the log:\n%s", logs.String())
	}
	// Durations are Go duration strings, never raw nanoseconds.
	if stopped := lineWith(logs.String(), "serve: stopped"); !regexp.MustCompile(`"duration":"[0-9.]+(ms|s|m)`).MatchString(stopped) {
		t.Errorf("the stop is not logged with its duration as text: %s", stopped)
	}
	if m := regexp.MustCompile(`"(latency|duration)":[0-9]`).FindString(logs.String()); m != "" {
		t.Errorf("a duration logged as raw nanoseconds: %s", m)
	}
	// The record written through the daemon survives it.
	l, err := guest.OpenLocal(context.Background(), guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Registries.Get(context.Background(), "business", "B-100", registry.AsOf{}); err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusesPlainHTTPOffLoopback(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "site.yaml")
	os.WriteFile(cfgFile, []byte("state_dir: /nonexistent\nsite: home\nlisten: 0.0.0.0:7001\ninsecure_loopback: true\n"), 0o600)
	err := runServe(context.Background(), serveOptions{config: cfgFile, logLevel: "info", logFormat: "json"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "insecure_loopback") {
		t.Fatalf("got %v", err)
	}
}

// TestServeSaysWhatCheckFinds: serve refuses to start with another
// site's TLS key (no one could reach it pinned, and it would answer as
// that site), and an embassy without its guest's custody package starts,
// but says at once that it can never be unsealed.
func TestServeSaysWhatCheckFinds(t *testing.T) {
	dir := homeState(t)
	l := state.Layout{Dir: dir}
	write := func(yaml string) string {
		p := filepath.Join(t.TempDir(), "site.yaml")
		os.WriteFile(p, []byte(yaml), 0o600)
		return p
	}
	addr := freePort(t)
	wrong := write("state_dir: " + dir + "\nsite: home\nlisten: " + addr + "\ntls_key: " + l.Key("site-tls", "embassy-north") + "\nreplication:\n  disabled: true\n")
	// Bounded: a site that starts all the same stops when this ends.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	err := runServe(wctx, serveOptions{config: wrong, logLevel: "info", logFormat: "json"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not the TLS key the charter pins") || !strings.Contains(err.Error(), "serve --check") {
		t.Fatalf("a home with embassy-north's TLS key: %v", err)
	}

	addr = freePort(t)
	noCustody := write("site: embassy-north\nlisten: " + addr + "\ntls_key: " + l.Key("site-tls", "embassy-north") +
		"\ndata_dir: " + t.TempDir() + "\nguests:\n  - charter: " + l.Charter() + "\n    checkpoint_key: " + l.Key("site-checkpoint", "embassy-north") + "\n")
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{config: noCustody, logLevel: "info", logFormat: "json"}, &logs)
	}()
	hc, err := pinnedClient(l.Charter(), "embassy-north")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := hc.Get("https://" + addr + "/livez"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the embassy without custody did not start")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if w := lineWith(logs.String(), "configuration problem"); !strings.Contains(w, `"level":"WARN"`) || !strings.Contains(w, "guests[0].custody: missing") {
		t.Fatalf("no warning about the missing custody package:\n%s", logs.String())
	}
}
