package postgres

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/pgtest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
)

// testCharter declares the registries the tests map tables to, and the
// connector's state registry.
func testCharter() *charter.Charter {
	return &charter.Charter{
		Guest: charter.Guest{ID: "demo-republic", Origin: "ledger.test.example"},
		Registries: []charter.Registry{
			{Name: "people", Sites: []string{"home"}, Sync: charter.SyncAsync},
			{Name: "parcels", Sites: []string{"home"}, Sync: charter.SyncAsync},
			{Name: "connector-state", Sites: []string{"home"}, Index: []string{"slot"}, Sync: charter.SyncAsync},
		},
	}
}

// site is a ledger and registries in a directory, reopenable by another
// process: the root key and the log key are files in the directory.
type site struct {
	dir  string
	c    *charter.Charter
	log  *ledger.Log
	keys *seal.Keyring
	reg  *registry.Registries
}

// newSiteDir writes the keys of a new site into dir.
func newSiteDir(t testing.TB, dir string) {
	t.Helper()
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "age.id"), []byte(id.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteRootKeyFileTo(filepath.Join(dir, "root.key"), root, id.Recipient()); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "pgtest log signer seed 32 bytes!")
	if err := os.WriteFile(filepath.Join(dir, "log.seed"), []byte(hex.EncodeToString(seed)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// openSite opens the site in dir (newSiteDir made it).
func openSite(t testing.TB, dir string) *site {
	t.Helper()
	ctx := context.Background()
	s := &site{dir: dir, c: testCharter()}
	idb, err := os.ReadFile(filepath.Join(dir, "age.id"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.ParseX25519Identity(string(idb))
	if err != nil {
		t.Fatal(err)
	}
	root, err := seal.ReadRootKeyFileWith(filepath.Join(dir, "root.key"), id)
	if err != nil {
		t.Fatal(err)
	}
	seedHex, err := os.ReadFile(filepath.Join(dir, "log.seed"))
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := hex.DecodeString(string(seedHex))
	signer, _, err := ledger.NewLogSigner(s.c.Guest.Origin, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	if s.log, err = ledger.Open(ctx, filepath.Join(dir, "ledger"), ledger.Options{Origin: s.c.Guest.Origin, Signer: signer, CheckpointInterval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	s.keys = seal.NewKeyring(s.c.Guest.ID, root)
	if s.reg, err = registry.Open(ctx, registry.Options{Charter: s.c, Site: "home", Log: s.log, Keys: s.keys}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *site) close() {
	if s.reg != nil {
		s.reg.Close()
		s.reg = nil
	}
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

func newSite(t testing.TB) *site {
	t.Helper()
	dir := t.TempDir()
	newSiteDir(t, dir)
	s := openSite(t, dir)
	t.Cleanup(s.close)
	return s
}

// testConfig maps public.people and public.parcels.
func testConfig() Config {
	return Config{
		Slot: "chancery_test", Publication: "chancery_pub", StateRegistry: "connector-state",
		Tables: []Table{{Table: "public.people", Registry: "people"}, {Table: "public.parcels", Registry: "parcels"}},
	}
}

const testSchema = `
CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, born date, balance numeric(12,2),
  seen timestamptz, photo bytea, tags text[], extra jsonb, score double precision, active boolean, bio text);
CREATE TABLE parcels (region text, no int, area numeric, PRIMARY KEY (region, no));
CREATE PUBLICATION chancery_pub FOR TABLE people, parcels;
`

func (s *site) connector(t testing.TB, cs string, cfg Config) *Connector {
	t.Helper()
	c, err := New(Options{Config: cfg, ConnString: cs, Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID,
		Logf: t.Logf, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startPG starts a cluster with the test schema in database src.
func startPG(t testing.TB) (*pgtest.Cluster, string) {
	t.Helper()
	pg := startPGWith(t, testSchema)
	return pg, pg.ConnString("src")
}

// startPGWith starts a cluster with a schema in database src.
func startPGWith(t testing.TB, schema string) *pgtest.Cluster {
	t.Helper()
	pg := pgtest.Start(t)
	pg.CreateDB("src")
	pg.Psql("src", schema)
	return pg
}
