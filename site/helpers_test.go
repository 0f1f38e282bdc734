package site_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

const testPass = "site test passphrase"

// founded is a Demo Republic founded once per test binary and copied into
// each test's directory (found.Init seals the home's root key in
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
	ts.start(t)
	return ts
}

// openHome opens a home site on the state directory dir.
func openHome(dir string, logs *syncBuffer) (*site.Site, error) {
	cfg := &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true},
		Limits: site.Limits{MaxRequestBytes: 256 << 10, MaxBlobBytes: 8 << 20}}
	return site.Open(context.Background(), cfg, site.Options{
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Local:  guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}},
	})
}

// stop closes ts's server and site.
func (ts *testSite) stop(t *testing.T) {
	t.Helper()
	ts.srv.Close()
	if err := ts.site.Close(); err != nil {
		t.Fatal(err)
	}
}

// start opens a new site on ts's state directory and serves it: with
// stop, a restart.
func (ts *testSite) start(t *testing.T) {
	t.Helper()
	s, err := openHome(ts.dir, ts.logs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	ts.site, ts.srv = s, srv
	t.Cleanup(func() {
		srv.Close()
		// A site stopped by the test is closed again here: harmless.
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

func officialKey(t testing.TB, dir, id string) ed25519.PrivateKey {
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
