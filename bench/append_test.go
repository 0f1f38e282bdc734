// Package bench holds peer benchmarks that compare Chancery's ledger with
// other transparency-log implementations. It is a separate Go module so that
// the product's go.mod does not pick up the peers' dependencies.
package bench

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

const (
	// entrySize is the size in bytes of every appended entry.
	entrySize = 256
	// logOrigin is the checkpoint origin line used by both logs.
	logOrigin = "bench.example/log"
)

// appenderCounts are the concurrency levels measured for every system.
var appenderCounts = []int{64, 1}

// payloadSeed seeds the generator for entry contents, so every run and every
// system sees exactly the same bytes.
var payloadSeed = [32]byte{'c', 'h', 'a', 'n', 'c', 'e', 'r', 'y', '-', 'b', 'e', 'n', 'c', 'h'}

// appendFunc appends one entry and returns only once the entry is durable.
type appendFunc func(ctx context.Context, payload []byte) error

// logUnderTest is an opened log. closeFn is called outside the timed
// region, but is itself timed: it publishes a checkpoint committing to
// every entry (Chancery's integrator drains its backlog of tiles; Tessera's
// shutdown waits for such a checkpoint), and that drain is reported.
type logUnderTest struct {
	append  appendFunc
	closeFn func() error
}

// system is one implementation being compared.
type system struct {
	name string
	// open creates a new, empty log in dir. appenders is the number of
	// goroutines that will call append concurrently; it is passed so a
	// system may size its batching to it (see the tessera system).
	open func(ctx context.Context, b *testing.B, dir string, signer note.Signer, appenders int) (*logUnderTest, error)
}

var (
	systemsMu sync.Mutex
	systems   []system
)

// register adds a system; each system lives in its own file.
func register(s system) {
	systemsMu.Lock()
	defer systemsMu.Unlock()
	systems = append(systems, s)
	sort.Slice(systems, func(i, j int) bool { return systems[i].name < systems[j].name })
}

var onlySystem = flag.String("bench.system", "", "if set, only run this system (chancery or tessera)")

// BenchmarkDurableAppend measures durable appends of 256-byte entries to a
// fresh log in b.TempDir(). For every system it runs with 64 concurrent
// appender goroutines (exactly 64, sharing b.N between them, rounded up to a
// multiple of 64) and with a single appender. Every Append returns only once the entry is durable.
//
// Metrics: entries/s (whole-run throughput of durable appends), p50-µs
// and p99-µs (per-Append latency, measured from the call until durability
// was confirmed), drain-ms (from the last append's return until a
// checkpoint commits to every entry: Chancery's integrator writes tiles
// behind the appends, and at 64 appenders leaves a backlog of thousands of
// entries) and published-entries/s (entries over appends plus drain: the
// throughput a reader checking checkpoints sees).
func BenchmarkDurableAppend(b *testing.B) {
	for _, sys := range systems {
		if *onlySystem != "" && sys.name != *onlySystem {
			continue
		}
		b.Run(sys.name, func(b *testing.B) {
			for _, n := range appenderCounts {
				b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
					runDurableAppend(b, sys, n)
				})
			}
		})
	}
}

func runDurableAppend(b *testing.B, sys system, appenders int) {
	ctx := b.Context()

	// Everything below, up to ResetTimer, is set-up and is not timed.
	skey, _, err := note.GenerateKey(rand.Reader, logOrigin)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}

	// The appenders share b.N, rounded up to a multiple of the appender
	// count so that the run does not end with a few stragglers: a batching
	// log (Tessera) would otherwise wait out its batch timer for the last,
	// partial batch, which measures the timer rather than the log.
	total := (b.N + appenders - 1) / appenders * appenders
	payloads := make([]byte, total*entrySize)
	mrand.NewChaCha8(payloadSeed).Read(payloads)
	latencies := make([]time.Duration, total)

	l, err := sys.open(ctx, b, b.TempDir(), signer, appenders)
	if err != nil {
		b.Fatalf("open %s: %v", sys.name, err)
	}

	var (
		next     atomic.Int64 // index of the next entry to append
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
		startGun = make(chan struct{})
	)
	for range appenders {
		wg.Go(func() {
			<-startGun
			for {
				i := int(next.Add(1) - 1)
				if i >= total || firstErr.Load() != nil {
					return
				}
				p := payloads[i*entrySize : (i+1)*entrySize]
				t0 := time.Now()
				if err := l.append(ctx, p); err != nil {
					e := fmt.Errorf("append %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &e)
					return
				}
				latencies[i] = time.Since(t0)
			}
		})
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	close(startGun)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	if ep := firstErr.Load(); ep != nil {
		b.Fatal(*ep)
	}
	drainStart := time.Now()
	if err := l.closeFn(); err != nil {
		b.Fatalf("close %s: %v", sys.name, err)
	}
	drain := time.Since(drainStart)

	b.ReportMetric(float64(total)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(float64(drain)/float64(time.Millisecond), "drain-ms")
	b.ReportMetric(float64(total)/(elapsed+drain).Seconds(), "published-entries/s")
	slices.Sort(latencies)
	b.ReportMetric(float64(percentile(latencies, 0.50))/float64(time.Microsecond), "p50-µs")
	b.ReportMetric(float64(percentile(latencies, 0.99))/float64(time.Microsecond), "p99-µs")
}

// percentile returns the nearest-rank q-quantile of the sorted slice d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	rank := int(q*float64(len(d))+0.5) - 1
	rank = max(0, min(rank, len(d)-1))
	return d[rank]
}
