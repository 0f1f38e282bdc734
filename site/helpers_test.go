package site_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

const testPass = "site test passphrase"

// founded is a Demo Republic founded once per test binary and copied into
// each test's directory (state.Init seals the home's root key in
// D/keys/root.key).
var founded = statetest.New(testPass)

// newState returns a fresh copy of a founded Demo Republic.
func newState(t *testing.T) string { return founded.Copy(t) }

type syncBuffer = statetest.SyncBuffer

// testSite is a home site on a real ledger and fs blob store, served by
// an httptest server on loopback.
type testSite struct {
	dir  string
	site *site.Site
	srv  *httptest.Server
	logs *syncBuffer
	now  func() time.Time
}

func startSite(t *testing.T) *testSite {
	t.Helper()
	ts := &testSite{dir: newState(t), logs: &syncBuffer{}, now: time.Now}
	cfg := &site.Config{StateDir: ts.dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true},
		Limits: site.Limits{MaxRequestBytes: 256 << 10, MaxBlobBytes: 8 << 20}}
	s, err := site.Open(context.Background(), cfg, site.Options{
		Logger: slog.New(slog.NewJSONHandler(ts.logs, nil)),
		Local:  site.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.site = s
	ts.srv = httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.srv.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return ts
}

func officialKey(t *testing.T, dir, id string) ed25519.PrivateKey {
	return statetest.OfficialKey(t, dir, id, []byte(testPass))
}

// client returns an API client signing as official.
func (ts *testSite) client(t *testing.T, official string) *siteapi.Client {
	return &siteapi.Client{BaseURL: ts.srv.URL, HTTP: ts.srv.Client(),
		Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: official, Key: officialKey(t, ts.dir, official)}}
}

func TestMain(m *testing.M) {
	code := m.Run()
	founded.Remove()
	os.Exit(code)
}

func copyDir(src, dst string) error { return statetest.CopyDir(src, dst) }
