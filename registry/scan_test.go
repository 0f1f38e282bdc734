package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"
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

// TestLiveSetOfARegistry: with records updated and deleted out of the
// order they were created in (so a shard's records are not in ledger
// order), Live holds exactly each live record's version at the point,
// and ScanAsOf reads them in ledger order.
func TestLiveSetOfARegistry(t *testing.T) {
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
		got, err := fx.reg.Live("population", at)
		if err != nil {
			t.Fatal(err)
		}
		idx := slices.Sorted(maps.Values(want))
		if got.Len() != len(idx) || got.First() != idx[0] {
			t.Fatalf("%d live versions from %d, want %d from %d", got.Len(), got.First(), len(idx), idx[0])
		}
		for i := range fx.log.Size() {
			_, ok := got.Version(i)
			if _, live := slices.BinarySearch(idx, i); ok != live {
				t.Fatalf("ledger index %d: a live version %v, want %v", i, ok, live)
			}
		}
		var n int
		err = fx.reg.ScanAsOf(ctx, "population", at, func(rec *Record) error {
			if v, ok := got.Version(rec.Index); !ok || v != rec.Version || rec.Index != idx[n] {
				t.Fatalf("ScanAsOf's record %d: version %d at %d; the live set has %d (%v), want index %d", n, rec.Version, rec.Index, v, ok, idx[n])
			}
			n++
			return nil
		})
		if err != nil || n != len(idx) {
			t.Fatalf("ScanAsOf read %d records (%v), want %d", n, err, len(idx))
		}
	}
	check(AsOf{}, live)
	check(AsOf{Index: &midAt}, mid)
}

// TestLiveSetPlacesEveryIndex: for any live versions — indices dense
// (placed by the bitmap), sparse (sorted and searched), or repeated (an
// index not what it should be, refused) — a LiveSet answers, for every
// ledger index around them, exactly the version held there, and
// inLedgerOrder gives exactly the order a stable sort by index gives.
func TestLiveSetPlacesEveryIndex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 600).Draw(t, "n")
		spread := rapid.SampledFrom([]uint64{1, 2, 70, 300, 1000}).Draw(t, "spread") // span per version
		base := rapid.Uint64Range(0, 1<<40).Draw(t, "base")
		repeat := rapid.Bool().Draw(t, "repeat")
		held := map[uint64]uint64{} // ledger index → version
		var pairs []livePair
		twice := false
		for i := range n {
			idx := base + rapid.Uint64Range(0, uint64(n)*spread).Draw(t, "offset")
			if _, ok := held[idx]; ok {
				if !repeat {
					continue
				}
				twice = true
			}
			held[idx] = uint64(i + 1)
			pairs = append(pairs, livePair{idx, uint64(i + 1)})
		}
		want := slices.Clone(pairs)
		slices.SortStableFunc(want, func(a, b livePair) int { return cmp.Compare(a.index, b.index) })
		got, _ := inLedgerOrder(slices.Clone(pairs), func(p *livePair) uint64 { return p.index })
		for i := range want {
			if got[i].index != want[i].index || (!twice && got[i] != want[i]) {
				t.Fatalf("position %d: index %d version %d, want index %d version %d", i, got[i].index, got[i].version, want[i].index, want[i].version)
			}
		}
		s, err := newLiveSet(pairs)
		if twice {
			if err == nil {
				t.Fatal("a ledger index with two live versions was accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != len(held) {
			t.Fatalf("%d live versions, want %d", s.Len(), len(held))
		}
		if n == 0 {
			return
		}
		if s.First() != want[0].index {
			t.Fatalf("first live version at %d, want %d", s.First(), want[0].index)
		}
		for idx := base - min(base, 70); idx <= base+uint64(n)*spread+70; idx++ {
			v, ok := s.Version(idx)
			if wv, has := held[idx]; ok != has || v != wv {
				t.Fatalf("ledger index %d: version %d (%v), want %d (%v)", idx, v, ok, wv, has)
			}
		}
	})
}
