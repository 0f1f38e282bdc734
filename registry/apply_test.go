package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestApplyLandsWholeAtConsecutiveIndexes(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.reg.Put(ctx, "population", "DR-9", person("DR-9", "Old"), nil); err != nil {
		t.Fatal(err)
	}
	recs, err := fx.reg.Apply(ctx, []Write{
		{Registry: "population", ID: "DR-1", Data: person("DR-1", "Ivanova")},
		{Registry: "land", ID: "P-1", Data: json.RawMessage(`{"parcel_id":"P-1","owner_id":"DR-1"}`)},
		{Registry: "population", ID: "DR-1", Data: person("DR-1", "Berg")},
		{Registry: "population", ID: "DR-9", Delete: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Index != recs[0].Index+uint64(i) {
			t.Fatalf("write %d at index %d, want %d: a batch is one contiguous run", i, recs[i].Index, recs[0].Index+uint64(i))
		}
	}
	if recs[0].Version != 1 || recs[2].Version != 2 || recs[3].Version != 2 || !recs[3].Deleted {
		t.Fatalf("versions: %+v %+v %+v", recs[0].VersionInfo, recs[2].VersionInfo, recs[3].VersionInfo)
	}
	// It reads back after a restart, rebuilt from the ledger alone.
	fx.reopen(t)
	got, err := fx.reg.Get(ctx, "population", "DR-1", AsOf{})
	if err != nil || got.Version != 2 || !strings.Contains(string(got.Data), "Berg") {
		t.Fatalf("after reopen: %v %+v", err, got)
	}
	if h, err := fx.reg.History(ctx, "population", "DR-9"); err != nil || len(h) != 2 || !h[1].Deleted {
		t.Fatalf("deleted in the batch: %v %+v", err, h)
	}
	if _, err := fx.reg.Get(ctx, "land", "P-1", AsOf{}); err != nil {
		t.Fatal(err)
	}
}

func TestApplyRefusesWholeBatchAndNamesTheWrite(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	size := fx.log.Size()
	cases := []struct {
		name string
		ws   []Write
		want string
	}{
		{"schema", []Write{
			{Registry: "population", ID: "DR-1", Data: person("DR-1", "A")},
			{Registry: "population", ID: "DR-2", Data: json.RawMessage(`{"national_id":7}`)},
		}, "apply write 1"},
		{"unknown registry", []Write{
			{Registry: "population", ID: "DR-1", Data: person("DR-1", "A")},
			{Registry: "nope", ID: "X"},
		}, "apply write 1"},
		{"delete of a record never written", []Write{
			{Registry: "population", ID: "DR-1", Data: person("DR-1", "A")},
			{Registry: "population", ID: "DR-3", Delete: true},
		}, "DR-3"},
		{"deleted twice", []Write{
			{Registry: "population", ID: "DR-1", Data: person("DR-1", "A")},
			{Registry: "population", ID: "DR-1", Delete: true},
			{Registry: "population", ID: "DR-1", Delete: true},
		}, "apply write 2"},
		{"delete with data", []Write{
			{Registry: "population", ID: "DR-1", Delete: true, Data: person("DR-1", "A")},
			{Registry: "population", ID: "DR-2", Data: person("DR-2", "A")},
		}, "apply write 0"},
		{"bad id", []Write{
			{Registry: "population", ID: "DR-1", Data: person("DR-1", "A")},
			{Registry: "population", ID: "", Data: person("", "A")},
		}, "apply write 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fx.reg.Apply(ctx, c.ws)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v, want an error naming %q", err, c.want)
			}
			if got := fx.log.Size(); got != size {
				t.Fatalf("a refused batch appended %d entries", got-size)
			}
			if _, err := fx.reg.Get(ctx, "population", "DR-1", AsOf{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the batch's valid write is readable after a refusal: %v", err)
			}
		})
	}
	if _, err := fx.reg.Apply(ctx, nil); err == nil {
		t.Error("an empty batch was accepted")
	}
	if _, err := fx.reg.Apply(ctx, make([]Write, MaxApplyBatch+1)); err == nil {
		t.Error("an oversized batch was accepted")
	}
}

// Batches that touch the same records in opposite orders run concurrently
// without deadlock, and every version number is used exactly once.
func TestApplyConcurrentOverlappingBatches(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	const workers, rounds = 8, 25
	ids := []string{"DR-1", "DR-2", "DR-3", "DR-4"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				var ws []Write
				for j := range ids {
					id := ids[(j+w)%len(ids)]
					if w%2 == 1 {
						id = ids[len(ids)-1-(j+w)%len(ids)]
					}
					ws = append(ws, Write{Registry: "population", ID: id, Data: person(id, fmt.Sprintf("w%d-%d", w, i))})
				}
				if _, err := fx.reg.Apply(ctx, ws); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		h, err := fx.reg.History(ctx, "population", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != workers*rounds {
			t.Fatalf("%s has %d versions, want %d", id, len(h), workers*rounds)
		}
		for i, v := range h {
			if v.Version != uint64(i+1) {
				t.Fatalf("%s version %d at position %d", id, v.Version, i)
			}
		}
	}
}

// TestApplyLargeBatchSealedInParallel: a batch large enough to be sealed
// on several workers lands whole and in order, and a refused one names its
// first bad write by position, as a pass in order would.
func TestApplyLargeBatchSealedInParallel(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	var ws []Write
	for i := range 1000 {
		id := fmt.Sprintf("DR-%d", i%600) // some records twice: versions in batch order
		ws = append(ws, Write{Registry: "population", ID: id, Data: person(id, fmt.Sprint("L", i))})
	}
	bad := append([]Write(nil), ws...)
	bad[900] = Write{Registry: "population", ID: "DR-x", Delete: true}                               // never written
	bad[700] = Write{Registry: "population", ID: "DR-y", Data: json.RawMessage(`{"national_id":7}`)} // no last_name
	size := fx.log.Size()
	if _, err := fx.reg.Apply(ctx, bad); err == nil || !strings.Contains(err.Error(), "apply write 700") {
		t.Fatalf("err = %v, want write 700 named", err)
	}
	bad[700] = ws[700]
	if _, err := fx.reg.Apply(ctx, bad); err == nil || !strings.Contains(err.Error(), "apply write 900") {
		t.Fatalf("err = %v, want write 900 named", err)
	}
	if fx.log.Size() != size {
		t.Fatal("a refused batch appended entries")
	}
	recs, err := fx.reg.Apply(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Index != recs[0].Index+uint64(i) {
			t.Fatalf("write %d at index %d", i, r.Index)
		}
	}
	got, err := fx.reg.Get(ctx, "population", "DR-5", AsOf{})
	if err != nil || got.Version != 2 || !strings.Contains(string(got.Data), `"L605"`) {
		t.Fatalf("DR-5: %v %+v", err, got)
	}
	fx.reopen(t)
	if got, err := fx.reg.Get(ctx, "population", "DR-599", AsOf{}); err != nil || got.Version != 1 {
		t.Fatalf("after reopen: %v %+v", err, got)
	}
}
