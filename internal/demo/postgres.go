package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chancery-gov/chancery/charter"
	pgconnect "github.com/chancery-gov/chancery/connect/postgres"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/pgcluster"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// pgSchema is the civil service register the Demo Republic keeps in
// PostgreSQL (found maps public.civil_servants to civil-service). rev
// counts each row's changes, so the ledger can be checked to hold every
// change once: a record's version equals its row's rev.
const pgSchema = `
CREATE TABLE civil_servants (servant_no text PRIMARY KEY, name text NOT NULL, ministry text NOT NULL,
  grade int NOT NULL, salary numeric(10,2) NOT NULL, hired date NOT NULL, updated timestamptz NOT NULL DEFAULT now(), rev int NOT NULL DEFAULT 1);
CREATE PUBLICATION chancery_demo FOR TABLE civil_servants;
`

// pgStep is the demo's --postgres step: a throwaway PostgreSQL cluster
// whose civil service table the home follows live, the embassy after an
// activation, and the home again after failback. A nil *pgStep (no
// --postgres, or PostgreSQL not installed) does nothing.
type pgStep struct {
	pc       *pgcluster.Cluster
	pgDir    string // the cluster's directory, removed at close
	db       *pgx.Conn
	connFile string
	guest    string
	rows     int    // rows inserted so far (servant numbers 1..rows)
	last     uint64 // a WAL position inside the last change (change)
	say      func(string, ...any)
	rep      *Report
}

// startPostgres starts the cluster and fills the table, before the home
// starts; without PostgreSQL it says so and the story goes on without.
func startPostgres(ctx context.Context, opts Options, dir string, c *charter.Charter, rep *Report, say func(string, ...any)) (*pgStep, error) {
	if !opts.Postgres {
		return nil, nil
	}
	bin, err := pgcluster.FindBin()
	if err != nil {
		say("== PostgreSQL is not installed here (%v): the --postgres step is skipped", err)
		return nil, nil
	}
	say("== PostgreSQL: the civil service register lives in a database at home (a throwaway cluster, %s)", bin)
	// A directory of its own, outside the state: as root the server runs
	// as the postgres user, which must reach it.
	pgDir, err := os.MkdirTemp("", "chancery-demo-pg-")
	if err != nil {
		return nil, err
	}
	pc, err := pgcluster.Start(bin, pgDir)
	if err != nil {
		os.RemoveAll(pgDir)
		return nil, err
	}
	p := &pgStep{pc: pc, pgDir: pgDir, connFile: filepath.Join(dir, "postgres.conn"), guest: c.Guest.ID, say: say, rep: rep}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	var cs string
	if cs, err = pc.CreateDB("registers"); err != nil {
		return nil, err
	}
	if _, err = pc.Psql("registers", pgSchema); err != nil {
		return nil, err
	}
	if p.db, err = pgx.Connect(ctx, cs); err != nil {
		return nil, fmt.Errorf("demo: postgres: %w", err)
	}
	if err = p.insert(ctx, 200); err != nil {
		return nil, err
	}
	// The connection string is the site's secret: a file only its user
	// reads, named by the site config, never in the charter.
	if err = os.WriteFile(p.connFile, []byte(cs+"\n"), 0o600); err != nil {
		return nil, err
	}
	say("   table %s: %d rows; the charter maps it to registry %s (services.postgres, signed); the sites' configs name the database (postgres.conn_file, mode 0600)",
		found.PostgresTable, p.rows, found.PostgresRegistry)
	return p, nil
}

func (p *pgStep) close() {
	if p == nil {
		return
	}
	if p.db != nil {
		p.db.Close(context.Background())
	}
	p.pc.Stop()
	os.RemoveAll(p.pgDir)
}

// homeConfig is the home's site config section naming the database.
func (p *pgStep) homeConfig() string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("postgres:\n  conn_file: %s\n", p.connFile)
}

// guestConfig is the same for an embassy's guest: embassy-north follows
// the database once it is activated.
func (p *pgStep) guestConfig(site string) string {
	if p == nil || site != "embassy-north" {
		return ""
	}
	return fmt.Sprintf("    postgres:\n      conn_file: %s\n", p.connFile)
}

// insert adds n rows in one transaction.
func (p *pgStep) insert(ctx context.Context, n int) error {
	err := p.change(ctx, `INSERT INTO civil_servants (servant_no, name, ministry, grade, salary, hired)
		SELECT 'CS-'||lpad(i::text, 5, '0'), 'Servant '||i, (ARRAY['Interior','Justice','Finance','Health'])[1 + i % 4], 1 + i % 12, 1800 + (i % 50) * 37.5, date '2001-01-01' + i
		FROM generate_series($1::int, $2::int) i`, p.rows+1, p.rows+n)
	if err != nil {
		return fmt.Errorf("demo: postgres: insert: %w", err)
	}
	p.rows += n
	return nil
}

// promote changes every k-th row (a new grade and salary, rev + 1).
func (p *pgStep) promote(ctx context.Context, k int) error {
	err := p.change(ctx, `UPDATE civil_servants SET grade = grade + 1, salary = salary + 100, updated = now(), rev = rev + 1
		WHERE substr(servant_no, 4)::int % $1 = 0`, k)
	if err != nil {
		return fmt.Errorf("demo: postgres: update: %w", err)
	}
	return nil
}

// change runs one statement in a transaction and remembers a WAL
// position inside it: a connector whose position in the ledger reaches
// it holds the transaction (its end is later, and nothing else of ours
// commits in between).
func (p *pgStep) change(ctx context.Context, sql string, args ...any) error {
	tx, err := p.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return err
	}
	var lsn string
	if err := tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	if p.last, err = pglsn(lsn); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// waitCaughtUp polls a site's status until its connector runs and its
// position in the ledger covers the last change made to the table.
func (p *pgStep) waitCaughtUp(ctx context.Context, url string, timeout time.Duration) (*siteapi.PostgresStatus, error) {
	cc := &siteapi.ContinuityClient{BaseURL: url, Guest: p.guest}
	start := time.Now()
	var last *siteapi.PostgresStatus
	for time.Since(start) < timeout {
		st, err := cc.Status(ctx)
		if err != nil {
			return nil, err
		}
		if last = st.Postgres; last != nil && last.Running && last.Phase == "stream" {
			if got, err := pglsn(last.LSN); err == nil && got >= p.last {
				return last, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("demo: postgres: the connector at %s did not catch up in %v: %+v", url, timeout, last)
}

func pglsn(s string) (uint64, error) {
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("lsn %q: %w", s, err)
	}
	return hi<<32 | lo, nil
}

// follow shows the home following the table live: rows inserted one
// transaction at a time, each timed from its commit to the connector's
// position in the ledger covering it.
func (p *pgStep) follow(ctx context.Context, homeURL string) error {
	if p == nil {
		return nil
	}
	st, err := p.waitCaughtUp(ctx, homeURL, 2*time.Minute)
	if err != nil {
		return err
	}
	p.say("== The home follows the database: a snapshot at a new replication slot's exported snapshot, then logical replication (pgoutput)")
	p.say("   %d rows snapshotted into %s, position %s in the ledger", st.Snapshot, found.PostgresRegistry, st.LSN)
	var lags []time.Duration
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		if err := p.insert(ctx, 1); err != nil {
			return err
		}
		if _, err := p.waitCaughtUp(ctx, homeURL, time.Minute); err != nil {
			return err
		}
		lags = append(lags, time.Since(t0))
	}
	if err := p.promote(ctx, 7); err != nil {
		return err
	}
	if st, err = p.waitCaughtUp(ctx, homeURL, time.Minute); err != nil {
		return err
	}
	slices.Sort(lags)
	p.rep.PGLagMedian, p.rep.PGLagMax = lags[len(lags)/2], lags[len(lags)-1]
	p.say("   10 rows inserted one by one, each in the ledger (sealed, with the connector's position in the same batch) %v after its commit (median; at most %v); then every 7th servant promoted in one transaction",
		p.rep.PGLagMedian.Round(time.Millisecond), p.rep.PGLagMax.Round(time.Millisecond))
	p.say("   chancery status at home: postgres connector %s %s, position %s, lag %d bytes, %d changes in %d transactions",
		st.Slot, st.Phase, st.LSN, st.LagBytes, st.Streamed, st.Txns)
	return nil
}

// whileLost changes the table while no site follows it: the slot keeps
// the changes for whichever site writes next.
func (p *pgStep) whileLost(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.insert(ctx, 25); err != nil {
		return err
	}
	if err := p.promote(ctx, 11); err != nil {
		return err
	}
	p.say("   meanwhile the civil service keeps working: 25 servants hired and every 11th promoted, kept by the replication slot while no site follows it")
	return nil
}

// atEmbassy shows the activated embassy following the database from the
// position the home left in the ledger.
func (p *pgStep) atEmbassy(ctx context.Context, url string) error {
	if p == nil {
		return nil
	}
	if err := p.insert(ctx, 5); err != nil {
		return err
	}
	st, err := p.waitCaughtUp(ctx, url, 2*time.Minute)
	if err != nil {
		return err
	}
	p.rep.PGEmbassyChanges = st.Streamed
	p.say("   embassy-north's config names the database: its connector resumed at the position the home left in the ledger — %d changes in %d transactions, none twice (position %s)",
		st.Streamed, st.Txns, st.LSN)
	return nil
}

// beforeFailback changes the table once more while the embassy writes
// and the failback is ordered: whichever site holds the slot, the
// changes land once.
func (p *pgStep) beforeFailback(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.insert(ctx, 5); err != nil {
		return err
	}
	return p.promote(ctx, 13)
}

// afterFailback waits for the home to follow again, then stops it and,
// as chancery restore postgres does on a stopped site, checks the
// registry against the table row by row — every record's version equal
// to its row's rev, so no change is missing or twice — restores it into
// a fresh database with COPY and compares that with the source; then
// starts the home again.
func (p *pgStep) afterFailback(ctx context.Context, s *sites, dir string, pass []byte, homeCfg string) error {
	if p == nil {
		return nil
	}
	if err := p.insert(ctx, 5); err != nil {
		return err
	}
	if err := p.promote(ctx, 17); err != nil {
		return err
	}
	st, err := p.waitCaughtUp(ctx, s.urls["home"], 2*time.Minute)
	if err != nil {
		return err
	}
	p.say("== The home follows the database again, from the position embassy-north left in the ledger: %d changes in %d transactions since failback", st.Streamed, st.Txns)
	s.stop("home-standby")
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: pass})
	if err != nil {
		return err
	}
	defer loc.Close()
	checked, err := p.checkRegistry(ctx, loc.Registries)
	if err != nil {
		return err
	}
	p.rep.PGChecked = checked
	p.say("   %d rows of %s equal their records in %s, row by row, and every record's version equals its row's change count: no change lost or recorded twice across home, embassy-north and home again",
		checked, found.PostgresTable, found.PostgresRegistry)
	var cfg pgconnect.Config
	if _, err := loc.Charter.Service("postgres", &cfg); err != nil {
		return err
	}
	cs, err := p.pc.CreateDB("rebuilt")
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := pgconnect.Restore(ctx, pgconnect.RestoreOptions{ConnString: cs, Log: loc.Log, Keys: loc.Keys, Guest: loc.Charter.Guest.ID, Config: cfg, Verify: true, Live: loc.Registries})
	if err != nil {
		return err
	}
	p.rep.PGRestored = res.Tables[found.PostgresTable]
	q := "SELECT servant_no, name, ministry, grade, salary, hired, updated, rev FROM civil_servants ORDER BY servant_no"
	src, err := p.pc.Psql("registers", q)
	if err != nil {
		return err
	}
	got, err := p.pc.Psql("rebuilt", q)
	if err != nil {
		return err
	}
	if src != got {
		return fmt.Errorf("demo: postgres: the restored table differs from the source")
	}
	p.say("   chancery restore postgres: %d rows written with COPY into a fresh database in %v, read back equal to the ledger and to the source, row by row",
		p.rep.PGRestored, time.Since(start).Round(time.Millisecond))
	if err := loc.Close(); err != nil {
		return err
	}
	return s.start(ctx, "home", homeCfg)
}

// checkRegistry compares the registry with the table.
func (p *pgStep) checkRegistry(ctx context.Context, regs *registry.Registries) (int, error) {
	rows, err := p.db.Query(ctx, "SELECT servant_no, name, grade, rev FROM civil_servants")
	if err != nil {
		return 0, err
	}
	type row struct {
		Name  string `json:"name"`
		Grade int    `json:"grade"`
		Rev   int    `json:"rev"`
	}
	want := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.Name, &r.Grade, &r.Rev); err != nil {
			return 0, err
		}
		want[id] = r
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	err = regs.ScanAsOf(ctx, found.PostgresRegistry, registry.AsOf{}, func(rec *registry.Record) error {
		var got row
		if err := json.Unmarshal(rec.Data, &got); err != nil {
			return err
		}
		w, ok := want[rec.ID]
		switch {
		case !ok:
			return fmt.Errorf("record %s has no row in the table", rec.ID)
		case got != w:
			return fmt.Errorf("record %s: %+v, row %+v", rec.ID, got, w)
		case rec.Version != uint64(w.Rev):
			return fmt.Errorf("record %s is at version %d for %d changes of its row", rec.ID, rec.Version, w.Rev)
		}
		n++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("demo: postgres: %w", err)
	}
	if n != len(want) {
		return 0, fmt.Errorf("demo: postgres: %d records for %d rows", n, len(want))
	}
	return n, nil
}

// stop ends one site's process gracefully (SIGTERM) and waits.
func (s *sites) stop(name string) {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
	}
}
