package store_test

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/s3test"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/s3"
)

// benchCorpus writes the corpus once per benchmark, outside the timer.
// Size: $CHANCERY_BENCH_BYTES (default 512M).
func benchCorpus(b *testing.B) ([]string, int64) {
	b.Helper()
	paths, n := writeCorpus(b, b.TempDir(), envBytes("CHANCERY_BENCH_BYTES", 512<<20))
	// Write back the corpus before timing: otherwise the kernel flushes
	// it during the run and the store's fsyncs wait behind it.
	syscall.Sync()
	return paths, n
}

// heapPeak samples the Go heap while a benchmark runs; VmHWM covers the
// whole process, including the corpus generator, so both are reported.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if v := ms.HeapInuse + ms.StackInuse; v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// productSealer is what a registry seals its attachments with: seal's blob
// keys (HMAC-SHA-256 chunk ids, AES-256-GCM bound to the id, the
// registry's key generation in the additional data) and the chunker seeded
// from the keyring. The tests' stand-in sealer costs about the same per
// byte but is not the product; the benchmarks time the product.
func productSealer(b *testing.B) (store.Sealer, *store.Chunking) {
	b.Helper()
	root, err := seal.NewRootKey()
	if err != nil {
		b.Fatal(err)
	}
	k := seal.NewKeyring("bench-guest", root)
	b.Cleanup(k.Wipe)
	seed, err := k.ChunkerSeed()
	if err != nil {
		b.Fatal(err)
	}
	c, err := store.ChunkingFromSeed(seed)
	if err != nil {
		b.Fatal(err)
	}
	return k.Registry("land").Blobs(), c
}

func benchIngest(b *testing.B, newBackend func(i int) store.Backend) {
	paths, total := benchCorpus(b)
	sl, chunking := productSealer(b)
	ctx := context.Background()
	runtime.GC()
	stop := heapPeak()
	cpu0 := cpuTime()
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := store.Open(ctx, newBackend(i), store.Options{Chunking: chunking})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ingest(ctx, s, sl, paths, runtime.GOMAXPROCS(0)); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// On a shared machine wall-clock MB/s depends on the neighbours; MB
	// per CPU-second does not, and times the cores gives the ceiling.
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(total)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "VmHWM-MiB")
	b.ReportMetric(float64(len(paths)), "files")
}

// BenchmarkIngestFS: the embedded default, attachments to a local disk,
// fsync per pack and index object included.
func BenchmarkIngestFS(b *testing.B) {
	root := b.TempDir()
	benchIngest(b, func(i int) store.Backend {
		be, err := fs.New(fmt.Sprintf("%s/%d", root, i))
		if err != nil {
			b.Fatal(err)
		}
		return be
	})
}

// BenchmarkIngestS3: the same into versitygw on loopback (its posix
// backend writes to the same disk, so this measures the S3 overhead).
func BenchmarkIngestS3(b *testing.B) {
	srv := s3test.Start(b)
	benchIngest(b, func(i int) store.Backend {
		be, err := s3.New(context.Background(), s3.Config{
			Endpoint: srv.Endpoint, Bucket: "bench", Prefix: fmt.Sprintf("run-%d", i),
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region,
			Insecure: true, CreateBucket: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		return be
	})
}

// discard is a backend that keeps nothing: BenchmarkIngestDiscard measures
// the CPU pipeline (chunk, hash, compress, seal, pack) without the disk.
type discard struct{}

func (discard) Save(_ context.Context, _ string, r io.Reader, _ int64) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discard) Load(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, iofs.ErrNotExist
}
func (discard) Stat(context.Context, string) (int64, error) { return 0, iofs.ErrNotExist }
func (discard) List(context.Context, string, func(string, int64) error) error {
	return nil
}
func (discard) Remove(context.Context, string) error { return nil }

func BenchmarkIngestDiscard(b *testing.B) {
	benchIngest(b, func(int) store.Backend { return discard{} })
}

// cpuTime is user plus system time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
