package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/pgtest"
)

// TestRestoreRoundTrip: every mapped type goes to the ledger and back into
// a fresh database unchanged, as of the latest entry and as of an earlier
// one; --verify compares row by row and catches a tampered row.
func TestRestoreRoundTrip(t *testing.T) {
	pg, cs := startPG(t)
	pg.Psql("src", `INSERT INTO people VALUES
 (1, 'Ana', '1990-01-02', 12.50, '2024-03-04 05:06:07.123456+02', '\x00ff10', '{a,"b c",NULL,"q\"t"}', '{"k":[1,2]}', 1.5, true, E'line\nnext\ttab \\ back'),
 (2, 'Bo', NULL, NULL, NULL, NULL, '{}', NULL, 'NaN', false, NULL),
 (3, 'Cy', 'infinity', -0.01, '-infinity', '', NULL, '"s"', '-Infinity', NULL, '');
INSERT INTO parcels VALUES ('North,East', 1, 10.25), ('50%', 2, 3);`)
	s := newSite(t)
	cfg := testConfig()
	c := s.connector(t, cs, cfg)
	c.Start(context.Background())
	waitSame(t, s, cs, cfg, c)
	asOf := s.log.Size() - 1
	pg.Psql("src", `UPDATE people SET name = 'Later' WHERE id = 1; INSERT INTO parcels VALUES ('x', 9, 9);`)
	waitSame(t, s, cs, cfg, c)
	c.Close()
	ctx := context.Background()

	// Both ways: the ledger read into a view, and (Live) the registries'
	// index choosing the entries, streamed into COPY.
	var tgt string
	for _, mode := range []string{"", "_live"} {
		o := RestoreOptions{Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID, Config: cfg, Verify: true}
		if mode != "" {
			o.Live = s.reg
		}
		restoreRoundTrip(t, pg, o, mode, asOf)
		if mode == "" {
			tgt = pg.ConnString("restored")
		}
	}

	// Verify catches a row that differs from the ledger.
	pg.Psql("restored", `UPDATE parcels SET area = 11 WHERE no = 1`)
	if err := compareWith(ctx, tgt, s, cfg); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a tampered row passed: %v", err)
	}
}

func compareWith(ctx context.Context, cs string, s *site, cfg Config) error {
	return Compare(ctx, cs, s.log, s.keys, s.c.Guest.ID, cfg)
}

// restoreRoundTrip restores with o into fresh databases named with mode:
// as of the latest entry, as of asOf, and as of a time before anything.
func restoreRoundTrip(t *testing.T, pg *pgtest.Cluster, o RestoreOptions, mode string, asOf uint64) {
	t.Helper()
	ctx := context.Background()
	tgt := pg.CreateDB("restored" + mode)
	res, err := Restore(ctx, withConn(o, tgt))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Tables["public.people"] != 3 || res.Tables["public.parcels"] != 3 {
		t.Fatalf("result %+v", res)
	}
	dump := func(db, table, order string) string {
		return pg.Psql(db, `SELECT string_agg(t::text, '|' ORDER BY `+order+`) FROM `+table+` t`)
	}
	for _, tc := range [][2]string{{"people", "id"}, {"parcels", "region, no"}} {
		if a, b := dump("src", tc[0], tc[1]), dump("restored"+mode, tc[0], tc[1]); a != b {
			t.Errorf("%s:\nsource   %s\nrestored %s", tc[0], a, b)
		}
	}
	if a, b := pg.Psql("src", `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'parcels'::regclass AND contype = 'p'`),
		pg.Psql("restored"+mode, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'parcels'::regclass AND contype = 'p'`); a != b {
		t.Errorf("primary key: source %s, restored %s", a, b)
	}

	// As of an earlier index: the row as it was.
	old := pg.CreateDB("old" + mode)
	if _, err := Restore(ctx, withIndex(withConn(o, old), asOf)); err != nil {
		t.Fatal(err)
	}
	if got := pg.Psql("old"+mode, `SELECT name FROM people WHERE id = 1`); got != "Ana" {
		t.Fatalf("as of index %d: name %q, want Ana", asOf, got)
	}
	if got := pg.Psql("old"+mode, `SELECT count(*) FROM parcels`); got != "2" {
		t.Fatalf("as of index %d: %s parcels, want 2", asOf, got)
	}
	// As of a time before anything was written: no position yet.
	before := time.Unix(0, 0)
	if _, err := Restore(ctx, withTime(withConn(o, pg.CreateDB("empty"+mode)), before)); err == nil {
		t.Fatal("restore as of a time before the connector ran succeeded")
	}

}

func withConn(o RestoreOptions, cs string) RestoreOptions { o.ConnString = cs; return o }
func withIndex(o RestoreOptions, i uint64) RestoreOptions { o.Index = &i; return o }
func withTime(o RestoreOptions, at time.Time) RestoreOptions {
	o.Time, o.Verify = &at, false
	return o
}

// TestAppendCopyText: COPY's text escapes, at the start, middle and end
// of a value and next to each other.
func TestAppendCopyText(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"plain":               "plain",
		"a\\b\tc\nd\re":       `a\\b\tc\nd\re`,
		"\t\\\n":              `\t\\\n`,
		"é\x00\"x\r":          "é\x00\"x\\r",
		"tab at end\t":        `tab at end\t`,
		"\\\\double":          `\\\\double`,
		"mixed\nrun of\ttext": `mixed\nrun of\ttext`,
	} {
		if got := string(appendCopyText([]byte(">"), []byte(in))); got != ">"+want {
			t.Errorf("appendCopyText(%q) = %q, want %q", in, got, ">"+want)
		}
	}
}

// TestRestoreLiveAcrossJobs: with the live versions of thousands of rows
// spread over the ledger by updates and deletes after the snapshot, the
// restore through the registries' index (entries copied out of reused
// bundles into batches of 1,024, batches and COPY buffers reused from
// job to job) gives the source table, row by row, and verifies.
func TestRestoreLiveAcrossJobs(t *testing.T) {
	pg, cs := startPG(t)
	pg.Psql("src", `INSERT INTO people (id, name, born, balance, active)
 SELECT g, 'person ' || g, date '1950-01-01' + g, g / 100.0, g % 2 = 0 FROM generate_series(1, 5000) g`)
	s := newSite(t)
	cfg := testConfig()
	c := s.connector(t, cs, cfg)
	c.Start(context.Background())
	pg.Psql("src", `UPDATE people SET name = 'moved ' || id WHERE id % 3 = 0;
DELETE FROM people WHERE id % 7 = 0;
UPDATE people SET balance = balance + 1 WHERE id % 5 = 0;`)
	waitSame(t, s, cs, cfg, c)
	c.Close()
	res, err := Restore(context.Background(), RestoreOptions{ConnString: pg.CreateDB("restored"), Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID, Config: cfg, Verify: true, Live: s.reg})
	if err != nil {
		t.Fatal(err)
	}
	const rows = `SELECT count(*), string_agg(t::text, '|' ORDER BY id) FROM people t`
	if a, b := pg.Psql("src", rows), pg.Psql("restored", rows); a != b || !res.Verified || res.Tables["public.people"] != 5000-5000/7 {
		t.Fatalf("restored %d rows (verified %v), differing from the source: %v", res.Tables["public.people"], res.Verified, a != b)
	}
}
