package procedure

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// testOfficials are the charter's officials and their roles; the notary
// is also a registrar, as in the Demo Republic.
var testOfficials = []struct {
	id    string
	roles []string
}{
	{"registrar", []string{"registrar"}},
	{"notary", []string{"notary", "registrar"}},
	{"min-interior", []string{"minister"}},
	{"min-justice", []string{"minister"}},
	{"cio", []string{"cio"}},
}

// testCharter is a charter with real officials' Ed25519 keys, the
// registries the demo procedures write, and the demo procedures in
// services.procedures.
func testCharter(t testing.TB) (*charter.Charter, map[string]ed25519.PrivateKey) {
	t.Helper()
	c := &charter.Charter{
		Format:  charter.Format,
		Version: 1,
		Guest:   charter.Guest{ID: "demo-republic", Name: "Demo Republic", Origin: "ledger.procedure.test"},
		Registries: []charter.Registry{
			{Name: "population", Sites: []string{"home"}, Index: []string{"national_id", "last_name"}, Sync: charter.SyncAsync},
			{Name: "land", Sites: []string{"home"}, Index: []string{"parcel_id", "owner_id"}, Sync: charter.SyncAsync},
			{Name: "business", Sites: []string{"home"}, Index: []string{"registration_no"}, Sync: charter.SyncAsync},
		},
	}
	c.Registries = append(c.Registries, DemoRegistries([]string{"home"})...)
	keys := map[string]ed25519.PrivateKey{}
	for _, o := range testOfficials {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[o.id] = priv
		c.Officials = append(c.Officials, charter.Official{ID: o.id, Name: o.id, Roles: o.roles, Key: base64.StdEncoding.EncodeToString(pub)})
	}
	var sec any
	if err := yaml.Unmarshal(DemoYAML(), &sec); err != nil {
		t.Fatal(err)
	}
	if err := c.SetService(ServiceName, sec); err != nil {
		t.Fatal(err)
	}
	return c, keys
}

type fixture struct {
	dir  string
	c    *charter.Charter
	keys map[string]ed25519.PrivateKey
	root *seal.RootKey
	log  *ledger.Log
	reg  *registry.Registries
	eng  *Engine
	now  time.Time

	interval time.Duration
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureInterval(t, time.Millisecond)
}

// newFixtureInterval publishes checkpoints at most every interval (0: the
// ledger's default, what a site runs with; the tests use 1 ms so that
// reads are proven at once).
func newFixtureInterval(t testing.TB, interval time.Duration) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir(), now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), interval: interval}
	fx.c, fx.keys = testCharter(t)
	var err error
	if fx.root, err = seal.NewRootKey(); err != nil {
		t.Fatal(err)
	}
	fx.open(t)
	t.Cleanup(func() { fx.close(t) })
	return fx
}

func (fx *fixture) open(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _, err := ledger.NewLogSigner(fx.c.Guest.Origin, priv)
	if err != nil {
		t.Fatal(err)
	}
	if fx.log, err = ledger.Open(ctx, filepath.Join(fx.dir, "ledger"), ledger.Options{Origin: fx.c.Guest.Origin, Signer: signer, CheckpointInterval: fx.interval}); err != nil {
		t.Fatal(err)
	}
	be, err := storefs.New(filepath.Join(fx.dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if fx.reg, err = registry.Open(ctx, registry.Options{Charter: fx.c, Site: "home", Log: fx.log, Keys: seal.NewKeyring(fx.c.Guest.ID, fx.root), Blobs: be}); err != nil {
		t.Fatal(err)
	}
	if fx.eng, err = New(Options{Charter: fx.c, Registries: fx.reg, Log: fx.log, Now: func() time.Time { return fx.now }}); err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) close(t testing.TB) {
	t.Helper()
	if fx.reg != nil {
		if err := fx.reg.Close(); err != nil {
			t.Error(err)
		}
		fx.reg = nil
	}
	if fx.log != nil {
		fx.log.Close()
		fx.log = nil
	}
}

// reopen closes and reopens the ledger and registries: what a case wrote
// must come back from disk alone.
func (fx *fixture) reopen(t testing.TB) {
	t.Helper()
	fx.close(t)
	fx.open(t)
}

// sign is official's submission on step of c, signed with key (normally
// the official's own).
func (fx *fixture) sign(t testing.TB, c *Case, step, official string, key ed25519.PrivateKey) *Submission {
	t.Helper()
	claim := StepClaim{Guest: fx.c.Guest.ID, Case: c.ID, Procedure: c.Procedure, Step: step, Subject: c.Subject, Official: official}
	sig, err := SignStep(claim, key)
	if err != nil {
		t.Fatal(err)
	}
	return &Submission{Case: c.ID, Step: step, Official: official, Sig: sig}
}

func (fx *fixture) put(t testing.TB, registryName, id string, v any) *registry.Record {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := fx.reg.Put(context.Background(), registryName, id, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (fx *fixture) get(t testing.TB, registryName, id string) map[string]any {
	t.Helper()
	rec, err := fx.reg.Get(context.Background(), registryName, id, registry.AsOf{})
	if err != nil {
		t.Fatalf("%s %s: %v", registryName, id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func person(id, first, last string) map[string]any {
	return map[string]any{"national_id": id, "first_name": first, "last_name": last}
}

func pensioner(i int, program, amount string) map[string]any {
	return map[string]any{
		"program":        program,
		"name":           fmt.Sprintf("Pensioner %04d", i),
		"iban":           MakeIBAN("DR", fmt.Sprintf("BANK%014d", i)),
		"monthly_amount": amount,
	}
}
