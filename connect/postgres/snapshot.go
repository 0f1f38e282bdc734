package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// runOnce connects, snapshots if the ledger holds no streaming position
// (or a resnapshot was asked for), and streams until the connection fails.
func (c *Connector) runOnce(ctx context.Context) error {
	conn, err := connect(ctx, c.opts.ConnString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := checkPublication(ctx, conn, c.opts.Config.Publication, c.opts.Config.Tables); err != nil {
		return err
	}
	tables := map[string]TableState{}
	for _, t := range c.opts.Config.Tables {
		ts, err := describe(ctx, conn, t.Table, t.Registry)
		if err != nil {
			return err
		}
		tables[t.Table] = ts
	}
	repl, err := connectReplication(ctx, c.opts.ConnString)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())
	slot, err := readSlot(ctx, conn, c.opts.Config.Slot)
	if err != nil {
		return err
	}
	if !c.resnap && c.pos != nil && c.pos.Phase == PhaseStream {
		switch {
		case !slot.exists:
			return c.slotLost("it does not exist (dropped?)")
		case slot.lost:
			return c.slotLost("PostgreSQL invalidated it (wal_status lost: max_slot_wal_keep_size exceeded)")
		}
		return c.stream(ctx, conn, repl)
	}
	if slot.exists {
		// A slot of this name with no streaming position in the ledger is
		// ours only if the ledger shows an unfinished snapshot, or the
		// operator asked for a resnapshot.
		if c.pos == nil && !c.resnap {
			return stop(fmt.Errorf("slot %s exists but the ledger holds no position for it: is another connector using it? drop it, or resnapshot to take it over", c.opts.Config.Slot))
		}
		if err := pglogrepl.DropReplicationSlot(ctx, repl, c.opts.Config.Slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
			return fmt.Errorf("drop slot %s to snapshot again: %w", c.opts.Config.Slot, err)
		}
	}
	if err := c.snapshot(ctx, conn, repl, tables); err != nil {
		return err
	}
	c.resnap = false
	return c.stream(ctx, conn, repl)
}

// snapshot creates the slot with an exported snapshot and fills the
// registries from it, in a REPEATABLE READ transaction at that snapshot:
// the stream then starts at the slot's consistent point, so no change
// falls between the two and none is seen twice. Rows whose record already
// holds the same data (a resnapshot) get no new version; records whose
// row is gone get tombstones. The last batch carries the streaming
// position; a connector killed before it snapshots again.
func (c *Connector) snapshot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, tables map[string]TableState) error {
	c.setStatus(func(s *Status) { s.Connected, s.Phase = true, PhaseSnapshot })
	if c.pos == nil {
		// Claim the slot in the ledger before creating it: a connector
		// killed between the two finds its own slot on restart, and
		// snapshots again rather than refusing a slot it cannot tell
		// from another's.
		claim := &Position{Slot: c.opts.Config.Slot, Phase: PhaseSnapshot, Tables: tables}
		if err := c.flush(ctx, newBatch(), claim, 0, timeZero); err != nil {
			return err
		}
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, c.opts.Config.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return fmt.Errorf("create slot %s: %w", c.opts.Config.Slot, err)
	}
	cp, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("slot %s consistent point %q: %w", c.opts.Config.Slot, res.ConsistentPoint, err)
	}
	c.logf("postgres connector %s: snapshot %s at %s", c.opts.Config.Slot, res.SnapshotName, cp)
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fmt.Errorf("snapshot transaction: %w", err)
	}
	defer conn.Exec(context.Background(), "ROLLBACK")
	if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+res.SnapshotName+"'"); err != nil {
		return fmt.Errorf("snapshot transaction: set snapshot %s: %w", res.SnapshotName, err)
	}
	pos := &Position{Slot: c.opts.Config.Slot, Phase: PhaseSnapshot, LSN: cp.String(), Snapshot: res.SnapshotName, Tables: tables}
	w := c.newSnapshotWriter(ctx)
	defer w.stop()
	b := newBatch()
	seen := map[string]map[string]bool{}
	for _, t := range c.opts.Config.Tables {
		ts := tables[t.Table]
		seen[t.Registry] = map[string]bool{}
		err := eachRow(ctx, conn, t.Table, ts, func(id string, data json.RawMessage) error {
			seen[t.Registry][id] = true
			if lr, ok := c.live[t.Registry][id]; ok && lr.sum == dataSum(data) {
				return nil
			}
			b.put(t.Registry, id, data)
			b.rows++
			if len(b.ws) == batchLimit {
				if err := w.write(b); err != nil {
					return err
				}
				b = newBatch()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshot of %s: %w", t.Table, err)
		}
	}
	// Records whose rows are gone (a resnapshot after a lost slot).
	for _, t := range c.opts.Config.Tables {
		var gone []string
		for id := range c.live[t.Registry] {
			if !seen[t.Registry][id] {
				gone = append(gone, id)
			}
		}
		slices.Sort(gone)
		for _, id := range gone {
			b.del(t.Registry, id)
			b.rows++
			if len(b.ws) == batchLimit {
				if err := w.write(b); err != nil {
					return err
				}
				b = newBatch()
			}
		}
	}
	// Every batch before the last is durable before the last, which
	// carries the streaming position, is written.
	if err := w.stop(); err != nil {
		return err
	}
	pos.Phase = PhaseStream
	if err := c.flush(ctx, b, pos, cp, timeZero); err != nil {
		return err
	}
	c.opts.Metrics.snapshotRows(b.rows)
	c.setStatus(func(s *Status) { s.Snapshot += int64(b.rows) })
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("snapshot transaction: %w", err)
	}
	c.logf("postgres connector %s: snapshot done, streaming from %s", c.opts.Config.Slot, cp)
	return nil
}

// quoteTable quotes schema.name.
func quoteTable(t string) string {
	schema, name, ok := strings.Cut(t, ".")
	if !ok {
		return pgx.Identifier{t}.Sanitize()
	}
	return pgx.Identifier{schema, name}.Sanitize()
}

// snapshotWriter writes a snapshot's batches on a worker per core while
// the rows of the next are read: a snapshot's rows are distinct records,
// so their batches may land in any order, and they carry no position (a
// connector killed mid-snapshot snapshots again: the slot's claim is in
// the ledger). Only the last batch, written after stop, carries the
// streaming position.
type snapshotWriter struct {
	c    *Connector
	in   chan *batch
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	done bool
}

func (c *Connector) newSnapshotWriter(ctx context.Context) *snapshotWriter {
	w := &snapshotWriter{c: c, in: make(chan *batch, 2)}
	for range max(runtime.GOMAXPROCS(0), 2) {
		w.wg.Go(func() {
			for b := range w.in {
				if w.failed() != nil {
					continue
				}
				// As in flush: a batch runs to its end once begun.
				if _, err := c.opts.Registries.Apply(context.WithoutCancel(ctx), b.ws); err != nil {
					w.mu.Lock()
					w.err = cmp.Or(w.err, stop(fmt.Errorf("snapshot: apply %d writes: %w", len(b.ws), err)))
					w.mu.Unlock()
					continue
				}
				c.opts.Metrics.snapshotRows(b.rows)
				c.setStatus(func(s *Status) { s.Snapshot += int64(b.rows) })
			}
		})
	}
	return w
}

func (w *snapshotWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// write queues a batch; the connector's view of live records moves at
// once (a failed batch stops the connector, whose restart reads the
// ledger again).
func (w *snapshotWriter) write(b *batch) error {
	if err := w.failed(); err != nil {
		return err
	}
	for _, wr := range b.ws {
		m := w.c.live[wr.Registry]
		if m == nil {
			m = map[string]liveRec{}
			w.c.live[wr.Registry] = m
		}
		if wr.Delete {
			delete(m, wr.ID)
		} else {
			m[wr.ID] = liveRec{sum: dataSum(wr.Data)}
		}
	}
	w.in <- b
	return nil
}

// stop waits for every queued batch and returns the first error.
func (w *snapshotWriter) stop() error {
	if !w.done {
		w.done = true
		close(w.in)
		w.wg.Wait()
	}
	return w.failed()
}
