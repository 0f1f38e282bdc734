package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sessionParams make the server's text output what the mapping expects,
// whatever the database's defaults: ISO dates, UTC, hex bytea, and floats
// printed exactly.
var sessionParams = map[string]string{
	"DateStyle": "ISO, YMD", "TimeZone": "UTC", "bytea_output": "hex", "extra_float_digits": "1",
	"IntervalStyle": "postgres", "client_encoding": "UTF8",
}

// connect opens a plain connection (snapshot, catalog queries).
func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, stop(fmt.Errorf("connection string: %w", err))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// connectReplication opens a logical replication connection.
func connectReplication(ctx context.Context, connString string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, stop(fmt.Errorf("connection string: %w", err))
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for replication: %w", err)
	}
	return conn, nil
}

// describe reads a table's columns and primary key from the catalog.
func describe(ctx context.Context, conn *pgx.Conn, table, registryName string) (TableState, error) {
	ts := TableState{Registry: registryName}
	rows, err := conn.Query(ctx, `
SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
       coalesce((SELECT k.ord FROM unnest(i.indkey) WITH ORDINALITY k(att, ord) WHERE k.att = a.attnum), 0)::int
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, table)
	if err != nil {
		return ts, fmt.Errorf("table %s: %w", table, tableErr(err))
	}
	type keyCol struct {
		pos  int
		name string
	}
	var keys []keyCol
	for rows.Next() {
		var col Column
		var pos int
		if err := rows.Scan(&col.Name, &col.OID, &col.Type, &pos); err != nil {
			return ts, fmt.Errorf("table %s: %w", table, err)
		}
		if !supported(col.OID) {
			rows.Close()
			return ts, stop(fmt.Errorf("table %s column %s: %w: %s", table, col.Name, ErrUnknownType, col.Type))
		}
		ts.Columns = append(ts.Columns, col)
		if pos > 0 {
			keys = append(keys, keyCol{pos, col.Name})
		}
	}
	if err := rows.Err(); err != nil {
		return ts, fmt.Errorf("table %s: %w", table, tableErr(err))
	}
	if len(ts.Columns) == 0 {
		return ts, stop(fmt.Errorf("table %s: no columns, or no such table", table))
	}
	if len(keys) == 0 {
		return ts, stop(fmt.Errorf("table %s: %w: records need ids (ALTER TABLE %s ADD PRIMARY KEY …)", table, ErrNoPrimaryKey, table))
	}
	for p := 1; len(ts.Key) < len(keys); p++ {
		for _, k := range keys {
			if k.pos == p {
				ts.Key = append(ts.Key, k.name)
			}
		}
	}
	return ts, nil
}

// tableErr makes a missing table permanent: retrying will not create it.
func tableErr(err error) error {
	var pe *pgconn.PgError
	// 22021: a value not valid in UTF8 (a SQL_ASCII database).
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000" || pe.Code == "22021") {
		return stop(err)
	}
	return err
}

// slotState is a replication slot as pg_replication_slots shows it.
type slotState struct {
	exists  bool
	lost    bool   // invalidated: wal_status = 'lost'
	plugin  string // output plugin
	confirm string // confirmed_flush_lsn
}

func readSlot(ctx context.Context, conn *pgx.Conn, slot string) (slotState, error) {
	var s slotState
	var plugin, status, confirm *string
	err := conn.QueryRow(ctx, `SELECT plugin, wal_status, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&plugin, &status, &confirm)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("slot %s: %w", slot, err)
	}
	s.exists = true
	if plugin != nil {
		s.plugin = *plugin
	}
	s.lost = status != nil && *status == "lost"
	if confirm != nil {
		s.confirm = *confirm
	}
	return s, nil
}

// checkPublication makes sure the publication exists and publishes every
// mapped table.
func checkPublication(ctx context.Context, conn *pgx.Conn, pub string, tables []Table) error {
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication WHERE pubname = $1`, pub).Scan(&n); err != nil {
		return fmt.Errorf("publication %s: %w", pub, err)
	}
	if n == 0 {
		return stop(fmt.Errorf("publication %s does not exist (CREATE PUBLICATION %s FOR TABLE …)", pub, pub))
	}
	for _, t := range tables {
		schema, name, ok := strings.Cut(t.Table, ".")
		if !ok {
			schema, name = "public", t.Table
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3`, pub, schema, name).Scan(&n); err != nil {
			return fmt.Errorf("publication %s: %w", pub, err)
		}
		if n == 0 {
			return stop(fmt.Errorf("publication %s does not publish table %s (ALTER PUBLICATION %s ADD TABLE %s)", pub, t.Table, pub, t.Table))
		}
	}
	return nil
}

// isSlotGone reports whether a replication error means the slot is gone
// or unusable.
func isSlotGone(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "42704": // undefined_object: replication slot does not exist
		return true
	case "55000": // object_not_in_prerequisite_state: invalidated
		return strings.Contains(pe.Message, "replication slot")
	}
	return false
}
