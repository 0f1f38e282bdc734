// Command litestream measures Litestream's replication lag the way
// replica/bench_test.go's BenchmarkReplicationLag measures Chancery's:
// every 10 ms it queues 50 writes (5,000 records/s), and a write's lag
// runs from its acknowledgement (its commit returned) until both replicas
// hold it.
//
// The home is a SQLite database in WAL mode with the settings Litestream
// recommends (busy_timeout 5000, synchronous NORMAL, wal_autocheckpoint 0).
// The writes queue for one writer goroutine on one connection, as SQLite
// allows one writer (goroutines queueing for database/sql's pool could not
// sustain 5,000/s here); each write is one INSERT in its own transaction,
// since each Chancery record is acknowledged on its own, and is
// acknowledged when its commit returns. The rows are about 500 bytes, like
// the benchmark's records, and each carries a marker "row-%09d-".
//
// `litestream replicate` runs as a child process with two file replicas
// (two directories: the two sites). A file replica writes each WAL segment
// to <name>.tmp, fsyncs it and renames it to
// generations/<gen>/wal/<index>_<offset>.wal.lz4 (file/replica_client.go),
// so a segment under its final name is whole and durable. One watcher per
// replica lists those directories every -poll, decompresses each new
// segment (LZ4 frame) and scans its WAL frames for every row marker; a row
// is held by a replica from the rename of the first segment containing it,
// which the segment's ctime records (to the kernel's clock tick), so that
// the watcher's own delays do not count. The lag by the first listing
// that showed the segment is reported too (polled-p99-ms). Every marker
// is scanned, not only the highest: a page holds several rows, and the
// scan does not rely on the commit order.
//
// At the end Litestream is stopped, each replica is restored with
// `litestream restore` and must hold every row written.
//
//	cd bench/litestream && go run .                         (Litestream's defaults)
//	cd bench/litestream && go run . -monitor-interval 10ms -sync-interval 10ms
//
// It prints one line like a Go benchmark's, which bench/litestream/run.sh
// reads.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/pierrec/lz4/v4"
)

var (
	bin             = flag.String("litestream", "", "litestream binary (default: litestream on $PATH, else $HOME/go/bin/litestream)")
	syncInterval    = flag.Duration("sync-interval", 0, "replicas' sync-interval (0: Litestream's default, 1s)")
	monitorInterval = flag.Duration("monitor-interval", 0, "database's monitor-interval (0: Litestream's default, 1s)")
	batch           = flag.Int("batch", 50, "writes started every -tick")
	tick            = flag.Duration("tick", 10*time.Millisecond, "interval between batches of writes")
	measure         = flag.Duration("for", 12*time.Second, "measured writing time (the Chancery benchmark with -benchtime 3x writes 3 x 4 s)")
	warmup          = flag.Duration("warmup", 2*time.Second, "writing time before the measured writes, not measured")
	poll            = flag.Duration("poll", 2*time.Millisecond, "interval between listings of a replica's directories")
	parent          = flag.String("dir", "", "parent of the work directory (default: $TMPDIR)")
	keep            = flag.Bool("keep", false, "keep the work directory")
	name            = flag.String("name", "", "name printed on the result line (default from the intervals)")
	synchronous     = flag.String("synchronous", "NORMAL", "the home's PRAGMA synchronous: NORMAL (Litestream's advice; a commit does not fsync) or FULL (a commit fsyncs, as Chancery's acknowledgement)")
)

const marker = "row-"

// body is a row of about 500 bytes, with the row's marker.
func body(i int) string {
	return fmt.Sprintf(`row-%09d-{"document_no":"PA%09d","national_id":"DR-%09d","type":"passport","issued":"2021-04-12","expires":"2031-04-11","issuer":"Ministry of the Interior, Capital City Passport Office","holder":{"first_name":"Aleksandra","last_name":"Kowalska-%d","birth_date":"1984-03-17","birth_place":"Capital City","sex":"F"},"mrz":"P<DRKKOWALSKA<<ALEKSANDRA<<<<<<<<<<<<<<<<<<<<PA%09d<DR<8403172F3104118<<<<<<<<<<<<<<02","photo_sha256":"9f2c1a7be04d5c3e8a61f0b2d7c94e5a1b3f6d8c0e2a4b6d8f1a3c5e7b9d0f2a"}`,
		i, i, i%1_000_000, i%977, i)
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench/litestream: ")
	flag.Parse()
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func findLitestream() (string, error) {
	if *bin != "" {
		return *bin, nil
	}
	if p, err := exec.LookPath("litestream"); err == nil {
		return p, nil
	}
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, "go", "bin", "litestream")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("no litestream binary: go install github.com/benbjohnson/litestream/cmd/litestream@v0.3.13, or pass -litestream")
	}
	return p, nil
}

func run() error {
	ls, err := findLitestream()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(*parent, "chancery-bench-litestream-")
	if err != nil {
		return err
	}
	if *keep {
		log.Printf("work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	dbPath := filepath.Join(work, "home.db")
	sites := []*site{{name: "north", dir: filepath.Join(work, "north")}, {name: "south", dir: filepath.Join(work, "south")}}

	// The home database, with Litestream's recommended settings.
	sql.Register("sqlite3-litestream", &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec("PRAGMA wal_autocheckpoint = 0", nil)
			return err
		},
	})
	db, err := sql.Open("sqlite3-litestream", "file:"+dbPath+"?_journal_mode=WAL&_busy_timeout=5000&_synchronous="+*synchronous)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		return fmt.Errorf("journal_mode %q, %v", mode, err)
	}
	if _, err := db.Exec("CREATE TABLE records (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"); err != nil {
		return err
	}

	// litestream replicate, with two file replicas.
	cfg := fmt.Sprintf("dbs:\n  - path: %s\n", dbPath)
	if *monitorInterval > 0 {
		cfg += fmt.Sprintf("    monitor-interval: %s\n", *monitorInterval)
	}
	cfg += "    replicas:\n"
	for _, s := range sites {
		cfg += fmt.Sprintf("      - name: %s\n        type: file\n        path: %s\n", s.name, s.dir)
		if *syncInterval > 0 {
			cfg += fmt.Sprintf("        sync-interval: %s\n", *syncInterval)
		}
	}
	cfgPath := filepath.Join(work, "litestream.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(work, "litestream.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(ls, "replicate", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("litestream did not stop on SIGINT")
		}
	}
	defer stop()
	fail := func(err error) error {
		stop()
		out, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("%w\nlitestream log:\n%s", err, out)
	}

	// Wait for each replica's first snapshot: replication has started.
	for _, s := range sites {
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, _ := filepath.Glob(filepath.Join(s.dir, "generations", "*", "snapshots", "*.snapshot.lz4"))
			if len(m) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("replica %s: no snapshot after 30 s", s.name))
			}
			select {
			case err := <-exited:
				return fail(fmt.Errorf("litestream exited: %v", err))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	nWarm := int(*warmup / *tick) * *batch
	n := nWarm + int(*measure / *tick)**batch
	for _, s := range sites {
		s.seen, s.listed = make([]int64, n), make([]int64, n)
	}
	ctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var wg sync.WaitGroup
	for _, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watch(ctx)
		}()
	}

	type write struct{ submit, ack time.Time }
	writes := make([]write, n)
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = body(i)
	}
	// One writer: SQLite takes one write transaction at a time, and a
	// goroutine feeding one connection commits faster than writers
	// queueing for database/sql's pool.
	conn, err := db.Conn(context.Background())
	if err != nil {
		return fail(err)
	}
	stmt, err := conn.PrepareContext(context.Background(), "INSERT INTO records (id, body) VALUES (?, ?)")
	if err != nil {
		return fail(err)
	}
	queue := make(chan int, n)
	var (
		pending sync.WaitGroup
		werr    error
	)
	pending.Add(1)
	go func() {
		defer pending.Done()
		for i := range queue {
			if _, err := stmt.Exec(i, bodies[i]); err != nil {
				werr = err
				return
			}
			writes[i].ack = time.Now()
		}
	}()
	start := time.Now()
	var measureStart time.Time
	for k := range n / *batch {
		at := start.Add(time.Duration(k) * *tick)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if k**batch == nWarm {
			measureStart = time.Now()
		}
		now := time.Now()
		for j := range *batch {
			i := k**batch + j
			writes[i].submit = now
			queue <- i
		}
	}
	close(queue)
	pending.Wait()
	wrote := time.Since(measureStart)
	if werr != nil {
		return fail(werr)
	}

	// Wait until both replicas hold every row.
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := true
		for _, s := range sites {
			if s.count() < n {
				all = false
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			stopWatch()
			wg.Wait()
			return fail(fmt.Errorf("replicas hold %d and %d of %d rows after 60 s", sites[0].count(), sites[1].count(), n))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopWatch()
	wg.Wait()
	var late []time.Duration
	for _, s := range sites {
		if s.err != nil {
			return fail(fmt.Errorf("replica %s: %w", s.name, s.err))
		}
		late = append(late, s.late...)
	}
	slices.Sort(late)
	if err := stmt.Close(); err != nil {
		return fail(err)
	}
	if err := conn.Close(); err != nil {
		return fail(err)
	}
	if err := db.Close(); err != nil {
		return fail(err)
	}
	if err := stop(); err != nil {
		return fail(fmt.Errorf("stop litestream: %w", err))
	}

	// Each replica restores every row.
	for _, s := range sites {
		out := filepath.Join(work, "restored-"+s.name+".db")
		c := exec.Command(ls, "restore", "-o", out, "file://"+s.dir)
		if b, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("restore %s: %v\n%s", s.name, err, b)
		}
		if err := check(out, n); err != nil {
			return fmt.Errorf("restore %s: %w", s.name, err)
		}
	}

	// Lags of the measured writes.
	var lags, e2e, acks, polled []time.Duration
	early := 0
	for i := nWarm; i < n; i++ {
		w := writes[i]
		var done, listed int64
		for _, s := range sites {
			done, listed = max(done, s.seen[i]), max(listed, s.listed[i])
		}
		polled = append(polled, max(time.Unix(0, listed).Sub(w.ack), 0))
		d := time.Unix(0, done)
		if d.Before(w.ack) {
			early++
		}
		lags = append(lags, max(d.Sub(w.ack), 0))
		e2e = append(e2e, d.Sub(w.submit))
		acks = append(acks, w.ack.Sub(w.submit))
	}
	for _, d := range [][]time.Duration{lags, e2e, acks, polled} {
		slices.Sort(d)
	}
	label := *name
	if label == "" {
		label = "sync=" + interval(*syncInterval) + ",monitor=" + interval(*monitorInterval)
		if *synchronous != "NORMAL" {
			label += ",synchronous=" + *synchronous
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Printf("BenchmarkLitestreamLag/%s\t%d\t%.0f writes/s\t%.2f p50-ms\t%.2f p99-ms\t%.2f max-ms\t%.2f submit-p99-ms\t%.3f ack-p50-ms\t%.3f ack-p99-ms\t%.2f polled-p99-ms\t%.1f litestream-cpu-s\n",
		label, len(lags), float64(len(lags))/wrote.Seconds(), ms(percentile(lags, 50)), ms(percentile(lags, 99)), ms(lags[len(lags)-1]),
		ms(percentile(e2e, 99)), ms(percentile(acks, 50)), ms(percentile(acks, 99)), ms(percentile(polled, 99)), cpu.Seconds())
	log.Printf("%d rows (%d measured; %d held by both replicas before their commit returned) restored whole from both replicas; WAL segments: %s %d, %s %d; first listing after the rename (ctime): p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		n, len(lags), early, sites[0].name, sites[0].segments, sites[1].name, sites[1].segments,
		ms(percentile(late, 50)), ms(percentile(late, 99)), ms(late[len(late)-1]))
	return nil
}

func interval(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// percentile of sorted durations, nearest rank (as replica/bench_test.go).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(min(i, len(sorted))-1, 0)]
}

// check opens a restored database and wants rows 0..n-1, each with its
// own marker.
func check(path string, n int) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var cnt, lo, hi, bad int
	if err := db.QueryRow(`SELECT count(*), min(id), max(id),
		sum(substr(body, 1, 14) != printf('row-%09d-', id)) FROM records`).Scan(&cnt, &lo, &hi, &bad); err != nil {
		return err
	}
	if cnt != n || lo != 0 || hi != n-1 || bad != 0 {
		return fmt.Errorf("%d rows, ids %d..%d, %d bad markers; want %d rows", cnt, lo, hi, bad, n)
	}
	return nil
}

// site is a file replica and what its watcher has seen.
type site struct {
	name, dir string
	// row -> UnixNano when the replica first held it: the ctime of the
	// first file found holding it, which its rename into its final name
	// set (seen), and the first listing that showed that file (listed).
	// 0: not yet.
	seen, listed []int64
	mu           sync.Mutex
	held         int // rows seen
	segments     int
	// late: for each file, its first listing minus its ctime, which the
	// rename into its final name set: what the polling adds.
	late []time.Duration
	err  error
}

func (s *site) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// found is a snapshot or WAL segment under its final name, and when a
// listing first showed it.
type found struct {
	path      string
	ctime, at int64
	wal       bool
}

// watch lists the replica's generations every -poll and hands each new
// snapshot or WAL segment (final names only: a .tmp is being written) to
// a reader, so that reading a large segment does not delay the listings.
func (s *site) watch(ctx context.Context) {
	files := make(chan found, 1<<16)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for f := range files {
			if err := s.read(f); err != nil {
				s.mu.Lock()
				s.err = fmt.Errorf("%s: %w", f.path, err)
				s.mu.Unlock()
				return
			}
			if f.wal {
				s.mu.Lock()
				s.segments++
				s.mu.Unlock()
			}
		}
	}()
	defer func() {
		close(files)
		<-readerDone
	}()
	done := map[string]bool{}
	t := time.NewTicker(*poll)
	defer t.Stop()
	for {
		if err := s.list(done, files); err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-readerDone:
			return
		case <-t.C:
		}
	}
}

func (s *site) list(done map[string]bool, files chan<- found) error {
	gens, err := readNames(filepath.Join(s.dir, "generations"))
	if err != nil {
		return err
	}
	for _, g := range gens {
		for _, sub := range []string{"snapshots", "wal"} {
			dir := filepath.Join(s.dir, "generations", g, sub)
			names, err := readNames(dir)
			if err != nil {
				return err
			}
			now := time.Now()
			for _, nm := range names {
				p := filepath.Join(dir, nm)
				if !strings.HasSuffix(nm, ".lz4") || done[p] {
					continue
				}
				done[p] = true
				// A rename sets the ctime: when the file took its final
				// name (to the kernel's clock tick).
				ctime := now
				if fi, err := os.Stat(p); err != nil {
					return err
				} else if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					ctime = time.Unix(st.Ctim.Unix())
				}
				s.late = append(s.late, now.Sub(ctime))
				files <- found{p, ctime.UnixNano(), now.UnixNano(), sub == "wal"}
			}
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// read decompresses a segment or snapshot and notes every row marker in
// it as held since the file's ctime and listing.
func (s *site) read(fd found) error {
	f, err := os.Open(fd.path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(lz4.NewReader(f))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for off := 0; ; {
		j := bytes.Index(data[off:], []byte(marker))
		if j < 0 {
			break
		}
		p := off + j + len(marker)
		off = p
		if p+10 > len(data) || data[p+9] != '-' {
			continue
		}
		i, err := strconv.Atoi(string(data[p : p+9]))
		if err != nil || i < 0 || i >= len(s.seen) {
			continue
		}
		if s.seen[i] == 0 {
			s.seen[i], s.listed[i] = fd.ctime, fd.at
			s.held++
		}
	}
	return nil
}
