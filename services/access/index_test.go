package access

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// newRecorded opens a ledger, a keyring under a fresh root and a recorder
// of access entries at embassy-north.
func newRecorded(t testing.TB) (*ledger.Log, *seal.Keyring, *Recorder) {
	t.Helper()
	log := openLog(t, t.TempDir())
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring("demo-republic", root)
	return log, keys, &Recorder{Log: log, Keys: keys, Site: "embassy-north"}
}

// appendReads appends n access entries: every tenth a read of P-100's
// records (by the citizen, a client, an official, a find over her parcel),
// the rest reads of other persons' records and non-access entries.
func appendReads(t testing.TB, log *ledger.Log, rec *Recorder, from, n int) {
	t.Helper()
	ctx := context.Background()
	var batch []ledger.Entry
	for i := from; i < from+n; i++ {
		var p Principal
		var a Access
		switch {
		case i%10 == 3:
			p, a = Principal{Kind: KindClient, ID: "tax-office", Person: "P-100", Purpose: fmt.Sprint("q", i)}, Access{Kind: continuity.AccessRecord, Registry: "population", ID: "P-100", Version: 1}
		case i%10 == 7:
			p, a = Principal{Kind: KindCitizen, ID: "P-100", Purpose: fmt.Sprint("mine ", i)}, Access{Kind: continuity.AccessFind, Registry: "land", Field: "owner_id", Value: "P-100", Results: []Result{{"L-7", 1}}}
		case i%10 == 9:
			p, a = Principal{Kind: KindOfficial, ID: "reg-1"}, Access{Kind: continuity.AccessRecord, Registry: "land", ID: "L-7", Version: 1}
		case i%10 == 5:
			batch = append(batch, ledger.Entry{Type: ledger.TypeRecord, Epoch: 1, Time: time.Now(), Payload: []byte(`{}`)})
			continue
		default:
			other := fmt.Sprintf("P-%d", 1000+i)
			p, a = Principal{Kind: KindCitizen, ID: other, Purpose: "mine"}, Access{Kind: continuity.AccessRecord, Registry: "population", ID: other, Version: 1}
		}
		payload, err := rec.Entry(p, a, 1)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, ledger.Entry{Type: ledger.TypeAccess, Epoch: 1, Time: time.Now(), Payload: payload})
		if len(batch) == 1000 {
			if _, err := log.AppendBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if _, err := log.AppendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIndexTracksAsTheScanDoes: the index lists exactly what the full
// scan lists, over entries spread across many entry bundles, and again
// after more entries are appended (it indexes only the new ones).
func TestIndexTracksAsTheScanDoes(t *testing.T) {
	ctx := context.Background()
	log, keys, rec := newRecorded(t)
	owned := map[string][]string{"population": {"P-100"}, "land": {"L-7"}}
	x := NewIndex(log)
	check := func(wantN int) {
		t.Helper()
		scan, err := Track(ctx, log, keys, "P-100", owned)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := x.Track(ctx, keys, "P-100", owned)
		if err != nil {
			t.Fatal(err)
		}
		if len(scan) != wantN {
			t.Fatalf("the scan lists %d reads, want %d", len(scan), wantN)
		}
		if !reflect.DeepEqual(scan, idx) {
			t.Fatalf("the index lists %d reads, the scan %d:\nindex %+v\nscan  %+v", len(idx), len(scan), idx, scan)
		}
	}
	appendReads(t, log, rec, 0, 700)
	check(210)
	appendReads(t, log, rec, 700, 300)
	check(300)
	if x.next != log.Size() {
		t.Errorf("the index covers %d entries of %d", x.next, log.Size())
	}
}

// BenchmarkTracker: one citizen's data tracker over a ledger of 100,000
// access entries (10% of them reads of that citizen's records), by a full
// scan and from the index (built before the timer starts, as it is by the
// first tracker after an unsealing).
func BenchmarkTracker(b *testing.B) {
	ctx := context.Background()
	log, keys, rec := newRecorded(b)
	appendReads(b, log, rec, 0, 100_000)
	owned := map[string][]string{"population": {"P-100"}, "land": {"L-7"}}
	// A citizen with few reads: one read of P-7 among the 100,000.
	payload, err := rec.Entry(Principal{Kind: KindClient, ID: "bank", Person: "P-7", Purpose: "kyc"}, Access{Kind: continuity.AccessRecord, Registry: "population", ID: "P-7", Version: 1}, 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := log.Append(ctx, ledger.Entry{Type: ledger.TypeAccess, Epoch: 1, Time: time.Now(), Payload: payload}); err != nil {
		b.Fatal(err)
	}
	few := map[string][]string{"population": {"P-7"}}
	x := NewIndex(log)
	if _, err := x.Track(ctx, keys, "P-7", few); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		person string
		owned  map[string][]string
		track  func(string, map[string][]string) ([]Seen, error)
	}{
		{"scan/1-read", "P-7", few, func(p string, o map[string][]string) ([]Seen, error) { return Track(ctx, log, keys, p, o) }},
		{"index/1-read", "P-7", few, func(p string, o map[string][]string) ([]Seen, error) { return x.Track(ctx, keys, p, o) }},
		{"scan/30000-reads", "P-100", owned, func(p string, o map[string][]string) ([]Seen, error) { return Track(ctx, log, keys, p, o) }},
		{"index/30000-reads", "P-100", owned, func(p string, o map[string][]string) ([]Seen, error) { return x.Track(ctx, keys, p, o) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.track(c.person, c.owned); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
