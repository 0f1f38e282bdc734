package postgres

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/jackc/pgx/v5"
)

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	// ConnString reaches the target database, which must not hold the
	// tables yet.
	ConnString string
	Log        *ledger.Log
	Keys       *seal.Keyring
	Guest      string
	// Config is the connector's configuration: its state registry and
	// slot say where the tables' columns were recorded.
	Config Config
	// Registries chooses which mapped registries to restore (all if empty).
	Registries []string
	// Index restores as of a ledger index (entries [0, Index]); Time as of
	// a time. Neither: the latest.
	Index *uint64
	Time  *time.Time
	// Verify reads every restored table back and compares it with the
	// ledger, row by row.
	Verify   bool
	Progress func(table string, rows int64)
	// TextCOPY copies every table in COPY's text format, even where each
	// column has a binary form (copybin.go). The rows are the same; it is
	// there to compare the two, and as a way around should a binary
	// encoder here ever be wrong.
	TextCOPY bool
	// Live, if set, is the guest's registries opened over Log (the site
	// stopped, as chancery restore postgres runs): their index says which
	// version of each record is live at the chosen point, so only those
	// entries are read and opened, and rows stream into COPY as the
	// ledger is read rather than after it (restore_index.go).
	Live *registry.Registries
}

// RestoreResult says what was restored.
type RestoreResult struct {
	Tables   map[string]int64 // rows, by table
	Verified bool
	AsOf     uint64 // ledger entries read: [0, AsOf)
}

// Restore writes registries, as of a ledger index or time, into fresh
// tables of a PostgreSQL database with COPY, creating each table from the
// columns the connector last recorded for it (as of the same point).
func Restore(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	if o.Live != nil {
		return restoreLive(ctx, o)
	}
	v, err := o.view(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, o.ConnString)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer conn.Close(context.Background())
	res := &RestoreResult{Tables: map[string]int64{}, AsOf: v.size}
	for _, t := range o.tables(v.pos) {
		ts := v.pos.Tables[t.Table]
		n, err := restoreTable(ctx, conn, t.Table, ts, mapRows(ts.Columns, v.live[t.Registry]), o.TextCOPY, o.Progress)
		if err != nil {
			return res, fmt.Errorf("restore %s into %s: %w", t.Registry, t.Table, err)
		}
		res.Tables[t.Table] = n
	}
	if o.Verify {
		for _, t := range o.tables(v.pos) {
			if err := compareTable(ctx, conn, t.Table, v.pos.Tables[t.Table], v.live[t.Registry]); err != nil {
				return res, fmt.Errorf("restore: verify: %w", err)
			}
		}
		res.Verified = true
	}
	return res, nil
}

// point waits for the ledger to publish what it holds, and returns how
// many entries the restore reads (to Index, or all) and how many are
// published.
func (o *RestoreOptions) point(ctx context.Context) (size, published uint64, err error) {
	size = o.Log.Size()
	if _, _, err := o.Log.WaitPublished(ctx, size); err != nil {
		return 0, 0, fmt.Errorf("restore: wait for the ledger to publish: %w", err)
	}
	published = size
	if o.Index != nil {
		if *o.Index >= size {
			return 0, 0, fmt.Errorf("restore: ledger index %d: the ledger holds %d entries", *o.Index, size)
		}
		size = *o.Index + 1
	}
	return size, published, nil
}

// view scans the ledger as of the chosen point.
func (o *RestoreOptions) view(ctx context.Context) (*ledgerView, error) {
	size, _, err := o.point(ctx)
	if err != nil {
		return nil, err
	}
	regs := map[string]bool{}
	for _, t := range o.Config.Tables {
		regs[t.Registry] = true
	}
	v, err := scanLedger(ctx, o.Log.Dir(), o.Keys, o.Guest, scanOptions{registries: regs, state: o.Config.StateRegistry,
		stateID: StateID(o.Config.Slot), keepData: true, upTo: size, before: o.Time})
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if v.pos == nil {
		return nil, fmt.Errorf("restore: the ledger holds no position of connector %s at that point: no table columns recorded", o.Config.Slot)
	}
	for _, want := range o.Registries {
		if !regs[want] {
			return nil, fmt.Errorf("restore: registry %s is not mapped by connector %s", want, o.Config.Slot)
		}
	}
	return v, nil
}

// tables lists the chosen mappings that have recorded columns.
func (o *RestoreOptions) tables(pos *Position) []Table {
	var out []Table
	for _, t := range o.Config.Tables {
		if len(o.Registries) > 0 && !slices.Contains(o.Registries, t.Registry) {
			continue
		}
		if !strings.Contains(t.Table, ".") {
			t.Table = "public." + t.Table
		}
		if _, ok := pos.Tables[t.Table]; ok {
			out = append(out, t)
		}
	}
	return out
}

// restoreTable creates a table and copies the records into it, as
// pg_restore does: the table bare, COPY (FREEZE: the table is new in the
// same transaction, so its rows need no later freezing), then the primary
// key, built once over all rows rather than row by row.
//
// The rows go in COPY's binary format where every column has a binary
// encoder, and in its text format otherwise; a value with no exact binary
// form here rolls the binary attempt back and the table is copied again
// as text.
func restoreTable(ctx context.Context, conn *pgx.Conn, table string, ts TableState, rows rowSource, text bool, progress func(string, int64)) (int64, error) {
	if !text && binaryColumns(ts.Columns) {
		n, err := copyTable(ctx, conn, table, ts, rows, true, progress)
		if !errors.Is(err, errNotBinary) {
			return n, err
		}
	}
	return copyTable(ctx, conn, table, ts, rows, false, progress)
}

// copyTable is one attempt of restoreTable, in one format.
func copyTable(ctx context.Context, conn *pgx.Conn, table string, ts TableState, rows rowSource, binaryFormat bool, progress func(string, int64)) (int64, error) {
	var defs []string
	for _, c := range ts.Columns {
		defs = append(defs, pgx.Identifier{c.Name}.Sanitize()+" "+c.Type)
	}
	var keys []string
	for _, k := range ts.Key {
		keys = append(keys, pgx.Identifier{k}.Sanitize())
	}
	if schema, _, ok := strings.Cut(table, "."); ok && schema != "public" {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return 0, err
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "CREATE TABLE "+quoteTable(table)+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	var n int64
	notBinary := false // a value had no binary form: the caller copies as text
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		// Rows are encoded on a worker per core, a chunk each, and
		// written in order while COPY sends them; the pipe is closed
		// with the first error, which COPY then returns.
		type chunk struct {
			buf  []byte
			rows int
			err  error
			done chan struct{}
		}
		order := make(chan *chunk, 2*runtime.GOMAXPROCS(0))
		sem := make(chan struct{}, runtime.GOMAXPROCS(0))
		// Buffers COPY has sent go back to the workers: a million rows
		// are a thousand jobs, and a new buffer for each was a tenth of
		// what a restore allocated.
		free := make(chan []byte, cap(order)+cap(sem))
		go func() {
			defer close(order)
			err := rows(wctx, binaryFormat, func(encode func([]byte) ([]byte, int, error)) error {
				ch := &chunk{done: make(chan struct{})}
				select {
				case order <- ch:
				case <-wctx.Done():
					return wctx.Err()
				}
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; close(ch.done) }()
					var buf []byte
					select {
					case buf = <-free:
					default:
					}
					ch.buf, ch.rows, ch.err = encode(buf[:0])
				}()
				return nil
			})
			if err != nil {
				ch := &chunk{err: err, done: make(chan struct{})}
				close(ch.done)
				select {
				case order <- ch:
				case <-wctx.Done():
				}
			}
		}()
		failed := false
		if binaryFormat {
			if _, err := pw.Write(copyBinaryHeader); err != nil {
				failed = true
				cancel()
			}
		}
		for ch := range order {
			<-ch.done
			if failed {
				continue
			}
			if ch.err != nil {
				notBinary = errors.Is(ch.err, errNotBinary)
				pw.CloseWithError(ch.err)
				failed = true
				cancel()
				continue
			}
			if _, err := pw.Write(ch.buf); err != nil {
				failed = true
				cancel()
				continue
			}
			// The pipe's Write returns once COPY has read all of it.
			select {
			case free <- ch.buf:
			default:
			}
			n += int64(ch.rows)
			if progress != nil {
				progress(table, n)
			}
		}
		if !failed && binaryFormat {
			if _, err := pw.Write(copyBinaryTrailer); err != nil {
				failed = true
			}
		}
		if !failed {
			pw.Close()
		}
	})
	format := ""
	if binaryFormat {
		format = "FORMAT binary, "
	}
	_, err = conn.PgConn().CopyFrom(ctx, pr, "COPY "+quoteTable(table)+" FROM STDIN WITH ("+format+"FREEZE)")
	pr.Close()
	cancel()
	wg.Wait() // n and notBinary are final
	if notBinary {
		return n, errNotBinary
	}
	if err != nil {
		return n, fmt.Errorf("copy: %w", err)
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+quoteTable(table)+" ADD PRIMARY KEY ("+strings.Join(keys, ", ")+")"); err != nil {
		return n, fmt.Errorf("primary key: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return n, err
	}
	if progress != nil {
		progress(table, n)
	}
	return n, nil
}

// rowSource hands restoreTable the rows to copy, in order, as jobs: each
// job, run on a worker, appends its rows' COPY lines to a buffer. It
// stops at job's first error (the copy failed or was cancelled).
// binary chooses COPY's binary format for the rows (text otherwise); a
// job returns its buffer and how many rows it holds.
type rowSource func(ctx context.Context, binary bool, job func(encode func([]byte) ([]byte, int, error)) error) error

// mapRows copies records held in memory (a view of the ledger), in id
// order, 4,096 to a job.
func mapRows(cols []Column, recs map[string]liveRec) rowSource {
	return func(ctx context.Context, binary bool, job func(func([]byte) ([]byte, int, error)) error) error {
		ids := make([]string, 0, len(recs))
		for id := range recs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for start := 0; start < len(ids); start += 4096 {
			part := ids[start:min(start+4096, len(ids))]
			err := job(func(buf []byte) ([]byte, int, error) {
				buf = slices.Grow(buf, 256*len(part))
				enc := newRowEncoder(cols, binary)
				for _, id := range part {
					var err error
					if buf, err = enc.appendRow(buf, recs[id].data); err != nil {
						return nil, 0, fmt.Errorf("record %s: %w", id, err)
					}
				}
				return buf, len(part), nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// rowEncoder turns records into rows of COPY's text format (lines), or of
// its binary format (tuples, copybin.go). One is used by one job at a
// time: it keeps its buffers from row to row, so a row costs no
// allocation unless a value needs pgText's general path (an array, bytea,
// a string with escapes).
type rowEncoder struct {
	cols   []Column
	names  []string
	kinds  []kind // per column; kArray for an array
	vals   [][]byte
	binary bool
}

// kArray marks an array column in a rowEncoder: pgText's general path.
const kArray kind = 255

func newRowEncoder(cols []Column, binary bool) *rowEncoder {
	e := &rowEncoder{cols: cols, names: make([]string, len(cols)), kinds: make([]kind, len(cols)), vals: make([][]byte, len(cols)), binary: binary}
	for i, c := range cols {
		e.names[i] = c.Name
		if _, ok := arrayElems[c.OID]; ok {
			e.kinds[i] = kArray
		} else if k, ok := scalarKinds[c.OID]; ok {
			e.kinds[i] = k
		} else {
			e.kinds[i] = kArray // unknown: pgText names the type
		}
	}
	return e
}

// appendRow appends a record's data as a row of COPY's text or binary
// format.
func (e *rowEncoder) appendRow(out []byte, data []byte) ([]byte, error) {
	if !e.fields(data) {
		return out, errNotObject
	}
	return e.appendVals(out)
}

// errNotObject refuses a record whose data is not a JSON object.
var errNotObject = errors.New("record is not a JSON object")

// appendVals appends the row of the values in e.vals, taken out of a
// record by fields or, in the same walk as the opened body's check, by
// registry.DataReader.OpenFields.
func (e *rowEncoder) appendVals(out []byte) ([]byte, error) {
	if e.binary {
		return e.appendBinaryRow(out)
	}
	return e.appendTextRow(out)
}

// fields takes the columns' members out of an opened record's data: valid
// JSON, checked as part of its sealed body, which it does not check again.
func (e *rowEncoder) fields(data []byte) bool {
	return registry.FieldsOfValidInto(e.vals, data, e.names)
}

// appendTextRow appends the values in e.vals as a line of COPY's text
// format.
func (e *rowEncoder) appendTextRow(out []byte) ([]byte, error) {
	for i, v := range e.vals {
		if i > 0 {
			out = append(out, '\t')
		}
		if v == nil || string(v) == "null" {
			out = append(out, `\N`...)
			continue
		}
		// The common values go straight from the JSON text into the
		// line: what pgText would return for them, without building it.
		switch k := e.kinds[i]; {
		case k == kBool:
			if string(v) == "true" {
				out = append(out, 't')
			} else {
				out = append(out, 'f')
			}
			continue
		case (k == kNumber || k == kFloat) && v[0] != '"':
			out = append(out, v...) // digits, signs, '.', 'e': nothing to escape
			continue
		case k != kArray && k != kBytea && k != kJSON && v[0] == '"' && bytes.IndexByte(v, '\\') < 0:
			out = appendCopyText(out, v[1:len(v)-1])
			continue
		}
		text, err := pgText(e.cols[i].OID, v)
		if err != nil {
			return out, fmt.Errorf("column %s: %w", e.cols[i].Name, err)
		}
		out = appendCopyText(out, text)
	}
	return append(out, '\n'), nil
}

// members returns the raw values of a record's members named by the
// columns, in column order (nil where absent).
func members(data []byte, cols []Column) ([][]byte, error) {
	return fieldsOf(registry.Fields, data, cols)
}

// fieldsOf returns the columns' members of data with fields
// (registry.Fields, or FieldsOfValid for data known valid).
func fieldsOf(fields func([]byte, []string) ([][]byte, bool), data []byte, cols []Column) ([][]byte, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	vals, ok := fields(data, names)
	if !ok {
		return nil, errors.New("record is not a JSON object")
	}
	return vals, nil
}

// pgText is the PostgreSQL text input of a record's JSON value: the
// mapping's inverse.
func pgText(oid uint32, v json.RawMessage) ([]byte, error) {
	if elem, ok := arrayElems[oid]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		out := []byte{'{'}
		for i, it := range items {
			if i > 0 {
				out = append(out, ',')
			}
			if string(it) == "null" {
				out = append(out, "NULL"...)
				continue
			}
			var t []byte
			var err error
			if it[0] == '[' {
				t, err = pgText(oid, it) // a nested dimension: its own braces
				if err != nil {
					return nil, err
				}
				out = append(out, t...)
				continue
			}
			if t, err = pgText(elem, it); err != nil {
				return nil, err
			}
			out = append(out, '"')
			for _, b := range t {
				if b == '"' || b == '\\' {
					out = append(out, '\\')
				}
				out = append(out, b)
			}
			out = append(out, '"')
		}
		return append(out, '}'), nil
	}
	k, ok := scalarKinds[oid]
	if !ok {
		return nil, fmt.Errorf("%w: oid %d", ErrUnknownType, oid)
	}
	switch k {
	case kBool:
		if string(v) == "true" {
			return []byte("t"), nil
		}
		return []byte("f"), nil
	case kJSON:
		return v, nil
	case kNumber, kFloat:
		if v[0] != '"' {
			return v, nil
		}
	}
	var s string
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 {
		s = string(v[1 : len(v)-1])
	} else if err := json.Unmarshal(v, &s); err != nil {
		return nil, err
	}
	if k == kBytea {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("bytea: %w", err)
		}
		return append([]byte(`\x`), hex.EncodeToString(raw)...), nil
	}
	return []byte(s), nil
}

// appendCopyText escapes a value for COPY's text format: the runs
// between the bytes to escape are appended whole (most values have none).
func appendCopyText(out, v []byte) []byte {
	start := 0
	for i, b := range v {
		var esc byte
		switch b {
		case '\\':
			esc = '\\'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case '\t':
			esc = 't'
		default:
			continue
		}
		out = append(append(out, v[start:i]...), '\\', esc)
		start = i + 1
	}
	return append(out, v[start:]...)
}

// ErrMismatch: a table and the ledger differ.
var ErrMismatch = errors.New("table and ledger differ")

// readTable reads a table's rows as records, by id.
func readTable(ctx context.Context, conn *pgx.Conn, table string, ts TableState) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := eachRow(ctx, conn, table, ts, func(id string, data json.RawMessage) error {
		out[id] = data
		return nil
	})
	return out, err
}

// eachRow reads a table's rows, at the connection's transaction snapshot,
// as records: fn gets each row's id and record. A row the mapping refuses
// stops it, permanently.
func eachRow(ctx context.Context, conn *pgx.Conn, table string, ts TableState, fn func(id string, data json.RawMessage) error) error {
	r, err := newRelation(table, ts)
	if err != nil {
		return err
	}
	names := make([]string, len(ts.Columns))
	for i, c := range ts.Columns {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	rr := conn.PgConn().ExecParams(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+quoteTable(table), nil, nil, nil, nil)
	cols := make([]col, len(ts.Columns))
	for rr.NextRow() {
		for i, v := range rr.Values() {
			if v == nil {
				cols[i] = col{kind: 'n'}
			} else {
				cols[i] = col{kind: 't', data: v}
			}
		}
		id, err := r.rowID(cols)
		if err == nil {
			var data json.RawMessage
			if data, err = r.rowJSON(id, cols, nil); err == nil {
				err = fn(id, data)
				if err != nil {
					rr.Close()
					return err
				}
			}
		}
		if err != nil {
			rr.Close()
			return stop(err)
		}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("read %s: %w", table, tableErr(err))
	}
	return nil
}

// compareTable checks a table against records, row by row; the first
// differences are named.
func compareTable(ctx context.Context, conn *pgx.Conn, table string, ts TableState, recs map[string]liveRec) error {
	rows, err := readTable(ctx, conn, table, ts)
	if err != nil {
		return err
	}
	var diffs []string
	for id, lr := range recs {
		got, ok := rows[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("record %s has no row", id))
		case !sameJSON(got, project(lr.data, ts.Columns)):
			diffs = append(diffs, fmt.Sprintf("row %s: table %s, ledger %s", id, got, lr.data))
		}
	}
	for id := range rows {
		if _, ok := recs[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("row %s has no record", id))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 5 {
			diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
		}
		return fmt.Errorf("%w: table %s (%d rows), ledger (%d records): %s", ErrMismatch, table, len(rows), len(recs), strings.Join(diffs, "; "))
	}
	return nil
}

// project keeps a record's fields that are columns of the table now,
// with null for a column the record lacks: a record written before a
// column was dropped keeps it until its row changes next, and one written
// before a column was added lacks it (docs/postgres.md § Schema changes).
func project(data json.RawMessage, cols []Column) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return data
	}
	out := []byte{'{'}
	for i, c := range cols {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, []byte(c.Name))
		out = append(out, ':')
		if v, ok := m[c.Name]; ok {
			out = append(out, v...)
		} else {
			out = append(out, "null"...)
		}
	}
	return append(out, '}')
}

// sameJSON compares two JSON values as values (numbers by their digits).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Compare checks that each mapped table of a database equals its registry
// as the ledger holds it now, row by row: what a connector that has caught
// up, or a restore, must give.
func Compare(ctx context.Context, connString string, log *ledger.Log, keys *seal.Keyring, guest string, cfg Config) error {
	o := RestoreOptions{Log: log, Keys: keys, Guest: guest, Config: cfg}
	v, err := o.view(ctx)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, t := range o.tables(v.pos) {
		if err := compareTable(ctx, conn, t.Table, v.pos.Tables[t.Table], v.live[t.Registry]); err != nil {
			return err
		}
	}
	return nil
}
