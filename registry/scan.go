package registry

import (
	"context"
	"sort"
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
func (g *reg) liveAt(at AsOf) []VersionInfo {
	var hits []VersionInfo
	for i := range g.shards {
		s := &g.shards[i]
		// Each shard under its own lock (the index's lock is cut with its
		// shards): the selection is as of at, so writes landing meanwhile
		// in another shard, all after at, change nothing it returns.
		g.mu[i].RLock()
		for _, n := range s.recs {
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
	sort.Slice(hits, func(i, j int) bool { return hits[i].Index < hits[j].Index })
	return hits
}

// covers reports whether version c is at or before at.
func (at AsOf) covers(c *version) bool {
	return (at.Index == nil || c.index <= *at.Index) && (at.Time == nil || !time.UnixMilli(c.ms).After(*at.Time))
}
