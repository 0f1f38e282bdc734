package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/registry"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// statusInterval is how often the connector tells PostgreSQL how far the
// ledger holds the stream (the standby status update), and so how much
// WAL the slot may let go of.
const statusInterval = time.Second

// batchLimit is the writes of one ledger batch the data may take: one is
// kept for the position.
const batchLimit = registry.MaxApplyBatch - 1

// col is one column value of a row: 'n' null, 'u' unchanged TOAST (not
// sent), 't' text.
type col struct {
	kind byte
	data []byte
}

// relation is a source table as the stream describes it.
type relation struct {
	table  string // schema.name
	mapped bool
	ts     TableState
	keyIdx []int // positions of the key columns in ts.Columns
}

func newRelation(table string, ts TableState) (*relation, error) {
	r := &relation{table: table, mapped: true, ts: ts}
	for _, k := range ts.Key {
		i := slices.IndexFunc(ts.Columns, func(c Column) bool { return c.Name == k })
		if i < 0 {
			return nil, stop(fmt.Errorf("table %s: primary key column %s is not among the replicated columns", table, k))
		}
		r.keyIdx = append(r.keyIdx, i)
	}
	return r, nil
}

// change is one row change of a source transaction.
type change struct {
	op   byte // 'I', 'U', 'D', 'T'
	rel  *relation
	old  []col // the old key or row, if sent
	new  []col
	rels []*relation // a truncate's tables
}

// txn is a committed source transaction.
type txn struct {
	end     pglogrepl.LSN
	commit  time.Time
	changes []change
}

// rowID is a row's record id from its key columns.
func (r *relation) rowID(cols []col) (string, error) {
	vals := make([][]byte, len(r.keyIdx))
	for i, k := range r.keyIdx {
		if k >= len(cols) || cols[k].kind != 't' {
			return "", fmt.Errorf("table %s: key column %s missing from the row", r.table, r.ts.Columns[k].Name)
		}
		if err := checkText(cols[k].data); err != nil {
			return "", fmt.Errorf("table %s key column %s: %w", r.table, r.ts.Columns[k].Name, err)
		}
		vals[i] = cols[k].data
	}
	id := recordID(vals)
	if len(id) > 256 {
		return "", fmt.Errorf("table %s: row id %.40q… is %d bytes, more than the 256 a record id may have", r.table, id, len(id))
	}
	return id, nil
}

// rowJSON is a row's record. prev, if a column was not sent (unchanged
// TOAST), gives its value.
func (r *relation) rowJSON(id string, cols []col, prev func(name string) (json.RawMessage, error)) (json.RawMessage, error) {
	out := make([]byte, 0, 256)
	out = append(out, '{')
	for i, c := range r.ts.Columns {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, []byte(c.Name))
		out = append(out, ':')
		v := col{kind: 'n'}
		if i < len(cols) {
			v = cols[i]
		}
		switch v.kind {
		case 'n':
			out = append(out, "null"...)
		case 'u':
			p, err := prev(c.Name)
			if err != nil {
				return nil, fmt.Errorf("table %s row %s column %s: unchanged TOAST value: %w", r.table, id, c.Name, err)
			}
			out = append(out, p...)
		default:
			if err := checkText(v.data); err != nil {
				return nil, fmt.Errorf("table %s row %s column %s: %w", r.table, id, c.Name, err)
			}
			var err error
			if out, err = appendValue(out, c.OID, v.data); err != nil {
				return nil, fmt.Errorf("table %s row %s column %s (%s): %w", r.table, id, c.Name, c.Type, err)
			}
		}
	}
	return append(out, '}'), nil
}

func tupleCols(t *pglogrepl.TupleData) []col {
	if t == nil {
		return nil
	}
	out := make([]col, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = col{kind: c.DataType, data: c.Data}
	}
	return out
}

// stream follows the slot from the position until the connection fails
// or ctx ends. A receiver reads the replication stream and hands whole
// transactions to an applier, which writes them to the ledger, several
// at a time when they queue up.
func (c *Connector) stream(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn) error {
	start := pglogrepl.LSN(c.applied.Load())
	err := pglogrepl.StartReplication(ctx, repl, c.opts.Config.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(c.opts.Config.Publication, "'", "''") + "'"},
	})
	if err != nil {
		if isSlotGone(err) {
			return c.slotLost(err.Error())
		}
		return fmt.Errorf("start replication at %s: %w", start, err)
	}
	c.setStatus(func(s *Status) { s.Connected, s.Phase = true, PhaseStream })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	txns := make(chan *txn, 256)
	var queued atomic.Int64
	var applyErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		applyErr = c.applier(ctx, txns, &queued)
		cancel()
	})
	recvErr := c.receive(ctx, conn, repl, txns, &queued)
	cancel()
	wg.Wait()
	if applyErr != nil && !errors.Is(applyErr, context.Canceled) {
		return applyErr
	}
	return recvErr
}

// slotLost is the error for a slot that is gone or invalidated.
func (c *Connector) slotLost(why string) error {
	return stop(fmt.Errorf("%w: slot %s: %s; the ledger holds the source up to LSN %s and nothing after it was recorded; "+
		"to follow the database again, resnapshot (chancery postgres follow --resnapshot; docs/postgres.md § Resnapshot)",
		ErrSlotLost, c.opts.Config.Slot, why, pglogrepl.LSN(c.applied.Load())))
}

// receive reads the replication stream into transactions.
func (c *Connector) receive(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, out chan<- *txn, queued *atomic.Int64) error {
	rels := map[uint32]*relation{}
	var cur *txn
	var idle pglogrepl.LSN // a position past which nothing of ours is pending
	next := time.Now().Add(statusInterval)
	for {
		if !time.Now().Before(next) {
			flush := max(pglogrepl.LSN(c.applied.Load()), idle)
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: flush}); err != nil {
				return fmt.Errorf("standby status update: %w", err)
			}
			c.confirmed.Store(uint64(flush))
			c.opts.Metrics.confirmed(flush)
			next = time.Now().Add(statusInterval)
		}
		rctx, rcancel := context.WithDeadline(ctx, next)
		msg, err := repl.ReceiveMessage(rctx)
		rcancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("replication stream: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			pe := pgconn.ErrorResponseToPgError(m)
			if isSlotGone(pe) {
				return c.slotLost(pe.Message)
			}
			return fmt.Errorf("replication stream: %w", pe)
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pk, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("keepalive: %w", err)
				}
				c.serverEnd.Store(max(c.serverEnd.Load(), uint64(pk.ServerWALEnd)))
				// The walsender's keepalive names the position it has
				// decoded and sent up to: with no transaction open here
				// and none queued, everything of ours before it is in
				// the ledger, so the slot may let go of that WAL.
				if cur == nil && queued.Load() == 0 {
					idle = max(idle, pk.ServerWALEnd)
				}
				if pk.ReplyRequested {
					next = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				data := append([]byte(nil), m.Data[1:]...) // the tuples point into it
				xld, err := pglogrepl.ParseXLogData(data)
				if err != nil {
					return fmt.Errorf("xlogdata: %w", err)
				}
				c.serverEnd.Store(max(c.serverEnd.Load(), uint64(xld.ServerWALEnd)))
				lm, err := pglogrepl.Parse(xld.WALData)
				if err != nil {
					return fmt.Errorf("pgoutput message at %s: %w", xld.WALStart, err)
				}
				if cur, err = c.handle(ctx, conn, lm, rels, cur, out, queued); err != nil {
					return err
				}
			}
		}
	}
}

// handle takes one pgoutput message; it returns the open transaction.
func (c *Connector) handle(ctx context.Context, conn *pgx.Conn, lm pglogrepl.Message, rels map[uint32]*relation, cur *txn, out chan<- *txn, queued *atomic.Int64) (*txn, error) {
	add := func(ch change) {
		if cur != nil {
			cur.changes = append(cur.changes, ch)
		}
	}
	switch m := lm.(type) {
	case *pglogrepl.RelationMessage:
		table := m.Namespace + "." + m.RelationName
		if _, ok := c.reg[table]; !ok {
			rels[m.RelationID] = &relation{table: table}
			return cur, nil
		}
		ts, err := describe(ctx, conn, table, c.reg[table])
		if err != nil {
			return cur, err
		}
		// The stream's columns are the ones its tuples carry; the
		// catalog gives the key (with REPLICA IDENTITY FULL every
		// column is flagged as identity).
		ts.Columns = ts.Columns[:0]
		for _, rc := range m.Columns {
			if !supported(rc.DataType) {
				return cur, stop(fmt.Errorf("table %s column %s: %w: oid %d", table, rc.Name, ErrUnknownType, rc.DataType))
			}
			var typ string
			if err := conn.QueryRow(ctx, `SELECT format_type($1, $2)`, rc.DataType, rc.TypeModifier).Scan(&typ); err != nil {
				return cur, fmt.Errorf("table %s column %s: type name: %w", table, rc.Name, err)
			}
			ts.Columns = append(ts.Columns, Column{Name: rc.Name, Type: typ, OID: rc.DataType})
		}
		r, err := newRelation(table, ts)
		if err != nil {
			return cur, err
		}
		rels[m.RelationID] = r
	case *pglogrepl.BeginMessage:
		cur = &txn{}
	case *pglogrepl.InsertMessage:
		if r := rels[m.RelationID]; r != nil && r.mapped {
			add(change{op: 'I', rel: r, new: tupleCols(m.Tuple)})
		}
	case *pglogrepl.UpdateMessage:
		if r := rels[m.RelationID]; r != nil && r.mapped {
			add(change{op: 'U', rel: r, old: tupleCols(m.OldTuple), new: tupleCols(m.NewTuple)})
		}
	case *pglogrepl.DeleteMessage:
		if r := rels[m.RelationID]; r != nil && r.mapped {
			add(change{op: 'D', rel: r, old: tupleCols(m.OldTuple)})
		}
	case *pglogrepl.TruncateMessage:
		var rs []*relation
		for _, id := range m.RelationIDs {
			if r := rels[id]; r != nil && r.mapped {
				rs = append(rs, r)
			}
		}
		if len(rs) > 0 {
			add(change{op: 'T', rels: rs})
		}
	case *pglogrepl.CommitMessage:
		if cur == nil {
			return nil, nil
		}
		cur.end, cur.commit = m.TransactionEndLSN, m.CommitTime
		t := cur
		if uint64(t.end) <= c.applied.Load() || len(t.changes) == 0 {
			return nil, nil // in the ledger already, or nothing of ours
		}
		queued.Add(1)
		select {
		case out <- t:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, nil
	}
	return cur, nil
}

// applier writes queued transactions to the ledger.
func (c *Connector) applier(ctx context.Context, in <-chan *txn, queued *atomic.Int64) error {
	for {
		var t *txn
		select {
		case <-ctx.Done():
			return ctx.Err()
		case t = <-in:
		}
		group := []*txn{t}
		n := len(t.changes)
	more:
		for n < batchLimit {
			select {
			case t2 := <-in:
				group = append(group, t2)
				n += len(t2.changes)
			default:
				break more
			}
		}
		err := c.applyTxns(ctx, group)
		queued.Add(-int64(len(group)))
		if err != nil {
			return err
		}
	}
}

// batch is writes on their way to one Apply, with what they change, so
// later changes of the same batch see earlier ones.
type batch struct {
	ws   []registry.Write
	over map[[2]string]json.RawMessage // (registry, id) → data; nil: deleted
	rows int
}

func newBatch() *batch { return &batch{over: map[[2]string]json.RawMessage{}} }

func (b *batch) put(reg, id string, data json.RawMessage) {
	b.ws = append(b.ws, registry.Write{Registry: reg, ID: id, Data: data})
	b.over[[2]string{reg, id}] = data
}

func (b *batch) del(reg, id string) {
	b.ws = append(b.ws, registry.Write{Registry: reg, ID: id, Delete: true})
	b.over[[2]string{reg, id}] = nil
}

// isLive reports whether a record exists, counting the batch.
func (c *Connector) isLive(b *batch, reg, id string) bool {
	if d, ok := b.over[[2]string{reg, id}]; ok {
		return d != nil
	}
	_, ok := c.live[reg][id]
	return ok
}

// applyTxns writes whole transactions, as few batches as the batch limit
// allows; a transaction larger than a batch is written in several, each
// with a position saying how many of its changes are in.
func (c *Connector) applyTxns(ctx context.Context, group []*txn) error {
	pos := c.pos.clone()
	pos.Phase = PhaseStream
	b := newBatch()
	lastEnd := pglogrepl.LSN(c.applied.Load())
	// The lag is measured from the earliest commit a batch holds: the
	// transaction that waited longest.
	var lastCommit time.Time
	for _, t := range group {
		if uint64(t.end) <= c.applied.Load() {
			continue
		}
		skip := 0
		if c.pos.Partial != nil && c.pos.Partial.End == t.end.String() {
			skip = c.pos.Partial.Changes
		}
		for i := skip; i < len(t.changes); i++ {
			ws, err := c.writesOf(ctx, b, &t.changes[i], pos)
			if err != nil {
				return stop(fmt.Errorf("source transaction ending at %s: %w", t.end, err))
			}
			for len(ws) > 0 {
				room := batchLimit - len(b.ws)
				if room == 0 {
					pos.LSN, pos.Partial = lastEnd.String(), &Partial{End: t.end.String(), Changes: i}
					if err := c.flush(ctx, b, pos, lastEnd, lastCommit); err != nil {
						return err
					}
					b = newBatch()
					continue
				}
				take := min(room, len(ws))
				for _, w := range ws[:take] {
					if w.Delete {
						b.del(w.Registry, w.ID)
					} else {
						b.put(w.Registry, w.ID, w.Data)
					}
				}
				b.rows += take
				ws = ws[take:]
			}
		}
		lastEnd = t.end
		if lastCommit.IsZero() {
			lastCommit = t.commit
		}
	}
	pos.LSN, pos.Partial = lastEnd.String(), nil
	if err := c.flush(ctx, b, pos, lastEnd, lastCommit); err != nil {
		return err
	}
	c.opts.Metrics.txns(len(group))
	c.setStatus(func(s *Status) { s.Txns += int64(len(group)) })
	return nil
}

// writesOf turns one change into record writes.
func (c *Connector) writesOf(ctx context.Context, b *batch, ch *change, pos *Position) ([]registry.Write, error) {
	if ch.op == 'T' {
		var ws []registry.Write
		for _, r := range ch.rels {
			if c.opts.Config.Truncate != TruncateTombstones {
				return nil, fmt.Errorf("table %s: %w (services.postgres truncate: %s)", r.table, ErrTruncateRefused, c.opts.Config.Truncate)
			}
			reg := r.ts.Registry
			ids := map[string]bool{}
			for id := range c.live[reg] {
				ids[id] = true
			}
			for k, d := range b.over {
				if k[0] == reg {
					ids[k[1]] = d != nil
				}
			}
			var sorted []string
			for id, ok := range ids {
				if ok {
					sorted = append(sorted, id)
				}
			}
			slices.Sort(sorted)
			for _, id := range sorted {
				ws = append(ws, registry.Write{Registry: reg, ID: id, Delete: true})
			}
		}
		return ws, nil
	}
	r := ch.rel
	reg := r.ts.Registry
	if cur := pos.Tables[r.table]; !sameColumns(cur.Columns, r.ts.Columns) {
		added, dropped := diffColumns(cur.Columns, r.ts.Columns)
		c.logf("postgres connector %s: table %s columns changed: added %v, dropped %v", c.opts.Config.Slot, r.table, added, dropped)
		pos.Tables[r.table] = r.ts
		c.setStatus(func(s *Status) { s.Schema++ })
	}
	switch ch.op {
	case 'D':
		id, err := r.rowID(ch.old)
		if err != nil {
			return nil, err
		}
		if !c.isLive(b, reg, id) {
			return nil, nil
		}
		return []registry.Write{{Registry: reg, ID: id, Delete: true}}, nil
	case 'I', 'U':
		id, err := r.rowID(ch.new)
		if err != nil {
			return nil, err
		}
		var ws []registry.Write
		oldID := id
		if ch.op == 'U' && ch.old != nil {
			if oldID, err = r.rowID(ch.old); err != nil {
				return nil, err
			}
			if oldID != id && c.isLive(b, reg, oldID) {
				ws = append(ws, registry.Write{Registry: reg, ID: oldID, Delete: true})
			}
		}
		prev := func(name string) (json.RawMessage, error) {
			// With REPLICA IDENTITY FULL the old row carries it.
			if i := slices.IndexFunc(r.ts.Columns, func(c Column) bool { return c.Name == name }); i >= 0 && i < len(ch.old) && ch.old[i].kind == 't' {
				return appendValue(nil, r.ts.Columns[i].OID, ch.old[i].data)
			}
			// Otherwise the record's previous version holds it: the
			// registry follows the table exactly.
			return c.previous(ctx, b, reg, oldID, name)
		}
		data, err := r.rowJSON(id, ch.new, prev)
		if err != nil {
			return nil, err
		}
		return append(ws, registry.Write{Registry: reg, ID: id, Data: data}), nil
	}
	return nil, nil
}

// previous returns a field of a record's latest version, counting the
// batch.
func (c *Connector) previous(ctx context.Context, b *batch, reg, id, field string) (json.RawMessage, error) {
	data, ok := b.over[[2]string{reg, id}]
	if !ok {
		rec, err := c.opts.Registries.Get(ctx, reg, id, registry.AsOf{})
		if err != nil {
			return nil, fmt.Errorf("previous version of %s record %s: %w", reg, id, err)
		}
		if rec.Deleted {
			return nil, fmt.Errorf("previous version of %s record %s is a tombstone", reg, id)
		}
		data = rec.Data
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("previous version of %s record %s: %w", reg, id, err)
	}
	v, ok := m[field]
	if !ok {
		return json.RawMessage("null"), nil
	}
	return v, nil
}

// flush writes a batch and the position as one ledger batch; commit is
// the earliest source commit it holds (zero in a snapshot).
func (c *Connector) flush(ctx context.Context, b *batch, pos *Position, end pglogrepl.LSN, commit time.Time) error {
	state, err := json.Marshal(pos)
	if err != nil {
		return stop(fmt.Errorf("position: %w", err))
	}
	ws := append(b.ws, registry.Write{Registry: c.opts.Config.StateRegistry, ID: StateID(c.opts.Config.Slot), Data: state})
	// The batch runs to its end even if the connector is stopped
	// meanwhile: returning early could leave a durable batch the
	// connector's memory does not know of.
	if _, err := c.opts.Registries.Apply(context.WithoutCancel(ctx), ws); err != nil {
		return stop(fmt.Errorf("apply %d writes (position %s): %w", len(ws), pos.LSN, err))
	}
	for _, w := range b.ws {
		m := c.live[w.Registry]
		if m == nil {
			m = map[string]liveRec{}
			c.live[w.Registry] = m
		}
		if w.Delete {
			delete(m, w.ID)
		} else {
			m[w.ID] = liveRec{sum: dataSum(w.Data)}
		}
	}
	c.pos = pos.clone()
	if pos.Phase == PhaseStream {
		c.applied.Store(uint64(end))
		if !commit.IsZero() {
			c.lastCommit.Store(commit.UnixMicro())
			if c.opts.Applied != nil {
				c.opts.Applied(commit, b.rows)
			}
			c.opts.Metrics.durable(commit)
		}
		c.opts.Metrics.applied(end, b.rows)
		c.setStatus(func(s *Status) { s.Streamed += int64(b.rows) })
	}
	return nil
}

func (p *Position) clone() *Position {
	if p == nil {
		return &Position{Tables: map[string]TableState{}}
	}
	q := *p
	q.Tables = make(map[string]TableState, len(p.Tables))
	for k, v := range p.Tables {
		q.Tables[k] = v
	}
	if p.Partial != nil {
		pp := *p.Partial
		q.Partial = &pp
	}
	return &q
}

func sameColumns(a, b []Column) bool { return slices.Equal(a, b) }

func diffColumns(old, cur []Column) (added, dropped []string) {
	has := func(cs []Column, n string) bool {
		return slices.ContainsFunc(cs, func(c Column) bool { return c.Name == n })
	}
	for _, c := range cur {
		if !has(old, c.Name) {
			added = append(added, c.Name)
		}
	}
	for _, c := range old {
		if !has(cur, c.Name) {
			dropped = append(dropped, c.Name)
		}
	}
	return added, dropped
}
