package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestScanAsOfSeesVersionsAtTheIndex(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	for _, id := range []string{"DR-1", "DR-2", "DR-3"} {
		if _, err := fx.reg.Put(ctx, "population", id, person(id, "Old"), nil); err != nil {
			t.Fatal(err)
		}
	}
	at := fx.log.Size() - 1
	// After the index: one changes, one is deleted, one is added.
	if _, err := fx.reg.Put(ctx, "population", "DR-1", person("DR-1", "New"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Delete(ctx, "population", "DR-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Put(ctx, "population", "DR-4", person("DR-4", "New"), nil); err != nil {
		t.Fatal(err)
	}
	scan := func(a AsOf) map[string]string {
		got := map[string]string{}
		if err := fx.reg.ScanAsOf(ctx, "population", a, func(r *Record) error {
			var m map[string]any
			if err := json.Unmarshal(r.Data, &m); err != nil {
				return err
			}
			got[r.ID] = m["last_name"].(string)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := scan(AsOf{Index: &at}); len(got) != 3 || got["DR-1"] != "Old" || got["DR-2"] != "Old" {
		t.Fatalf("as of %d: %v", at, got)
	}
	if got := scan(AsOf{}); len(got) != 3 || got["DR-1"] != "New" || got["DR-4"] != "New" || got["DR-2"] != "" {
		t.Fatalf("latest: %v", got)
	}
}

// TestLiveVersionsInLedgerOrder: with records updated and deleted out of
// the order they were created in (so a shard's run is not in ledger
// order), LiveVersions lists exactly each live record's version at the
// point, in ledger order.
func TestLiveVersionsInLedgerOrder(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	live := map[string]uint64{} // id → ledger index of its live version
	var mid map[string]uint64
	var midAt uint64
	for i := range 1500 {
		id := fmt.Sprintf("DR-%d", r.IntN(600))
		if _, ok := live[id]; ok && r.IntN(4) == 0 {
			if _, err := fx.reg.Delete(ctx, "population", id); err != nil {
				t.Fatal(err)
			}
			delete(live, id)
		} else {
			rec, err := fx.reg.Put(ctx, "population", id, person(id, "N"), nil)
			if err != nil {
				t.Fatal(err)
			}
			live[id] = rec.Index
		}
		if i == 900 {
			mid, midAt = maps.Clone(live), fx.log.Size()-1
		}
	}
	check := func(at AsOf, want map[string]uint64) {
		got, err := fx.reg.LiveVersions("population", at)
		if err != nil {
			t.Fatal(err)
		}
		idx := slices.Sorted(maps.Values(want))
		if len(got) != len(idx) {
			t.Fatalf("%d live versions, want %d", len(got), len(idx))
		}
		for i, v := range got {
			if v.Index != idx[i] {
				t.Fatalf("live version %d is at ledger index %d, want %d", i, v.Index, idx[i])
			}
		}
	}
	check(AsOf{}, live)
	check(AsOf{Index: &midAt}, mid)
}
