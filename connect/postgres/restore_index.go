package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
		vers, err := o.Live.LiveVersions(t.Registry, at)
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", t.Registry, err)
		}
		n, err := restoreTable(ctx, conn, t.Table, ts, o.ledgerRows(t.Registry, ts.Columns, vers, published), o.TextCOPY, o.Progress)
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

// errFound ends a scan that found every entry it wanted.
var errFound = errors.New("every live version found")

// ledgerRows reads the entries of the versions vers (in ledger order) from
// a ledger of published entries, and hands them to the copy 1,024 to a
// job, each job opening its entries and encoding their rows.
func (o *RestoreOptions) ledgerRows(reg string, cols []Column, vers []registry.VersionInfo, published uint64) rowSource {
	return func(ctx context.Context, binary bool, job func(func([]byte) ([]byte, int, error)) error) error {
		if len(vers) == 0 {
			return nil
		}
		var raws [][]byte
		var want []registry.VersionInfo
		flush := func() error {
			rs, ws := raws, want
			raws, want = nil, nil
			return job(func(buf []byte) ([]byte, int, error) {
				buf = make([]byte, 0, 200*len(rs))
				enc := newRowEncoder(cols, binary)
				for i, raw := range rs {
					e, err := ledger.DecodeEntry(raw)
					if err != nil {
						return nil, 0, fmt.Errorf("ledger entry %d: %w", ws[i].Index, err)
					}
					re, err := registry.UnmarshalRecordEntry(e.Payload)
					if err != nil {
						return nil, 0, fmt.Errorf("ledger entry %d: %w", ws[i].Index, err)
					}
					if e.Type != ledger.TypeRecord || re.Registry != reg || re.Version != ws[i].Version || re.Kind == registry.KindTombstone {
						return nil, 0, fmt.Errorf("ledger entry %d is not version %d of a live %s record, as the registry's index says", ws[i].Index, ws[i].Version, reg)
					}
					// The row is encoded from the opened body in place.
					err = registry.OpenRecordData(o.Keys, o.Guest, &e, re, func(id, data []byte) error {
						var err error
						if buf, err = enc.appendRow(buf, data); err != nil {
							return fmt.Errorf("record %s: %w", id, err)
						}
						return nil
					})
					if err != nil {
						return nil, 0, fmt.Errorf("ledger entry %d: %w", ws[i].Index, err)
					}
				}
				return buf, len(rs), nil
			})
		}
		j := 0
		// The scan runs to the published size (its tiles are what exists),
		// and stops once it has the last entry it wants.
		err := ledger.Scan(ctx, ledger.DirFetcher(o.Log.Dir()), vers[0].Index, published, func(idx uint64, raw []byte) error {
			if j == len(vers) {
				return errFound
			}
			if idx != vers[j].Index {
				return nil
			}
			raws, want = append(raws, raw), append(want, vers[j])
			j++
			if len(raws) == 1024 {
				return flush()
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFound) {
			return fmt.Errorf("read ledger %s: %w", o.Log.Dir(), err)
		}
		if len(raws) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		if j != len(vers) {
			return fmt.Errorf("read ledger %s: %d of the %d live versions of %s found", o.Log.Dir(), j, len(vers), reg)
		}
		return nil
	}
}
