package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/registry"
	"github.com/jackc/pgx/v5"
)

// The crash test runs the connector in a child process (this test binary,
// re-executed) while a seeded random workload of inserts, updates,
// deletes and multi-statement transactions (some larger than a ledger
// batch) runs against the source, and kills the child with SIGKILL at
// random moments, again and again. At the end a connector catches up and
// the registries must equal the tables row by row; and every record's
// history must step its rev column by exactly one per version, so no
// change was applied twice or skipped.

const (
	crashEnvDir  = "PGCONNECT_CRASH_DIR"
	crashEnvConn = "PGCONNECT_CRASH_CONN"
)

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("the crash test's child")
	}
	s := openSite(t, dir)
	c, err := New(Options{Config: crashConfig(), ConnString: os.Getenv(crashEnvConn), Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	c.Start(context.Background())
	fmt.Println("started")
	<-c.Done()
	fmt.Println("error", c.Err())
	os.Exit(1)
}

func crashConfig() Config {
	cfg := testConfig()
	cfg.Tables = []Table{{Table: "public.people", Registry: "people"}}
	return cfg
}

const crashSchema = `
CREATE TABLE people (id int PRIMARY KEY, rev int NOT NULL, name text, note text);
CREATE PUBLICATION chancery_pub FOR TABLE people;
`

// workload runs random transactions until ctx ends.
func workload(ctx context.Context, t *testing.T, cs string, seed uint64, txns *int) error {
	err := runWorkload(ctx, cs, seed, txns)
	if ctx.Err() != nil {
		return nil // stopped, in whatever statement it was
	}
	return err
}

func runWorkload(ctx context.Context, cs string, seed uint64, txns *int) error {
	conn, err := pgx.Connect(ctx, cs)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(seed, 1))
	for ctx.Err() == nil {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		n := 1 + rng.IntN(5)
		big := rng.IntN(40) == 0
		for i := 0; i < n; i++ {
			id := rng.IntN(300)
			switch op := rng.IntN(10); {
			case big && i == 0:
				// More rows than one ledger batch holds.
				base := 100000 + rng.IntN(1000)*10000
				_, err = tx.Exec(ctx, `INSERT INTO people SELECT g, 1, 'bulk', NULL FROM generate_series($1::int, $1::int + 4999) g ON CONFLICT (id) DO UPDATE SET rev = people.rev + 1`, base)
			case op < 4:
				_, err = tx.Exec(ctx, `INSERT INTO people VALUES ($1, 1, $2, NULL) ON CONFLICT (id) DO UPDATE SET rev = people.rev + 1, name = excluded.name`, id, fmt.Sprintf("n%d", rng.IntN(1000)))
			case op < 8:
				_, err = tx.Exec(ctx, `UPDATE people SET rev = rev + 1, note = $2 WHERE id = $1`, id, strings.Repeat("x", rng.IntN(50)))
			case op < 9:
				_, err = tx.Exec(ctx, `DELETE FROM people WHERE id = $1`, id)
			default:
				_, err = tx.Exec(ctx, `DELETE FROM people WHERE id >= 100000 AND id < $1`, 100000+rng.IntN(1000)*10000)
			}
			if err != nil {
				tx.Rollback(context.Background())
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if rng.IntN(10) == 0 {
			err = tx.Rollback(ctx)
		} else {
			err = tx.Commit(ctx)
			*txns++
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	return nil
}

func TestExactlyOnceAcrossKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process for a minute")
	}
	pg := startPGWith(t, crashSchema)
	cs := pg.ConnString("src")
	dir := t.TempDir()
	newSiteDir(t, dir)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PGCONNECT_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (PGCONNECT_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var werr error
	txns := 0
	wg.Go(func() { werr = workload(ctx, t, cs, seed, &txns) })

	rounds := 10
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvConn+"="+cs)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		killAt := time.After(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break wait
				}
				if strings.HasPrefix(l, "error") {
					cmd.Process.Signal(syscall.SIGKILL)
					cmd.Wait()
					t.Fatalf("round %d: child: %s", round, l)
				}
			case <-killAt:
				break wait
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cancel()
	wg.Wait()
	if werr != nil {
		t.Fatalf("workload: %v", werr)
	}
	t.Logf("%d source transactions committed across %d kills", txns, rounds)

	// A connector catches up; the registry equals the table.
	s := openSite(t, dir)
	defer s.close()
	c := s.connector(t, cs, crashConfig())
	c.Start(context.Background())
	defer c.Close()
	waitSame(t, s, cs, crashConfig(), c)
	checkRevs(t, s)

	// Restore into a second database equals the source too, both ways:
	// the ledger read into a view, and the registries' index choosing the
	// entries (what `chancery restore postgres` does), over versions
	// spread across many jobs and reused batches.
	c.Close()
	const sum = `SELECT count(*), coalesce(sum(hashtext(id::text || rev::text || coalesce(name,'') || coalesce(note,''))), 0) FROM people`
	src := pg.Psql("src", sum)
	for _, live := range []*registry.Registries{nil, s.reg} {
		db := "restored"
		if live != nil {
			db += "_live"
		}
		res, err := Restore(context.Background(), RestoreOptions{ConnString: pg.CreateDB(db), Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID, Config: crashConfig(), Verify: true, Live: live})
		if err != nil {
			t.Fatal(err)
		}
		if dst := pg.Psql(db, sum); src != dst || !res.Verified {
			t.Fatalf("%s: restored %s, source %s (%+v)", db, dst, src, res)
		}
	}
}

// checkRevs walks every record's history: each version the stream wrote
// has the previous version's rev plus one (1 after a tombstone), so no
// change was applied twice or lost. Versions up to the end of the
// snapshot are the rows' states at the snapshot (the workload ran while it
// was taken, and snapshots killed half way were taken again), not
// changes, so they are the base the stream's versions step from.
func checkRevs(t *testing.T, s *site) {
	t.Helper()
	ctx := context.Background()
	// The ledger index where the streaming position first appears.
	hs, err := s.reg.History(ctx, "connector-state", StateID(crashConfig().Slot))
	if err != nil {
		t.Fatal(err)
	}
	snapEnd := uint64(0)
	for _, vi := range hs {
		idx := vi.Index
		rec, err := s.reg.Get(ctx, "connector-state", StateID(crashConfig().Slot), registry.AsOf{Index: &idx})
		if err != nil {
			t.Fatal(err)
		}
		var p Position
		if err := json.Unmarshal(rec.Data, &p); err != nil {
			t.Fatal(err)
		}
		if p.Phase == PhaseStream {
			snapEnd = idx
			break
		}
	}
	if snapEnd == 0 {
		t.Fatal("the ledger holds no streaming position")
	}
	v, err := scanLedger(ctx, s.log.Dir(), s.keys, s.c.Guest.ID, scanOptions{registries: map[string]bool{"people": true}, upTo: s.log.Size()})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for id := range v.live["people"] {
		h, err := s.reg.History(ctx, "people", id)
		if err != nil {
			t.Fatal(err)
		}
		prev := 0
		for _, vi := range h {
			if vi.Deleted {
				prev = 0
				continue
			}
			idx := vi.Index
			rec, err := s.reg.Get(ctx, "people", id, registry.AsOf{Index: &idx})
			if err != nil {
				t.Fatal(err)
			}
			var row struct{ Rev int }
			if err := json.Unmarshal(rec.Data, &row); err != nil {
				t.Fatal(err)
			}
			if idx > snapEnd && row.Rev != prev+1 {
				t.Fatalf("record %s version %d: rev %d after rev %d: a change was applied twice or skipped (snapshot ended at index %d; history %+v)", id, vi.Version, row.Rev, prev, snapEnd, h)
			}
			prev = row.Rev
			checked++
		}
	}
	t.Logf("%d record versions checked", checked)
}
