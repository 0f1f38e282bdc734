package registry

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestShardMatchesModel drives one shard with versions arriving in any
// order, repeated version numbers, values shared by many records and
// values repeated within a version, and compares it after every step with
// the obvious model: every version kept sorted (stably) by number, and
// each value's records found by looking at every record's latest version.
func TestShardMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newShard()
		type rec struct {
			versions []version // ascending by number, stable
			vals     []key
		}
		model := map[key]*rec{}
		nblind := rapid.IntRange(1, 12).Draw(t, "records")
		nkey := rapid.IntRange(1, 6).Draw(t, "values")
		value := func(i int) key { return key{byte(i), 0xee} }
		var index uint64
		for step := rapid.IntRange(1, 200).Draw(t, "steps"); step > 0; step-- {
			blind := key{byte(rapid.IntRange(0, nblind-1).Draw(t, "blind"))}
			index++
			v := version{num: uint64(rapid.IntRange(1, 6).Draw(t, "version")), index: index, epoch: 1, ms: int64(index), prev: none, deleted: rapid.Bool().Draw(t, "deleted")}
			var vals, keys []key
			for n := rapid.IntRange(0, 4).Draw(t, "nvals"); n > 0; n-- {
				k := value(rapid.IntRange(0, nkey-1).Draw(t, "key"))
				vals = append(vals, k)
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
			s.index(&blind, v, vals)

			m := model[blind]
			if m == nil {
				m = &rec{}
				model[blind] = m
			}
			at := len(m.versions)
			for at > 0 && m.versions[at-1].num > v.num {
				at--
			}
			m.versions = slices.Insert(m.versions, at, v)
			if at == len(m.versions)-1 {
				m.vals = keys
			}

			if got := int(s.states.len()); got != len(model) || len(s.recs) != len(model) {
				t.Fatalf("shard holds %d records (%d in its map), model %d", got, len(s.recs), len(model))
			}
			for b, m := range model {
				st := s.lookup(&b)
				if st == nil {
					t.Fatalf("record %x missing", b[0])
				}
				var got []version
				s.versions(st, func(v *version) bool { got = append(got, *v); return true })
				slices.Reverse(got)
				for i := range got {
					got[i].prev = none
				}
				want := slices.Clone(m.versions)
				for i := range want {
					want[i].prev = none
				}
				if !slices.Equal(got, want) {
					t.Fatalf("record %x versions %+v, want %+v", b[0], got, want)
				}
			}
			for i := 0; i < nkey; i++ {
				k := value(i)
				var want []uint64
				for _, m := range model {
					if l := m.versions[len(m.versions)-1]; slices.Contains(m.vals, k) && !l.deleted {
						want = append(want, l.index)
					}
				}
				var got []uint64
				for _, h := range s.find(&k, nil) {
					got = append(got, h.Index)
				}
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("value %d: records at ledger indexes %v, want %v", i, got, want)
				}
			}
		}
	})
}

func TestArenaChunks(t *testing.T) {
	var a arena[uint32]
	var firsts []uint32
	for n := 1; n <= 256; n = n*3 + 1 {
		for range 40 {
			i := a.alloc(n)
			k, off := chunkOf(i)
			if ke, _ := chunkOf(i + uint32(n) - 1); ke != k || int(off)+n > len(a.chunks[k]) {
				t.Fatalf("alloc(%d) = %d straddles chunks %d and %d", n, i, k, ke)
			}
			for j := uint32(0); j < uint32(n); j++ {
				*a.at(i + j) = i
			}
			firsts = append(firsts, i)
		}
	}
	for _, i := range firsts {
		if *a.at(i) != i {
			t.Fatalf("element %d holds %d: an allocation overlapped another", i, *a.at(i))
		}
	}
}
