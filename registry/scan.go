package registry

import (
	"cmp"
	"context"
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

// LiveVersions lists the version of every record of registry that was
// live at at, in ledger order, without opening any: for a reader that
// opens the entries itself from the ledger (a restore into a database
// streams them as it reads).
func (r *Registries) LiveVersions(registry string, at AsOf) ([]VersionInfo, error) {
	g, err := r.reg(registry)
	if err != nil {
		return nil, err
	}
	return g.liveAt(at), nil
}

// liveAt is the version of every record live at at, in ledger order.
// A shard's records are walked by number (every number from 0 is a
// record: none is ever removed), not through its map. Each shard's run is
// sorted on its own — already in order where its records were written
// once, in order, as a snapshot writes them — and the runs are merged: a
// restore lists a million versions before it can start, and sorting them
// all as one slice was a sixth of its time.
func (g *reg) liveAt(at AsOf) []VersionInfo {
	var hits []VersionInfo
	runs := make([]int, 0, len(g.shards)+1) // run r is hits[runs[r]:runs[r+1]]
	for i := range g.shards {
		s := &g.shards[i]
		// Each shard under its own lock (the index's lock is cut with its
		// shards): the selection is as of at, so writes landing meanwhile
		// in another shard, all after at, change nothing it returns.
		g.mu[i].RLock()
		if i == 0 {
			hits = make([]VersionInfo, 0, int(s.states.len())*len(g.shards)*9/8)
		}
		runs = append(runs, len(hits))
		for n := range s.states.len() {
			s.versions(s.states.at(n), func(c *version) bool {
				if at.covers(c) {
					if !c.deleted {
						hits = append(hits, c.info())
					}
					return false
				}
				return true
			})
		}
		g.mu[i].RUnlock()
	}
	runs = append(runs, len(hits))
	byIndex := func(a, b VersionInfo) int { return cmp.Compare(a.Index, b.Index) }
	for r := range len(runs) - 1 {
		if run := hits[runs[r]:runs[r+1]]; !slices.IsSortedFunc(run, byIndex) {
			slices.SortFunc(run, byIndex)
		}
	}
	return mergeRuns(hits, runs)
}

// mergeRuns merges the sorted runs of hits (run r is hits[runs[r]:runs[r+1]])
// into one slice in ledger order, through a min-heap of the runs' heads.
func mergeRuns(hits []VersionInfo, runs []int) []VersionInfo {
	type head struct{ at, end int }
	var h []head
	for r := range len(runs) - 1 {
		if runs[r] < runs[r+1] {
			h = append(h, head{runs[r], runs[r+1]})
		}
	}
	less := func(i, j int) bool { return hits[h[i].at].Index < hits[h[j].at].Index }
	down := func(i int) {
		for {
			m := i
			if l := 2*i + 1; l < len(h) && less(l, m) {
				m = l
			}
			if r := 2*i + 2; r < len(h) && less(r, m) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	out := make([]VersionInfo, 0, len(hits))
	for len(h) > 0 {
		out = append(out, hits[h[0].at])
		if h[0].at++; h[0].at == h[0].end {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
	return out
}

// covers reports whether version c is at or before at.
func (at AsOf) covers(c *version) bool {
	return (at.Index == nil || c.index <= *at.Index) && (at.Time == nil || !time.UnixMilli(c.ms).After(*at.Time))
}
