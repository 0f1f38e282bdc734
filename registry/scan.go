package registry

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"slices"
	"time"
)

// ScanAsOf opens, for every record of registry that had a live version at
// at, that version, in ledger order of those versions, and calls fn with
// it; it stops at fn's first error and returns it. The plaintext index
// holds only latest versions, so a selection "as of ledger index N" (a
// payment run's beneficiaries) cannot use Find: a record that carried the
// value at N may carry another now. ScanAsOf reads every record, which is
// what such a selection costs.
func (r *Registries) ScanAsOf(ctx context.Context, registry string, at AsOf, fn func(*Record) error) error {
	g, err := r.reg(registry)
	if err != nil {
		return err
	}
	hits := g.liveAt(at)
	for _, v := range hits {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.open(ctx, g, "", v)
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// Live is the live version of every record of registry at at, by the
// ledger index of the entry that holds it, without opening any: for a
// reader that walks the ledger in order and opens the entries itself (a
// restore into a database streams them as it reads). It allocates 16
// bytes a version and a bitmap over the span of their indices, not a
// record each: a restore lists a million versions before it can start.
func (r *Registries) Live(registry string, at AsOf) (*LiveSet, error) {
	g, err := r.reg(registry)
	if err != nil {
		return nil, err
	}
	var pairs []livePair
	g.eachLive(at, func(n int) { pairs = make([]livePair, 0, n) }, func(c *version) {
		pairs = append(pairs, livePair{c.index, c.num})
	})
	s, err := newLiveSet(pairs)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", registry, err)
	}
	return s, nil
}

// newLiveSet orders the live versions pairs (in any order) by ledger
// index, refusing an index that holds two.
func newLiveSet(pairs []livePair) (*LiveSet, error) {
	pairs, place := inLedgerOrder(pairs, func(p *livePair) uint64 { return p.index })
	for i := 1; i < len(pairs); i++ {
		if pairs[i].index == pairs[i-1].index {
			return nil, fmt.Errorf("the index has two live versions (%d and %d) at ledger index %d", pairs[i-1].version, pairs[i].version, pairs[i].index)
		}
	}
	return &LiveSet{pairs: pairs, bits: place}, nil
}

// A LiveSet is the live version of every record of a registry at a
// point, by ledger index (Registries.Live).
type LiveSet struct {
	pairs []livePair // in ledger order
	bits  *spanBits  // places an index in pairs; nil where too sparse
}

type livePair struct{ index, version uint64 }

// Len is how many records are live.
func (s *LiveSet) Len() int { return len(s.pairs) }

// First is the ledger index of the first live version; Len must not be 0.
func (s *LiveSet) First() uint64 { return s.pairs[0].index }

// Version is the live version the entry at ledger index holds, if it
// holds one.
func (s *LiveSet) Version(index uint64) (uint64, bool) {
	var i int
	var ok bool
	if s.bits != nil {
		i, ok = s.bits.pos(index)
	} else {
		i, ok = slices.BinarySearchFunc(s.pairs, index, func(p livePair, x uint64) int { return cmp.Compare(p.index, x) })
	}
	if !ok {
		return 0, false
	}
	return s.pairs[i].version, true
}

// liveAt is the version of every record live at at, in ledger order.
func (g *reg) liveAt(at AsOf) []VersionInfo {
	var hits []VersionInfo
	g.eachLive(at, func(n int) { hits = make([]VersionInfo, 0, n) }, func(c *version) { hits = append(hits, c.info()) })
	hits, _ = inLedgerOrder(hits, func(v *VersionInfo) uint64 { return v.Index })
	return hits
}

// eachLive calls fn with the version of every record live at at, in no
// particular order, after calling size with about how many there are. A
// shard's records are walked by number (every number from 0 is a record:
// none is ever removed), not through its map.
func (g *reg) eachLive(at AsOf, size func(int), fn func(*version)) {
	for i := range g.shards {
		s := &g.shards[i]
		// Each shard under its own lock (the index's lock is cut with its
		// shards): the selection is as of at, so writes landing meanwhile
		// in another shard, all after at, change nothing it returns.
		g.mu[i].RLock()
		if i == 0 {
			size(int(s.states.len()) * len(g.shards) * 9 / 8)
		}
		for n := range s.states.len() {
			s.versions(s.states.at(n), func(c *version) bool {
				if at.covers(c) {
					if !c.deleted {
						fn(c)
					}
					return false
				}
				return true
			})
		}
		g.mu[i].RUnlock()
	}
}

// inLedgerOrder returns items sorted by their ledger index, in time
// linear in their number and the span of their indices, where the indices
// are distinct (one ledger entry holds one version): a bitmap over the
// span marks every index, a prefix count of its words ranks them, and
// each item goes straight to its place; the bitmap is returned, to place
// an index later. Sorting was a sixth of a restore's time, merging sorted
// runs per shard still a tenth. Indices spread over a span much wider
// than their number (a small registry in a long ledger), or not distinct,
// are sorted instead, and no bitmap returned.
func inLedgerOrder[T any](items []T, index func(*T) uint64) ([]T, *spanBits) {
	byIndex := func(a, b T) int { return cmp.Compare(index(&a), index(&b)) }
	if len(items) == 0 {
		return items, nil
	}
	lo, hi := index(&items[0]), index(&items[0])
	for i := range items {
		lo, hi = min(lo, index(&items[i])), max(hi, index(&items[i]))
	}
	words := (hi-lo)/64 + 1
	if words > 4*uint64(len(items))+64 {
		slices.SortFunc(items, byIndex)
		return items, nil
	}
	b := &spanBits{lo: lo, marks: make([]uint64, words), rank: make([]uint32, words)}
	for i := range items {
		d := index(&items[i]) - lo
		b.marks[d/64] |= 1 << (d % 64)
	}
	n := 0
	for w, m := range b.marks {
		b.rank[w] = uint32(n)
		n += bits.OnesCount64(m)
	}
	if n != len(items) { // an index twice: the index is not what it should be, but order it anyway
		slices.SortFunc(items, byIndex)
		return items, nil
	}
	out := make([]T, len(items))
	for i := range items {
		p, _ := b.pos(index(&items[i]))
		out[p] = items[i]
	}
	return out, b
}

// spanBits marks the distinct ledger indices of a sorted list over their
// span [lo, lo+64·len(marks)), and ranks them: pos gives an index's place
// in the list.
type spanBits struct {
	lo    uint64
	marks []uint64 // bit d%64 of word d/64: index lo+d is in the list
	rank  []uint32 // how many indices lie before word w
}

func (b *spanBits) pos(index uint64) (int, bool) {
	if index < b.lo {
		return 0, false
	}
	d := index - b.lo
	w := d / 64
	if w >= uint64(len(b.marks)) || b.marks[w]&(1<<(d%64)) == 0 {
		return 0, false
	}
	return int(b.rank[w]) + bits.OnesCount64(b.marks[w]&(1<<(d%64)-1)), true
}

// covers reports whether version c is at or before at.
func (at AsOf) covers(c *version) bool {
	return (at.Index == nil || c.index <= *at.Index) && (at.Time == nil || !time.UnixMilli(c.ms).After(*at.Time))
}
