package continuity_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/continuity"
)

// The formats moved here from the site daemon keep their wire bytes: the
// files under testdata/ were written by the daemon's own encoders before
// the move, and these tests encode the same values and compare.

func goldenReport() *continuity.DrillReport {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	u := t0.Add(2 * time.Second)
	return &continuity.DrillReport{Guest: "demo-republic", Site: "embassy-north", Order: "0123456789abcdef0123456789abcdef", OrderIndex: 7, Epoch: 1,
		Started: t0, Unsealed: &u, Finished: t0.Add(5 * time.Second), RTOSeconds: 1.5, RPOEntries: 3, RPOSeconds: 0.25, RPOBasis: continuity.RPOBasisWriter,
		MirrorSize: 10, WriterSize: 13, LedgerSize: 10, Records: 8, SampleSize: 2, Verified: 1,
		Failures: []continuity.DrillFailure{{Index: 4, Registry: "population", Reason: "<not> & in the signed tree"}}}
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDrillReportGolden: the signed report's bytes, signature included,
// are those the daemon wrote, and parsing gives back the normalized
// report (UTC, milliseconds, [] not null).
func TestDrillReportGolden(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	r := goldenReport()
	got, err := continuity.SignDrillReport(r, key)
	if err != nil {
		t.Fatal(err)
	}
	want := golden(t, "drill-report.json")
	if !bytes.Equal(got, want) {
		t.Fatalf("signed drill report\n%s\nwant\n%s", got, want)
	}
	p, canon, sig, err := continuity.ParseDrillReport(want)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), append([]byte(continuity.DrillReportFormat+"\n"), canon...), sig) {
		t.Fatal("signature does not verify over the format prefix and the canonical report")
	}
	if !p.Started.Equal(r.Started) || p.Started.Location() != time.UTC || p.Registries == nil || len(p.Failures) != 1 {
		t.Fatalf("parsed %+v", p)
	}
}

// TestParseDrillReportRefuses: the parser is strict.
func TestParseDrillReportRefuses(t *testing.T) {
	good := string(golden(t, "drill-report.json"))
	for name, payload := range map[string]string{
		"unknown member":  strings.Replace(good, `"format"`, `"extra":1,"format"`, 1),
		"unknown in body": strings.Replace(good, `"guest"`, `"extra":1,"guest"`, 1),
		"other format":    strings.Replace(good, "drill-report/v1", "drill-report/v2", 1),
		"not canonical":   strings.Replace(good, `"order_index":7,"epoch":1`, `"epoch":1,"order_index":7`, 1),
		"trailing data":   good + "{}",
		"short signature": good[:strings.LastIndex(good, `"signature"`)] + `"signature":"AAAA"}`,
	} {
		if _, _, _, err := continuity.ParseDrillReport([]byte(payload)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestVerifyDrillReport: a report verifies under the charter only when
// signed by its site's checkpoint key, for the charter's guest.
func TestVerifyDrillReport(t *testing.T) {
	r := demo(t)
	north := r.siteKey(t, "embassy-north")
	rep := goldenReport()
	rep.Guest = r.c.Guest.ID
	signed, err := continuity.SignDrillReport(rep, north)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := continuity.VerifyDrillReport(r.c, signed); err != nil || got.Verified != 1 {
		t.Fatalf("good report: %+v, %v", got, err)
	}
	if _, err := continuity.VerifyDrillReport(r.other, signed); err == nil || !strings.Contains(err.Error(), "guest") {
		t.Fatalf("report under another guest's charter: %v", err)
	}
	rep.Site = "embassy-south"
	forged, err := continuity.SignDrillReport(rep, north)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := continuity.VerifyDrillReport(r.c, forged); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("report for south signed by north: %v", err)
	}
	rep.Site = "nowhere"
	if nowhere, _ := continuity.SignDrillReport(rep, north); nowhere != nil {
		if _, err := continuity.VerifyDrillReport(r.c, nowhere); err == nil || !strings.Contains(err.Error(), "not in the charter") {
			t.Fatalf("report for a site not in the charter: %v", err)
		}
	}
}

// TestNoticeGolden: the feed's notice encodes as the daemon served it.
func TestNoticeGolden(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	got, err := json.Marshal(continuity.Notice{Index: 3, Time: t0, Epoch: 2, Payload: []byte(`{"kind":"active"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := golden(t, "notice.json"); !bytes.Equal(got, want) {
		t.Fatalf("notice\n%s\nwant\n%s", got, want)
	}
}

// TestAccessEntryGolden: a find's access entry encodes as the daemon
// wrote it.
func TestAccessEntryGolden(t *testing.T) {
	got, err := json.Marshal(continuity.AccessEntry{Kind: continuity.AccessFind, Official: "registrar", Site: "home", Registry: "population",
		Field: "surname", Value: []byte{1, 2}, Results: []continuity.AccessResult{{BlindID: []byte{3}, Version: 2}}, Part: 1, Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := golden(t, "access-find.json"); !bytes.Equal(got, want) {
		t.Fatalf("access entry\n%s\nwant\n%s", got, want)
	}
}

// TestAccessEntryOldPayload: entries written before reads had kinds still
// decode, as record reads; a record read is still written in their shape,
// with the kind added.
func TestAccessEntryOldPayload(t *testing.T) {
	old := `{"official":"registrar","site":"embassy-north","registry":"population","blind_id":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","version":2}`
	var e continuity.AccessEntry
	if err := json.Unmarshal([]byte(old), &e); err != nil {
		t.Fatal(err)
	}
	if e.ReadKind() != continuity.AccessRecord || e.Kind != "" || e.Version != 2 || len(e.BlindID) != 32 || e.Registry != "population" {
		t.Fatalf("old entry decoded as %+v (kind %s)", e, e.ReadKind())
	}
	e.Kind = continuity.AccessRecord
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kind":"record",` + old[1:]; string(b) != want {
		t.Fatalf("record read encoded as\n%s\nwant\n%s", b, want)
	}
}

// TestDrillReportV2: a keyless report is signed as v2, and verifies; a v1
// report (no check) still verifies; a v2 envelope around a report without
// a check, or a v1 envelope around a keyless one, is refused.
func TestDrillReportV2(t *testing.T) {
	r := demo(t)
	north := r.siteKey(t, "embassy-north")
	rep := goldenReport()
	rep.Guest = r.c.Guest.ID
	rep.Check = continuity.DrillCheckKeyless
	v2, err := continuity.SignDrillReport(rep, north)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(v2, []byte(`"format":"`+continuity.DrillReportFormatV2+`"`)) {
		t.Fatalf("a keyless report is not v2: %s", v2)
	}
	if got, err := continuity.VerifyDrillReport(r.c, v2); err != nil || got.Check != continuity.DrillCheckKeyless {
		t.Fatalf("v2 report: %+v, %v", got, err)
	}
	rep.Check = ""
	v1, err := continuity.SignDrillReport(rep, north)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := continuity.VerifyDrillReport(r.c, v1); err != nil {
		t.Fatalf("v1 report: %v", err)
	}
	relabel := func(b []byte, from, to string) []byte {
		return bytes.Replace(b, []byte(`"format":"`+from+`"`), []byte(`"format":"`+to+`"`), 1)
	}
	for name, b := range map[string][]byte{
		"v1 envelope, keyless report": relabel(v2, continuity.DrillReportFormatV2, continuity.DrillReportFormat),
		"v2 envelope, v1 report":      relabel(v1, continuity.DrillReportFormat, continuity.DrillReportFormatV2),
	} {
		if _, err := continuity.VerifyDrillReport(r.c, b); err == nil {
			t.Errorf("%s verified", name)
		}
	}
}
