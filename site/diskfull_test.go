package site_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

func health(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b json.RawMessage
	json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, string(b)
}

// TestDiskFull: a home whose disk fills answers writes with 507 naming
// the path, says it is not ready on /healthz, acknowledges nothing it
// cannot publish, and takes writes again by itself once space returns,
// without a restart; every acknowledged write is there, before and after
// a restart.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := newState(t)
	mnt := filepath.Join(dir, "sites")
	testnet.MountTmpfs(t, mnt, 8<<20)
	logs := &syncBuffer{}
	open := func() (*site.Site, *httptest.Server) {
		s, err := site.Open(ctx, &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true}},
			site.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)),
				Local: guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond, SegmentSize: 256 << 10}}})
		if err != nil {
			t.Fatalf("open: %v\n%s", err, logs)
		}
		return s, httptest.NewServer(s.Handler())
	}
	s, srv := open()
	// Before the unmount (cleanups run last first), whatever failed.
	t.Cleanup(func() {
		srv.Close()
		s.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	c := &siteapi.Client{BaseURL: srv.URL, HTTP: srv.Client(), Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: officialKey(t, dir, "registrar")}}

	// Ballast leaves about 1 MiB free.
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if free := int64(st.Bavail) * int64(st.Bsize); free > 1<<20 {
		if err := os.WriteFile(ballast, make([]byte, free-(1<<20)), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	filler := strings.Repeat("x", 3000)
	var acked []string
	var full *siteapi.APIError
	for i := 0; full == nil; i++ {
		if i == 5000 {
			t.Fatal("5000 writes of 3 KB into 1 MiB all acknowledged")
		}
		id := fmt.Sprintf("DR-FULL-%d", i)
		_, err := c.Put(ctx, "population", id, person(id, "Full", filler))
		if err == nil {
			acked = append(acked, id)
			continue
		}
		var ae *siteapi.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("write %d: %v", i, err)
		}
		full = ae
	}
	if full.Status != http.StatusInsufficientStorage || !strings.Contains(full.ErrorBody.Error, mnt) || !strings.Contains(full.ErrorBody.Error, "no space") {
		t.Fatalf("write on a full disk: %d %q, want 507 naming a path under %s", full.Status, full.ErrorBody.Error, mnt)
	}
	t.Logf("%d writes acknowledged, then %d %q", len(acked), full.Status, full.ErrorBody.Error)
	code, body := health(t, srv.URL)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") || !strings.Contains(body, "no space") {
		t.Fatalf("healthz on a full disk: %d %s", code, body)
	}
	// While full, nothing more is acknowledged.
	for i := range 20 {
		id := fmt.Sprintf("DR-FULL-MORE-%d", i)
		if _, err := c.Put(ctx, "population", id, person(id, "Full", filler)); err == nil {
			acked = append(acked, id)
		}
	}

	// Space returns: the site recovers by itself.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := health(t, srv.URL); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			code, body := health(t, srv.URL)
			t.Fatalf("healthz 15s after space returned: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 5 {
		id := fmt.Sprintf("DR-AFTER-%d", i)
		if _, err := c.Put(ctx, "population", id, person(id, "After", "x")); err != nil {
			t.Fatalf("write after space returned, without a restart: %v", err)
		}
		acked = append(acked, id)
	}
	check := func(when string) {
		for _, id := range acked {
			if _, err := c.Get(ctx, "population", id, registry.AsOf{}); err != nil {
				t.Fatalf("%s: acknowledged record %s: %v", when, id, err)
			}
		}
	}
	check("after recovery")

	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, srv = open()
	c.BaseURL, c.HTTP = srv.URL, srv.Client()
	check("after a restart")
}
