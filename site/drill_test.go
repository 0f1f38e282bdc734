package site_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// drillCluster is a Demo Republic's home and embassy-north in this
// process, on loopback listeners; embassy-south is configured at an
// address nobody serves.
type drillCluster struct {
	dir                 string
	layout              state.Layout
	c                   *charter.Charter
	home, north         *site.Site
	homeURL, northURL   string
	northDir            string // embassy-north's data_dir
	homeCC, northCC     *siteapi.ContinuityClient
	registrar           *siteapi.Client // at home
	logs                *syncBuffer
	population, records int // loaded before the sites start
}

func drillListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startDrillCluster(t *testing.T) *drillCluster {
	t.Helper()
	ctx := context.Background()
	dc := &drillCluster{dir: newState(t), logs: &syncBuffer{}, population: 20, records: 280}
	dc.layout = state.Layout{Dir: dc.dir}
	var err error
	if dc.c, err = charter.ReadVerified(dc.layout.Charter()); err != nil {
		t.Fatal(err)
	}
	// Records before the home serves: population first, then enough
	// business records that the first entry bundle (256 entries) is full:
	// a full bundle is never rewritten, so the test can tamper with it.
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dc.dir, Site: "home", Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < dc.population; i++ {
		id := fmt.Sprintf("DR-DRILL-%03d", i)
		rec := json.RawMessage(fmt.Sprintf(`{"national_id":%q,"last_name":"Drill%d","first_name":"Ada"}`, id, i))
		if _, err := loc.Registries.Put(ctx, "population", id, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < dc.records-dc.population; i++ {
		id := fmt.Sprintf("BR-%04d", i)
		rec := json.RawMessage(fmt.Sprintf(`{"registration_no":%q,"name":"Drill Trading %d"}`, id, i))
		if _, err := loc.Registries.Put(ctx, "business", id, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := loc.Close(); err != nil {
		t.Fatal(err)
	}

	pair := startHomeAndNorth(t, dc.dir, dc.logs, pairOptions{})
	dc.home, dc.north, dc.homeURL, dc.northURL, dc.northDir = pair.home, pair.north, pair.homeURL, pair.northURL, pair.northDir
	guest := dc.c.Guest.ID
	dc.homeCC = &siteapi.ContinuityClient{BaseURL: dc.homeURL, Guest: guest}
	dc.northCC = &siteapi.ContinuityClient{BaseURL: dc.northURL, Guest: guest,
		Signer: &siteapi.Signer{Guest: "demo-republic", Site: "embassy-north", Official: "cio", Key: officialKey(t, dc.dir, "cio")}}
	dc.registrar = &siteapi.Client{BaseURL: dc.homeURL, Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: officialKey(t, dc.dir, "registrar")}}
	return dc
}

// until polls cond every 20ms for up to a minute.
func until(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caughtUp waits until embassy-north holds every entry the home published.
func (dc *drillCluster) caughtUp(t *testing.T) {
	t.Helper()
	_, cp := dc.home.Local().Log.Checkpoint()
	until(t, "embassy-north catches up", func() (bool, error) {
		st, err := dc.northCC.Status(context.Background())
		return err == nil && st.Size >= cp.Size, nil
	})
}

// orderDrill has the cio sign a drill order of embassy-north and submits it
// to the home, which writes; it returns the order's id.
func (dc *drillCluster) orderDrill(t *testing.T, registries ...string) string {
	t.Helper()
	o, err := continuity.NewOrder(dc.c, continuity.Order{Action: charter.ActionDrill, Site: "embassy-north", Epoch: 1, Registries: registries,
		NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "quarterly continuity drill"})
	if err != nil {
		t.Fatal(err)
	}
	so := &continuity.SignedOrder{Order: *o}
	if err := continuity.Sign(so, "cio", officialKey(t, dc.dir, "cio")); err != nil {
		t.Fatal(err)
	}
	raw, err := so.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.homeCC.Submit(context.Background(), raw); err != nil {
		t.Fatalf("drill order at home: %v", err)
	}
	until(t, "embassy-north enters the drill", func() (bool, error) {
		st, err := dc.northCC.Drill(context.Background())
		return err == nil && st.Running && st.Order == o.ID && st.Mode == siteapi.ModeDrill, nil
	})
	return o.ID
}

// unseal opens the drill's session and has three custodians reseal and
// submit their shares; the drill then runs.
func (dc *drillCluster) unseal(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	sess, err := dc.northCC.OpenDrillUnseal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := seal.ReadCustodyPackageFile(dc.layout.Custody())
	if err != nil {
		t.Fatal(err)
	}
	// What a custodian's tool does: the recipient only as the site's
	// signed statement, checked against the charter.
	_, rcpt, err := continuity.VerifyRecipient(dc.c, pkg, sess.RecipientStatement, time.Now())
	if err != nil {
		t.Fatalf("the drill session's recipient: %v", err)
	}
	if st := mustDrill(t, dc); string(st.RecipientStatement) != string(sess.RecipientStatement) {
		t.Fatal("the drill status shows another recipient statement than the session's")
	}
	custodians := []string{"cust-parliament", "cust-court", "cust-bank"}
	for i, cust := range custodians {
		id, err := keyfile.ReadAgeIdentity(dc.layout.Key("custodian", cust), keyfile.Protector{Passphrase: []byte(testPass)})
		if err != nil {
			t.Fatal(err)
		}
		sh, err := pkg.OpenShare(cust, id)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := sh.SealTo(rcpt)
		sh.Wipe()
		if err != nil {
			t.Fatal(err)
		}
		r, err := dc.northCC.SubmitDrillShare(ctx, sess.Session, sealed)
		if err != nil {
			t.Fatalf("share of %s: %v", cust, err)
		}
		if last := i == len(custodians)-1; r.Unsealed != last {
			t.Fatalf("share %d of %d: unsealed %v", r.Have, r.Need, r.Unsealed)
		}
	}
}

// report waits for the drill of order to be reported and recorded, and
// checks the entry in the home's ledger: a drill report that verifies
// under the charter, the one the site shows.
func (dc *drillCluster) report(t *testing.T, order string) *continuity.DrillReport {
	t.Helper()
	ctx := context.Background()
	var st *siteapi.DrillStatus
	until(t, "the drill report is recorded at home", func() (bool, error) {
		var err error
		st, err = dc.northCC.Drill(ctx)
		return err == nil && st.LastReport != nil && st.LastReport.Order == order && st.LastReportIndex != nil, nil
	})
	idx := *st.LastReportIndex
	hl := dc.home.Local().Log
	_, cp, err := hl.WaitPublished(ctx, idx+1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ledger.ReadEntry(ctx, ledger.DirFetcher(hl.Dir()), idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != ledger.TypeDrillReport {
		t.Fatalf("home entry %d is a %s entry, not a drill report", idx, e.Type)
	}
	rep, err := continuity.VerifyDrillReport(dc.c, e.Payload)
	if err != nil {
		t.Fatalf("the drill report in the home's ledger: %v", err)
	}
	if rep.Order != order || rep.Site != "embassy-north" || rep.Guest != dc.c.Guest.ID {
		t.Fatalf("report of order %s at %s for %s", rep.Order, rep.Site, rep.Guest)
	}
	if got, _ := json.Marshal(rep); string(got) != mustJSON(t, st.LastReport) {
		t.Fatalf("the ledger holds another report than the site shows:\n%s\n%s", got, mustJSON(t, st.LastReport))
	}
	// Back in standby with no keys.
	cs, err := dc.northCC.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Mode != siteapi.ModeStandby || cs.Unsealed || st.Running || st.Unsealed || st.Session != "" {
		t.Fatalf("after the drill embassy-north is %s (unsealed %v), drill running %v, sandbox keys %v, session %q",
			cs.Mode, cs.Unsealed, st.Running, st.Unsealed, st.Session)
	}
	return rep
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDrill runs two drills of embassy-north under orders the home
// appends. The first, over every registry, checks a sample of 100 and
// finds nothing wrong while the home goes on writing; the second, over
// the population registry, after one of its sealed entries was altered
// on embassy-north's disk, names that entry.
func TestDrill(t *testing.T) {
	ctx := context.Background()
	dc := startDrillCluster(t)
	dc.caughtUp(t)

	order := dc.orderDrill(t)
	// The home is not fenced: it writes during the drill, and the site
	// in drill keeps receiving (population is a quorum registry: the write
	// is acknowledged only once embassy-north holds it).
	live := json.RawMessage(`{"national_id":"DR-DRILL-LIVE","last_name":"During","first_name":"Drill"}`)
	if _, err := dc.registrar.Put(ctx, "population", "DR-DRILL-LIVE", live); err != nil {
		t.Fatalf("the home refused a write during the drill: %v", err)
	}
	if hs, err := dc.homeCC.Status(ctx); err != nil || hs.Mode != siteapi.ModeActive || hs.Writer != "home" {
		t.Fatalf("home during the drill: %+v, %v", hs, err)
	}
	dc.unseal(t)
	rep := dc.report(t, order)
	t.Logf("first drill: %s", mustJSON(t, rep))
	if rep.Error != "" || len(rep.Failures) != 0 {
		t.Fatalf("drill failed: %q, failures %+v", rep.Error, rep.Failures)
	}
	if rep.Records < uint64(dc.records) || rep.SampleSize != guest.DrillSampleSize || rep.Verified != rep.SampleSize {
		t.Fatalf("%d records in scope, sample %d, verified %d", rep.Records, rep.SampleSize, rep.Verified)
	}
	// Keyless: the threshold was proven, nothing was read, and the
	// drilled site never held the root key.
	if rep.Check != continuity.DrillCheckKeyless || rep.Unsealed == nil || rep.FirstRead != nil || rep.RTOSeconds != 0 {
		t.Fatalf("check %q, threshold at %v, first read %v, RTO %v", rep.Check, rep.Unsealed, rep.FirstRead, rep.RTOSeconds)
	}
	if n := dc.north.RootsRebuilt(); n != 0 {
		t.Fatalf("embassy-north held the root key %d times during a drill", n)
	}
	if rep.RPOBasis != continuity.RPOBasisWriter || rep.WriterSize == 0 || rep.MirrorSize <= rep.OrderIndex {
		t.Fatalf("RPO measured %q against writer size %d, mirror %d, order at %d", rep.RPOBasis, rep.WriterSize, rep.MirrorSize, rep.OrderIndex)
	}
	if !strings.Contains(strings.Join(rep.Registries, ","), "population") || strings.Contains(strings.Join(rep.Registries, ","), "legal-acts") {
		t.Fatalf("registries drilled at embassy-north: %v", rep.Registries)
	}
	if _, err := dc.registrar.Put(ctx, "population", "DR-DRILL-AFTER", json.RawMessage(`{"national_id":"DR-DRILL-AFTER","last_name":"After","first_name":"Drill"}`)); err != nil {
		t.Fatalf("the home refused a write after the drill: %v", err)
	}

	// A report is recorded once per order: the same report again is
	// answered with its entry, another one refused.
	hl := dc.home.Local().Log
	idx := *mustDrill(t, dc).LastReportIndex
	_, cp := hl.Checkpoint()
	raw, err := ledger.ReadEntry(ctx, ledger.DirFetcher(hl.Dir()), idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := ledger.DecodeEntry(raw)
	if rc, err := dc.homeCC.RecordDrillReport(ctx, e.Payload); err != nil || rc.Index != idx || !rc.Duplicate {
		t.Fatalf("the same report again: %+v, %v", rc, err)
	}
	nk, err := keyfile.ReadEd25519(dc.layout.Key("site-checkpoint", "embassy-north"), keyfile.Protector{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	forged := *rep
	forged.Verified, forged.Failures = 0, nil
	other, err := continuity.SignDrillReport(&forged, nk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.homeCC.RecordDrillReport(ctx, other); err == nil || !strings.Contains(err.Error(), "another report") {
		t.Fatalf("a second report of one order: %v", err)
	}
	sk, err := keyfile.ReadEd25519(dc.layout.Key("site-checkpoint", "embassy-south"), keyfile.Protector{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	forged.Order = "00000000000000000000000000000000"
	if bad, _ := continuity.SignDrillReport(&forged, sk); bad != nil {
		if _, err := dc.homeCC.RecordDrillReport(ctx, bad); err == nil || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("a report signed by another site's key: %v", err)
		}
	}

	// Alter one sealed population entry in embassy-north's mirror, in the
	// first entry bundle (full, so never rewritten), and drill again.
	dc.caughtUp(t)
	mirror := filepath.Join(guest.GuestDir(dc.northDir, dc.c.Guest.ID), "ledger")
	target := nthRecordEntry(t, mirror, "population", 7)
	tamperEntry(t, mirror, target)
	order = dc.orderDrill(t, "population")
	dc.unseal(t)
	rep = dc.report(t, order)
	t.Logf("drill after tampering with entry %d: %s", target, mustJSON(t, rep))
	wantSample := dc.population + 2 // and the two written during and after the first drill
	if rep.Error != "" || rep.SampleSize != wantSample || rep.Verified != wantSample-1 || len(rep.Failures) != 1 {
		t.Fatalf("tampered drill: error %q, sample %d (want %d), verified %d, failures %+v", rep.Error, rep.SampleSize, wantSample, rep.Verified, rep.Failures)
	}
	if f := rep.Failures[0]; f.Index != target || !strings.Contains(f.Reason, "signed tree") {
		t.Fatalf("failure %+v, want entry %d not in the signed tree", f, target)
	}
	if strings.Join(rep.Registries, ",") != "population" {
		t.Fatalf("registries drilled: %v", rep.Registries)
	}
	if n := dc.north.RootsRebuilt(); n != 0 {
		t.Fatalf("embassy-north held the root key %d times over two drills", n)
	}
}

func mustDrill(t *testing.T, dc *drillCluster) *siteapi.DrillStatus {
	t.Helper()
	st, err := dc.northCC.Drill(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// nthRecordEntry returns the index of the n-th record entry of registry
// reg in the ledger in dir.
func nthRecordEntry(t *testing.T, dir, reg string, n int) uint64 {
	t.Helper()
	var found []uint64
	err := ledger.Scan(context.Background(), ledger.DirFetcher(dir), 0, ledger.TileWidth, func(idx uint64, raw []byte) error {
		e, err := ledger.DecodeEntry(raw)
		if err != nil || e.Type != ledger.TypeRecord {
			return err
		}
		re, err := registry.UnmarshalRecordEntry(e.Payload)
		if err == nil && re.Registry == reg {
			found = append(found, idx)
		}
		return err
	})
	if err != nil || len(found) <= n {
		t.Fatalf("record entries of %s in the first bundle: %v, %v", reg, found, err)
	}
	return found[n]
}

// tamperEntry flips the last byte (of the sealed body's tag) of entry idx
// in the full entry bundle that holds it.
func tamperEntry(t *testing.T, dir string, idx uint64) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(ledger.EntriesPath(idx/ledger.TileWidth, 0)))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := uint64(0); i < idx%ledger.TileWidth; i++ {
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	n := int(binary.BigEndian.Uint16(b[off:]))
	b[off+2+n-1] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
