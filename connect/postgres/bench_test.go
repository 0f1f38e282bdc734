package postgres

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The connector's benchmarks run a throwaway cluster on loopback and a
// ledger in a temporary directory (docs/benchmarks.md):
//
//	go test -run '^$' -bench . -benchtime 1x ./connect/postgres/
//
// PGBENCH_ROWS sets the snapshot's and the restore's rows (default 1M for
// the restore, 200k for the snapshot).

const benchSchema = `
CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, born date, balance numeric(12,2), seen timestamptz, active boolean);
CREATE PUBLICATION chancery_pub FOR TABLE people;
`

const benchFill = `INSERT INTO people SELECT g, 'person ' || g, date '1950-01-01' + (g %% 20000), (g %% 100000) / 100.0, timestamptz '2024-01-01' + g * interval '1 second', g %% 2 = 0 FROM generate_series(%d, %d) g`

func benchRows(def int) int {
	if s := os.Getenv("PGBENCH_ROWS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	return def
}

func benchConfig() Config {
	return Config{Slot: "chancery_bench", Publication: "chancery_pub", StateRegistry: "connector-state",
		Tables: []Table{{Table: "public.people", Registry: "people"}}}
}

// waitCount waits until the registry holds n records.
func waitCount(b *testing.B, s *site, c *Connector, n int) {
	for {
		if got, _ := s.reg.Count("people"); got >= n {
			return
		}
		if err := c.Err(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkSnapshot: rows per second from the source table into the
// ledger, sealed, at the exported snapshot.
func BenchmarkSnapshot(b *testing.B) {
	rows := benchRows(200_000)
	pg := startPGWith(b, benchSchema)
	pg.Psql("src", fmt.Sprintf(benchFill, 1, rows))
	for i := range b.N {
		s := newSite(b)
		cfg := benchConfig()
		cfg.Slot = fmt.Sprintf("chancery_bench_%d", i) // the last one's walsender may not have let go of its slot yet
		c, err := New(Options{Config: cfg, ConnString: pg.ConnString("src"), Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		c.Start(context.Background())
		for c.Status().Phase != PhaseStream {
			if err := c.Err(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		el := time.Since(start)
		c.Close()
		b.ReportMetric(float64(rows)/el.Seconds(), "rows/s")
	}
}

// BenchmarkStream: rows per second through logical replication into the
// ledger, the source inserting as fast as it can in transactions of 100
// rows.
func BenchmarkStream(b *testing.B) {
	rows := benchRows(200_000)
	pg := startPGWith(b, benchSchema)
	s := newSite(b)
	c, err := New(Options{Config: benchConfig(), ConnString: pg.ConnString("src"), Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID})
	if err != nil {
		b.Fatal(err)
	}
	c.Start(context.Background())
	defer c.Close()
	for c.Status().Phase != PhaseStream {
		time.Sleep(2 * time.Millisecond)
	}
	next := 1
	for range b.N {
		var sql []byte
		for i := 0; i < rows; i += 100 {
			sql = fmt.Appendf(sql, benchFill+";\n", next+i, next+i+99)
		}
		start := time.Now()
		pg.Psql("src", string(sql))
		next += rows
		waitCount(b, s, c, next-1)
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	}
}

// BenchmarkLag: from a source commit to its ledger batch being durable,
// at 5,000 rows/s (a transaction of 50 rows every 10 ms) for 10 s.
func BenchmarkLag(b *testing.B) {
	pg := startPGWith(b, benchSchema)
	s := newSite(b)
	var mu sync.Mutex
	var lags []time.Duration
	c, err := New(Options{Config: benchConfig(), ConnString: pg.ConnString("src"), Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID,
		Applied: func(commit time.Time, rows int) {
			mu.Lock()
			lags = append(lags, time.Since(commit))
			mu.Unlock()
		}})
	if err != nil {
		b.Fatal(err)
	}
	c.Start(context.Background())
	defer c.Close()
	for c.Status().Phase != PhaseStream {
		time.Sleep(2 * time.Millisecond)
	}
	conn, err := connect(context.Background(), pg.ConnString("src"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	next := 1
	for range b.N {
		tick := time.NewTicker(10 * time.Millisecond)
		end := time.Now().Add(10 * time.Second)
		for time.Now().Before(end) {
			<-tick.C
			if _, err := conn.Exec(context.Background(), fmt.Sprintf(benchFill, next, next+49)); err != nil {
				b.Fatal(err)
			}
			next += 50
		}
		tick.Stop()
		waitCount(b, s, c, next-1)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	p := func(q float64) float64 { return float64(lags[int(q*float64(len(lags)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(p(1), "max-ms")
}

// BenchmarkRestore: restore postgres of a table against pg_dump -Fc and
// pg_restore of the same table, side by side on the same cluster.
func BenchmarkRestore(b *testing.B) {
	rows := benchRows(1_000_000)
	pg := startPGWith(b, benchSchema)
	pg.Psql("src", fmt.Sprintf(benchFill, 1, rows))
	s := newSite(b)
	c, err := New(Options{Config: benchConfig(), ConnString: pg.ConnString("src"), Registries: s.reg, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID})
	if err != nil {
		b.Fatal(err)
	}
	c.Start(context.Background())
	for c.Status().Phase != PhaseStream {
		if err := c.Err(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	// A restore reads a published ledger; let this one publish first.
	if _, _, err := s.log.WaitPublished(context.Background(), s.log.Size()); err != nil {
		b.Fatal(err)
	}
	dump := filepath.Join(pg.Sock, "people.dump")
	// The two COPY formats side by side over the same ledger, each run
	// against its own pg_restore.
	runs := 0 // database names stay unique across the runs b.Run makes
	for _, format := range []string{"binary", "text"} {
		b.Run("copy="+format, func(b *testing.B) {
			// The figures are over all b.N runs: one run's ratio moves with
			// whatever else the machine did in those two seconds.
			var ours, restored, dumped, cpu time.Duration
			for range b.N {
				runs++
				i := runs
				db := fmt.Sprintf("r%s%d", format, i)
				tgt := pg.CreateDB(db)
				cpu0 := cpuTime(b)
				start := time.Now()
				res, err := Restore(context.Background(), RestoreOptions{ConnString: tgt, Log: s.log, Keys: s.keys, Guest: s.c.Guest.ID, Config: benchConfig(), Live: s.reg, TextCOPY: format == "text"})
				if err != nil {
					b.Fatal(err)
				}
				ours += time.Since(start)
				cpu += cpuTime(b) - cpu0
				if res.Tables["public.people"] != int64(rows) {
					b.Fatalf("restored %v", res.Tables)
				}
				start = time.Now()
				run(b, pg.Command("pg_dump", "-Fc", "-t", "people", "-f", dump, "src"))
				dumped += time.Since(start)
				pdb := fmt.Sprintf("p%s%d", format, i)
				pg.CreateDB(pdb)
				start = time.Now()
				run(b, pg.Command("pg_restore", "-d", pdb, dump))
				restored += time.Since(start)
			}
			n := float64(b.N)
			b.ReportMetric(float64(rows)*n/ours.Seconds(), "rows/s")
			b.ReportMetric(ours.Seconds()/n, "restore-s")
			// This process's CPU per row (user + system): what the
			// restore's own side costs, which the machine's load does not
			// change much.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(rows)/n, "cpu-ns/row")
			b.ReportMetric(restored.Seconds()/n, "pg_restore-s")
			b.ReportMetric((dumped+restored).Seconds()/n, "pg_dump+restore-s")
			b.ReportMetric(restored.Seconds()/ours.Seconds(), "speed-vs-pg_restore")
		})
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(b *testing.B, cmd *exec.Cmd) {
	b.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd.Path, err, out)
	}
}
