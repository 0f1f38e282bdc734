package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
)

// restoreLive is Restore over the registries' index (RestoreOptions.Live):
// the index lists the live version of every record at the chosen point,
// in ledger order, so the ledger is read once from the first of them,
// only those entries are opened — on a worker per core, 1,024 to a job —
// and their rows go to COPY while the rest of the ledger is still being
// read. No record is held in memory, and no id sorted: the primary key
// is built after, as pg_restore builds it.
func restoreLive(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	size, published, err := o.point(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, errors.New("restore: the ledger is empty")
	}
	last := size - 1
	at := registry.AsOf{Index: &last, Time: o.Time}
	rec, err := o.Live.Get(ctx, o.Config.StateRegistry, StateID(o.Config.Slot), at)
	if err != nil {
		return nil, fmt.Errorf("restore: the ledger holds no position of connector %s at that point (no table columns recorded): %w", o.Config.Slot, err)
	}
	var pos Position
	if err := json.Unmarshal(rec.Data, &pos); err != nil {
		return nil, fmt.Errorf("restore: connector position %s: %w", rec.ID, err)
	}
	for _, want := range o.Registries {
		if !mapped(o.Config, want) {
			return nil, fmt.Errorf("restore: registry %s is not mapped by connector %s", want, o.Config.Slot)
		}
	}
	conn, err := connect(ctx, o.ConnString)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer conn.Close(context.Background())
	res := &RestoreResult{Tables: map[string]int64{}, AsOf: size}
	for _, t := range o.tables(&pos) {
		ts := pos.Tables[t.Table]
		live, err := o.Live.Live(t.Registry, at)
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", t.Registry, err)
		}
		n, err := restoreTable(ctx, conn, t.Table, ts, o.ledgerRows(t.Registry, ts.Columns, live, published), o.TextCOPY, o.Progress)
		if err != nil {
			return res, fmt.Errorf("restore %s into %s: %w", t.Registry, t.Table, err)
		}
		res.Tables[t.Table] = n
	}
	if o.Verify {
		// The check reads the ledger its own way (every version, in a
		// view), not through the index the copy used.
		o.Live = nil
		v, err := o.view(ctx)
		if err != nil {
			return res, err
		}
		for _, t := range o.tables(v.pos) {
			if err := compareTable(ctx, conn, t.Table, v.pos.Tables[t.Table], v.live[t.Registry]); err != nil {
				return res, fmt.Errorf("restore: verify: %w", err)
			}
		}
		res.Verified = true
	}
	return res, nil
}

func mapped(c Config, reg string) bool {
	for _, t := range c.Tables {
		if t.Registry == reg {
			return true
		}
	}
	return false
}

// restoreJob is how many entries a restore worker opens and encodes as
// one job.
const restoreJob = 1024

// errFound ends a scan that found every entry it wanted.
var errFound = errors.New("every live version found")

// ledgerRows reads the entries of the live versions (in ledger order)
// from a ledger of published entries, and hands them to the copy 1,024
// to a job, each job opening its entries and encoding their rows.
func (o *RestoreOptions) ledgerRows(reg string, cols []Column, live *registry.LiveSet, published uint64) rowSource {
	return func(ctx context.Context, binary bool, job func(func([]byte) ([]byte, int, error)) error) error {
		if live.Len() == 0 {
			return nil
		}
		// The wanted entries are copied out of the bundle the scan reuses
		// into a batch, which its job gives back once it has encoded them.
		free := make(chan *entryBatch, 8)
		batch := newEntryBatch(free)
		found := 0
		flush := func() error {
			b := batch
			batch = newEntryBatch(free)
			return job(func(buf []byte) ([]byte, int, error) {
				defer b.release()
				is := b.idxs
				buf = slices.Grow(buf[:0], 200*len(is))
				enc := newRowEncoder(cols, binary)
				dr := registry.NewDataReader(o.Keys, o.Guest)
				for i := range is {
					e, err := ledger.DecodeEntry(b.entry(i))
					if err != nil {
						return nil, 0, fmt.Errorf("ledger entry %d: %w", is[i], err)
					}
					re, err := dr.Decode(e.Payload)
					if err != nil {
						return nil, 0, fmt.Errorf("ledger entry %d: %w", is[i], err)
					}
					if v := b.vers[i]; e.Type != ledger.TypeRecord || re.Registry != reg || re.Version != v || re.Kind == registry.KindTombstone {
						return nil, 0, fmt.Errorf("ledger entry %d is not version %d of a live %s record, as the registry's index says", is[i], v, reg)
					}
					// The row is encoded from the opened body in place, its
					// columns taken out in the same walk as the body's check.
					err = dr.OpenFields(&e, re, enc.names, enc.vals, func(id, data []byte) error {
						if len(data) == 0 || data[0] != '{' {
							return fmt.Errorf("record %s: %w", id, errNotObject)
						}
						var err error
						if buf, err = enc.appendVals(buf); err != nil {
							return fmt.Errorf("record %s: %w", id, err)
						}
						return nil
					})
					if err != nil {
						return nil, 0, fmt.Errorf("ledger entry %d: %w", is[i], err)
					}
				}
				return buf, len(is), nil
			})
		}
		// The scan runs to the published size (its tiles are what exists),
		// and stops once it has the last entry it wants.
		err := ledger.ScanReusing(ctx, ledger.DirFetcher(o.Log.Dir()), live.First(), published, func(idx uint64, raw []byte) error {
			if found == live.Len() {
				return errFound
			}
			v, ok := live.Version(idx)
			if !ok {
				return nil
			}
			batch.add(idx, v, raw)
			found++
			if len(batch.idxs) == restoreJob {
				return flush()
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFound) {
			return fmt.Errorf("read ledger %s: %w", o.Log.Dir(), err)
		}
		if len(batch.idxs) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		if found != live.Len() {
			return fmt.Errorf("read ledger %s: %d of the %d live versions of %s found", o.Log.Dir(), found, live.Len(), reg)
		}
		return nil
	}
}

// entryBatch holds copies of the entries a restore job opens, with their
// ledger indices and live versions (looked up once, by the scan), in
// buffers reused from job to job.
type entryBatch struct {
	arena []byte
	ends  []int // entry i is arena[ends[i-1]:ends[i]]
	idxs  []uint64
	vers  []uint64 // the live version each index holds, as the registry's index says
	free  chan *entryBatch
}

// newEntryBatch takes an empty batch from free, or makes one.
func newEntryBatch(free chan *entryBatch) *entryBatch {
	select {
	case b := <-free:
		b.arena, b.ends, b.idxs, b.vers = b.arena[:0], b.ends[:0], b.idxs[:0], b.vers[:0]
		return b
	default:
		return &entryBatch{arena: make([]byte, 0, restoreJob*256), ends: make([]int, 0, restoreJob), idxs: make([]uint64, 0, restoreJob), vers: make([]uint64, 0, restoreJob), free: free}
	}
}

func (b *entryBatch) add(idx, version uint64, raw []byte) {
	b.arena = append(b.arena, raw...)
	b.ends = append(b.ends, len(b.arena))
	b.idxs = append(b.idxs, idx)
	b.vers = append(b.vers, version)
}

// entry is entry i, aliasing the batch.
func (b *entryBatch) entry(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.arena[start:b.ends[i]:b.ends[i]]
}

// release gives the batch back for another job, once its entries are
// no longer read.
func (b *entryBatch) release() {
	select {
	case b.free <- b:
	default:
	}
}
