package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/ledger"
)

// Write is one record version of a batch given to Apply.
type Write struct {
	Registry    string
	ID          string
	Delete      bool            // a tombstone; Data and Attachments must be empty
	Data        json.RawMessage // the record, for a put
	Attachments []Attachment
}

// MaxApplyBatch bounds the writes of one Apply: one ledger batch, which
// the log commits in one frame of the write-ahead log.
const MaxApplyBatch = 4096

// Apply writes ws as one ledger batch: every version becomes durable
// together, at consecutive indexes, or none does. It is how a decision and
// its effects, or a source database's transaction, land whole. The same
// record may appear more than once; its versions follow each other in
// batch order. A write that fails validation refuses the whole batch,
// naming the write by its position, registry and id, and nothing is
// appended. Quorum registries are waited for once, at the batch's last
// index, after the whole batch is durable here.
func (r *Registries) Apply(ctx context.Context, ws []Write) ([]*Record, error) {
	if len(ws) == 0 {
		return nil, errors.New("registry: apply: no writes")
	}
	if len(ws) > MaxApplyBatch {
		return nil, fmt.Errorf("registry: apply: %d writes in one batch, more than the %d allowed", len(ws), MaxApplyBatch)
	}
	// A single write's errors read as they always have; a batch's name the
	// write by position too.
	at := func(i int, err error) error {
		if len(ws) == 1 {
			return err
		}
		return fmt.Errorf("apply write %d: %w", i, err)
	}
	type slot struct {
		g     *reg
		blind [32]byte
	}
	slots := make([]slot, len(ws))
	var lockIdx []int
	for i, w := range ws {
		g, err := r.reg(w.Registry)
		if err != nil {
			return nil, at(i, err)
		}
		if err := checkID(w.Registry, w.ID); err != nil {
			return nil, at(i, err)
		}
		if w.Delete && (len(w.Data) > 0 || len(w.Attachments) > 0) {
			return nil, at(i, fmt.Errorf("%s record %s: a delete carries no data or attachments", w.Registry, w.ID))
		}
		if len(w.Attachments) > 0 && g.blobs == nil {
			return nil, at(i, errors.New("registry: this site has no blob store"))
		}
		slots[i] = slot{g: g, blind: g.keys.BlindID(w.ID)}
		lockIdx = append(lockIdx, int(slots[i].blind[0]))
	}
	// Lock every record's stripe, in ascending order and each once, so two
	// batches touching the same stripes cannot deadlock.
	slices.Sort(lockIdx)
	lockIdx = slices.Compact(lockIdx)
	r.bulk.RLock()
	defer r.bulk.RUnlock()
	if r.fenced.Load() {
		return nil, fmt.Errorf("registry: apply: %w", ErrFenced)
	}
	for _, li := range lockIdx {
		r.locks[li].Lock()
	}
	defer func() {
		for _, li := range lockIdx {
			r.locks[li].Unlock()
		}
	}()

	// Attachments must be durable before a ledger entry names them.
	flushed := map[*reg]bool{}
	for i, w := range ws {
		g := slots[i].g
		if len(w.Attachments) > 0 && !flushed[g] {
			if err := g.blobs.Flush(ctx); err != nil {
				return nil, at(i, fmt.Errorf("%s record %s: make attachments durable: %w", w.Registry, w.ID, err))
			}
			flushed[g] = true
		}
	}

	type state struct {
		num     uint64
		deleted bool
		exists  bool
	}
	pending := map[slot]state{}
	epoch := r.epoch()
	now := r.opts.Now()
	preps := make([]*prepared, len(ws))
	entries := make([]ledger.Entry, len(ws))
	// Versions follow each other in batch order, so they are numbered in
	// one pass; sealing each is independent of the others, and a large
	// batch (a source database's transaction, a snapshot) is sealed on a
	// worker per core. The first failing write by position is reported,
	// as a pass in order would.
	nums := make([]uint64, len(ws))
	limit := len(ws)
	var seqErr error
	for i, w := range ws {
		s := slots[i]
		st, ok := pending[s]
		if !ok {
			latest, found := s.g.latest(&s.blind)
			st = state{num: latest.num, deleted: latest.deleted, exists: found}
		}
		if w.Delete && (!st.exists || st.deleted) {
			limit, seqErr = i, at(i, fmt.Errorf("delete %s record %s: %w", w.Registry, w.ID, ErrNotFound))
			break
		}
		nums[i] = st.num + 1
		pending[s] = state{num: st.num + 1, deleted: w.Delete, exists: true}
	}
	errs := make([]error, limit)
	prep := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			w := ws[i]
			kind := KindPut
			if w.Delete {
				kind = KindTombstone
			}
			pr, err := slots[i].g.prepare(r.opts.Charter.Guest.ID, w.ID, nums[i], epoch, kind, w.Data, w.Attachments)
			if err != nil {
				errs[i] = err
				return // a later write's error cannot be the first
			}
			preps[i] = pr
			entries[i] = ledger.Entry{Type: ledger.TypeRecord, Epoch: pr.epoch, Time: now, Payload: pr.payload}
		}
	}
	if workers := min(runtime.GOMAXPROCS(0), limit/128); workers > 1 {
		var wg sync.WaitGroup
		for k := range workers {
			wg.Go(func() { prep(limit*k/workers, limit*(k+1)/workers) })
		}
		wg.Wait()
	} else {
		prep(0, limit)
	}
	for i, err := range errs {
		if err != nil {
			return nil, at(i, err)
		}
	}
	if seqErr != nil {
		return nil, seqErr
	}
	first, err := r.opts.Log.AppendBatch(ctx, entries)
	if err != nil {
		if len(ws) == 1 {
			return nil, fmt.Errorf("%s record %s: ledger: %w", ws[0].Registry, ws[0].ID, err)
		}
		return nil, fmt.Errorf("apply %d writes: ledger: %w", len(ws), err)
	}
	recs := make([]*Record, len(ws))
	t := now.UTC().Truncate(time.Millisecond)
	last := map[*reg]uint64{}
	for i, w := range ws {
		idx := first + uint64(i)
		pr := preps[i]
		v := VersionInfo{Version: pr.entry.Version, Index: idx, Time: t, Epoch: epoch, Deleted: w.Delete}
		r.remember(idx, entries[i])
		slots[i].g.index(pr.entry, v)
		last[slots[i].g] = idx
		rec := &Record{Registry: w.Registry, ID: w.ID, VersionInfo: v}
		if !w.Delete {
			rec.Data, rec.Attachments = w.Data, w.Attachments
		}
		recs[i] = rec
	}
	for g, idx := range last {
		if err := r.replicated(ctx, g, idx); err != nil {
			return recs, err
		}
	}
	return recs, nil
}
