package site_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

func get(t *testing.T, ts *testSite, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := ts.srv.Client().Get(ts.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestLedgerServesExactlyTheFiles(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	c := ts.client(t, "registrar")
	// Enough entries for a full tile and a partial one.
	for i := range 300 {
		id := fmt.Sprintf("DR-%04d", i)
		if _, err := c.Put(ctx, "population", id, person(id, "Berg", "")); err != nil {
			t.Fatal(err)
		}
	}
	l := ts.site.Local().Log
	if _, _, err := l.WaitPublished(ctx, l.Size()); err != nil {
		t.Fatal(err)
	}
	dir := l.Dir()

	resp, b := get(t, ts, "/ledger/checkpoint")
	want, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		t.Fatalf("checkpoint: %d, %q, want %q", resp.StatusCode, b, want)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=5" {
		t.Errorf("checkpoint Cache-Control %q", cc)
	}

	served := 0
	err := filepath.WalkDir(filepath.Join(dir, "tile"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		resp, b := get(t, ts, "/ledger/"+filepath.ToSlash(rel))
		want, _ := os.ReadFile(p)
		if resp.StatusCode != 200 || !bytes.Equal(b, want) {
			t.Errorf("%s: status %d, %d bytes, want %d", rel, resp.StatusCode, len(b), len(want))
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q", rel, cc)
		}
		served++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if served < 4 {
		t.Fatalf("only %d tile files served", served)
	}

	// A standard tiles client (the ledger's own verifier over HTTP)
	// reads and verifies the served ledger with the charter's key.
	ch, err := charter.ReadFile(state.Layout{Dir: ts.dir}.Charter())
	if err != nil {
		t.Fatal(err)
	}
	vs, err := ch.CheckpointVerifiers()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(ctx, ledger.HTTPFetcher{Base: ts.srv.URL + "/ledger", Client: ts.srv.Client()}, ledger.VerifyOptions{Origin: ch.Guest.Origin, Verifiers: vs})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != l.Size() || !rep.SignatureChecked {
		t.Fatalf("verified %d entries (signature checked: %v), ledger has %d", rep.Entries, rep.SignatureChecked, l.Size())
	}

	// Only checkpoint and tile paths: never the write-ahead log, never a
	// way out of the ledger directory.
	walFiles, _ := filepath.Glob(filepath.Join(dir, "wal", "*"))
	if len(walFiles) == 0 {
		t.Fatal("no wal files to try")
	}
	wal := filepath.Base(walFiles[0])
	// Redirects are not followed: the mux answers a path with ".." by
	// redirecting to its clean form, which is then judged on its own.
	noRedirect := *ts.srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, p := range []string{
		"/ledger/wal/" + wal,
		"/ledger/tile/../wal/" + wal,
		"/ledger/tile/0/..%2f..%2fwal%2f" + wal,
		"/ledger/tile/%2e%2e/wal/" + wal,
		"/ledger/tile/0/000/../../../checkpoint",
		"/ledger/tile/0/0",
		"/ledger/tile/0/000.p/0",
		"/ledger/tile/entries/000.p/300",
		"/ledger/../charter.yaml",
		"/ledger/",
		"/ledger/tile/",
	} {
		resp, err := noRedirect.Get(ts.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("%s: served", p)
		}
		if loc := resp.Header.Get("Location"); loc != "" && strings.Contains(loc, "wal") {
			if r2, _ := get(t, ts, loc); r2.StatusCode == 200 {
				t.Errorf("%s: redirected to %s, which is served", p, loc)
			}
		}
	}
}

func TestHealthAndShutdown(t *testing.T) {
	dir := newState(t)
	cfg := &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true}}
	s, err := site.Open(context.Background(), cfg, site.Options{Local: guest.LocalOptions{Passphrase: []byte(testPass)}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Status string `json:"status"`
		Role   string `json:"role"`
		Guests []struct {
			Guest string       `json:"guest"`
			Mode  siteapi.Mode `json:"mode"`
		} `json:"guests"`
	}
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h.Status != "ok" || h.Role != "home" || len(h.Guests) != 1 || h.Guests[0].Mode != siteapi.ModeActive {
		t.Fatalf("healthz: %d %+v", resp.StatusCode, h)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed cleanly: the state opens again.
	s2, err := site.Open(context.Background(), cfg, site.Options{Local: guest.LocalOptions{Passphrase: []byte(testPass)}})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestConfig(t *testing.T) {
	good := "state_dir: ./state\nsite: home\nlisten: 127.0.0.1:7001\ninsecure_loopback: true\n"
	cases := []struct {
		name, yaml, field string
	}{
		{"unknown field", good + "listne: x\n", ""},
		{"plain HTTP off loopback", "state_dir: s\nsite: home\nlisten: 0.0.0.0:7001\ninsecure_loopback: true\n", "insecure_loopback"},
		{"no TLS", "state_dir: s\nsite: home\nlisten: 10.0.0.1:7001\n", "tls"},
		{"TLS without key", "state_dir: s\nsite: home\nlisten: 10.0.0.1:7001\ntls: {cert: a.pem}\n", "tls"},
		{"no site", "state_dir: s\nlisten: 127.0.0.1:1\ninsecure_loopback: true\n", "site"},
		{"bad backend", good + "blobs: {backend: ftp}\n", "blobs.backend"},
		{"s3 without bucket", good + "blobs: {backend: s3, s3: {endpoint: 'h:9000', access_key_file: a, secret_key_file: b}}\n", "blobs.s3.bucket"},
		{"s3 endpoint with scheme", good + "blobs: {backend: s3, s3: {endpoint: 'https://h', bucket: b, access_key_file: a, secret_key_file: b}}\n", "blobs.s3.endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := site.ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.field != "" && !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "site.yaml")
	os.WriteFile(p, []byte(good+"blobs: {backend: fs}\ntls: null\n"), 0o600)
	c, err := site.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != filepath.Join(dir, "state") || c.BlobDir() != filepath.Join(dir, "state", "sites", "home", "blobs") {
		t.Fatalf("paths not resolved against the config's directory: %+v", c)
	}
}
