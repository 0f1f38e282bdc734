package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
)

// appendDrillEntries appends entries to the home's ledger of the fixture,
// as the home would, and waits until they are published.
func appendDrillEntries(t *testing.T, f orderFixture, es ...ledger.Entry) {
	t.Helper()
	ctx := context.Background()
	c, err := charter.ReadVerified(f.layout.Charter())
	if err != nil {
		t.Fatal(err)
	}
	l, err := state.OpenLedger(ctx, f.layout, c, "home", keyfile.Protector{Passphrase: []byte("order test passphrase")},
		ledger.Options{CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.WaitPublished(ctx, l.Size()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func (f orderFixture) siteKey(t *testing.T, id string) []byte {
	t.Helper()
	k, err := keyfile.ReadEd25519(f.layout.Key("site-checkpoint", id), keyfile.Protector{Passphrase: []byte("order test passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDrillReport renders the drill reports of a ledger: a good one (with
// one failure, listed under the table), then a forged one, which makes the
// command fail and is marked BAD; without a charter nothing is checked and
// the output says so.
func TestDrillReport(t *testing.T) {
	f := newOrderFixture(t)
	c, err := charter.ReadVerified(f.layout.Charter())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	o, err := continuity.NewOrder(c, continuity.Order{Action: charter.ActionDrill, Site: "embassy-north", Epoch: 1,
		NotBefore: t0.Add(-time.Minute), Expires: t0.Add(time.Hour), Reason: "drill"})
	if err != nil {
		t.Fatal(err)
	}
	so := &continuity.SignedOrder{Order: *o}
	key, err := keyfile.ReadEd25519(f.layout.Key("official", "cio"), keyfile.Protector{Passphrase: []byte("order test passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	if err := continuity.Sign(so, "cio", key); err != nil {
		t.Fatal(err)
	}
	orderRaw, err := so.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	unsealed, read := t0.Add(2*time.Second), t0.Add(2250*time.Millisecond)
	rep := &continuity.DrillReport{Guest: c.Guest.ID, Site: "embassy-north", Order: o.ID, OrderIndex: 0, Epoch: 1, Registries: []string{"population"},
		Started: t0, Unsealed: &unsealed, FirstRead: &read, Finished: t0.Add(3 * time.Second), RTOSeconds: 0.25,
		RPOEntries: 3, RPOSeconds: 1.5, RPOBasis: continuity.RPOBasisWriter, MirrorSize: 10, WriterSize: 13, LedgerSize: 10, Records: 8,
		SampleSize: 8, Verified: 7, Failures: []continuity.DrillFailure{{Index: 17, Registry: "population", Reason: "the unsealed record does not match the entry's commitment"}}}
	good, err := continuity.SignDrillReport(rep, f.siteKey(t, "embassy-north"))
	if err != nil {
		t.Fatal(err)
	}
	appendDrillEntries(t, f,
		ledger.Entry{Type: ledger.TypeOrder, Epoch: 1, Time: t0, Payload: orderRaw},
		ledger.Entry{Type: ledger.TypeDrillReport, Epoch: 1, Time: t0.Add(4 * time.Second), Payload: good})

	dir := f.layout.Ledger("home")
	var out bytes.Buffer
	if err := runDrillReport(context.Background(), &out, drillReportOptions{Ledger: dir}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"checkpoint signed by site home", "1 drill report(s)", "SITE", "RTO", "RPO",
		"embassy-north", o.ID[:12], "0.250s", "3 entries, 1.500s", "FAILED entry 17 (population): the unsealed record does not match"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	row := lineWith(out.String(), "embassy-north  ")
	if f := strings.Fields(row); len(f) < 4 || f[len(f)-1] != "ok" || f[len(f)-2] != "1" || f[len(f)-3] != "7" || f[len(f)-4] != "8" {
		t.Errorf("row %q: want sample 8, verified 7, failed 1, ok", row)
	}

	// A report signed by another site's key, claiming embassy-north.
	forged := *rep
	forged.Failures = nil
	bad, err := continuity.SignDrillReport(&forged, f.siteKey(t, "embassy-south"))
	if err != nil {
		t.Fatal(err)
	}
	appendDrillEntries(t, f, ledger.Entry{Type: ledger.TypeDrillReport, Epoch: 1, Time: t0.Add(5 * time.Second), Payload: bad})
	out.Reset()
	err = runDrillReport(context.Background(), &out, drillReportOptions{Ledger: dir, Charters: []string{f.layout.Charter()}})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 drill reports do not check out") {
		t.Fatalf("forged report: %v\n%s", err, out.String())
	}
	t.Logf("chancery drill report:\n%s", out.String())
	if !strings.Contains(out.String(), "BAD: drill report of order "+o.ID+": the signature is not site embassy-north's") {
		t.Errorf("forged report not marked:\n%s", out.String())
	}

	out.Reset()
	err = runDrillReport(context.Background(), &out, drillReportOptions{Ledger: dir, JSON: true})
	var rows []audit.DrillRow
	if jerr := json.Unmarshal(out.Bytes(), &rows); jerr != nil || err == nil || len(rows) != 2 || rows[0].Check != "ok" ||
		rows[0].Report.Verified != 7 || !strings.HasPrefix(rows[1].Check, "BAD") || rows[1].Index != found.FoundingEntries+2 {
		t.Fatalf("--json: %v, %v: %s", err, jerr, out.String())
	}

	// No charter beside a copy of the ledger: shown, but not checked.
	bare := filepath.Join(t.TempDir(), "ledger")
	if err := statetest.CopyDir(dir, bare); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runDrillReport(context.Background(), &out, drillReportOptions{Ledger: bare}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "signatures NOT CHECKED") || strings.Count(out.String(), "unchecked") != 2 {
		t.Errorf("without a charter:\n%s", out.String())
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
