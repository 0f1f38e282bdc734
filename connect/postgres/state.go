package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
)

// Position is where a connector stands, kept as a record of the state
// registry (id StateID(slot)) and written in the same ledger batch as the
// data it follows: the ledger never holds data without the position that
// covers it, nor a position ahead of its data. It also records each
// table's columns, so a schema change is in the ledger's history and a
// restore can create the tables.
type Position struct {
	Slot  string `json:"slot"`
	Phase string `json:"phase"` // PhaseSnapshot or PhaseStream
	// LSN is, streaming, the end LSN of the last source transaction applied
	// whole; replication restarts there. In the snapshot phase, the slot's
	// consistent point.
	LSN      string `json:"lsn"`
	Snapshot string `json:"snapshot,omitempty"` // the exported snapshot the registry was filled from
	// Partial is set while a transaction too large for one ledger batch
	// is applied in several: its end LSN and how many of its changes are
	// in the ledger.
	Partial *Partial              `json:"partial,omitempty"`
	Tables  map[string]TableState `json:"tables"`
}

// Partial is a transaction applied in part (Position.Partial).
type Partial struct {
	End     string `json:"end_lsn"`
	Changes int    `json:"changes"`
}

// Phases of a connector.
const (
	PhaseSnapshot = "snapshot"
	PhaseStream   = "stream"
)

// TableState is a mapped table as the connector last saw it.
type TableState struct {
	Registry string   `json:"registry"`
	Key      []string `json:"key"` // primary key columns, in key order
	Columns  []Column `json:"columns"`
}

// Column is one column of a mapped table.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"` // format_type(): "numeric(12,2)", "text[]"
	OID  uint32 `json:"oid"`
}

// StateID is the record id of a slot's position in the state registry.
func StateID(slot string) string { return "postgres," + slot }

// ledgerView is what a scan of the ledger found: the live records of the
// chosen registries and the connector's position.
type ledgerView struct {
	live map[string]map[string]liveRec // registry → id → record
	pos  *Position
	size uint64 // entries scanned: [0, size)
}

type liveRec struct {
	sum  [16]byte        // of the data: a resnapshot skips rows that did not change
	data json.RawMessage // kept only when asked (a restore)
	ver  registry.VersionInfo
}

func dataSum(b []byte) [16]byte {
	s := sha256.Sum256(b)
	return [16]byte(s[:16])
}

// scanOptions choose what scanLedger keeps.
type scanOptions struct {
	registries map[string]bool
	state      string // the state registry, "" for none
	stateID    string
	keepData   bool
	upTo       uint64     // entries [0, upTo)
	before     *time.Time // only entries written at or before it
}

// scanLedger reads the ledger's record entries once, in order, opening
// those of the chosen registries: the index keeps blind ids only, so this
// is how a connector learns which ids are live (a TRUNCATE tombstones
// them all) and a restore what each registry held. Entries are decoded and
// opened on a worker per core, a chunk at a time, and applied in ledger
// order.
func scanLedger(ctx context.Context, dir string, keys *seal.Keyring, guest string, o scanOptions) (*ledgerView, error) {
	v := &ledgerView{live: map[string]map[string]liveRec{}, size: o.upTo}
	blinds := map[string]map[[32]byte]string{}
	for r := range o.registries {
		v.live[r] = map[string]liveRec{}
		blinds[r] = map[[32]byte]string{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan *scanChunk, 2*runtime.GOMAXPROCS(0))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	var applyErr error
	wg.Go(func() {
		for ch := range order {
			<-ch.done
			if applyErr != nil {
				continue
			}
			if applyErr = v.apply(ch, blinds, o); applyErr != nil {
				cancel()
			}
		}
	})
	cur := &scanChunk{done: make(chan struct{})}
	dispatch := func() {
		ch := cur
		cur = &scanChunk{done: make(chan struct{})}
		order <- ch
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; close(ch.done) }()
			ch.open(keys, guest, o)
		}()
	}
	err := ledger.Scan(ctx, ledger.DirFetcher(dir), 0, o.upTo, func(idx uint64, raw []byte) error {
		cur.idx = append(cur.idx, idx)
		cur.raw = append(cur.raw, raw)
		if len(cur.idx) == 1024 {
			dispatch()
		}
		return nil
	})
	if len(cur.idx) > 0 {
		dispatch()
	}
	close(order)
	wg.Wait()
	if err == nil {
		err = applyErr
	}
	if err != nil {
		return nil, fmt.Errorf("scan ledger %s: %w", dir, cmp.Or(applyErr, err))
	}
	return v, nil
}

// scanChunk is a run of ledger entries, opened by one worker.
type scanChunk struct {
	idx  []uint64
	raw  [][]byte
	out  []scanned
	done chan struct{}
}

// scanned is one entry of a chunk as a worker left it.
type scanned struct {
	skip bool
	re   *registry.RecordEntry
	rec  *registry.Record
	err  error
}

func (ch *scanChunk) open(keys *seal.Keyring, guest string, o scanOptions) {
	ch.out = make([]scanned, len(ch.raw))
	for i, raw := range ch.raw {
		out := &ch.out[i]
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			out.err = err
			continue
		}
		// Key events need no replay: the keyring given is the registries',
		// which their Open brought to the ledger's latest generations.
		if e.Type != ledger.TypeRecord || (o.before != nil && e.Time.After(*o.before)) {
			out.skip = true
			continue
		}
		re, err := registry.UnmarshalRecordEntry(e.Payload)
		if err != nil {
			out.err = err
			continue
		}
		if !o.registries[re.Registry] && (o.state == "" || re.Registry != o.state) {
			out.skip = true
			continue
		}
		out.re = re
		if re.Kind != registry.KindTombstone {
			out.rec, out.err = registry.OpenRecordEntry(keys, guest, &e, re)
		}
	}
	ch.raw = nil
}

// apply takes a chunk's entries into the view, in ledger order.
func (v *ledgerView) apply(ch *scanChunk, blinds map[string]map[[32]byte]string, o scanOptions) error {
	for i, s := range ch.out {
		idx := ch.idx[i]
		if s.err != nil {
			return fmt.Errorf("ledger entry %d: %w", idx, s.err)
		}
		if s.skip {
			continue
		}
		re, rec := s.re, s.rec
		if re.Kind == registry.KindTombstone {
			if id, ok := blinds[re.Registry][re.BlindID]; ok {
				delete(v.live[re.Registry], id)
				delete(blinds[re.Registry], re.BlindID)
			}
			continue
		}
		if o.state != "" && re.Registry == o.state {
			if rec.ID == o.stateID {
				var p Position
				if err := json.Unmarshal(rec.Data, &p); err != nil {
					return fmt.Errorf("ledger entry %d: connector position %s: %w", idx, rec.ID, err)
				}
				v.pos = &p
			}
			if !o.registries[re.Registry] {
				continue
			}
		}
		lr := liveRec{ver: rec.VersionInfo}
		lr.ver.Index = idx
		if o.keepData {
			lr.data = rec.Data // a restore: it needs the data, not the sum
		} else {
			lr.sum = dataSum(rec.Data)
		}
		v.live[re.Registry][rec.ID] = lr
		blinds[re.Registry][re.BlindID] = rec.ID
	}
	return nil
}
