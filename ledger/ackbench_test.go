package ledger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkAckWithSyncPoints measures what a sync point costs the
// acknowledgement (issue 11, item 10): 16 appenders append 256-byte
// entries while a neighbour (another guest's ledger, a blob store) keeps
// 40 MiB/s of dirty pages coming on the same filesystem, with a sync point
// every 200 ms. It reports the append latency's p50 and p99. A sync point
// that wrote back the whole filesystem made each fdatasync wait behind
// the neighbour's pages.
//
// The second case is a busy neighbour (a blob ingest): 320 MiB/s of
// dirty pages offered, as much as the disk and the kernel's dirty limits
// let through.
//
//	go test -run '^$' -bench AckWithSyncPoints -benchtime 20000x ./ledger/
func BenchmarkAckWithSyncPoints(b *testing.B) {
	for _, mib := range []int{1, 8} {
		b.Run(fmt.Sprintf("neighbour=%dMiB/s", mib*40), func(b *testing.B) { benchmarkAck(b, mib) })
	}
}

// benchmarkAck runs BenchmarkAckWithSyncPoints with a neighbour writing
// mib MiB every 25 ms.
func benchmarkAck(b *testing.B, mib int) {
	k := newTestKey(b, testOrigin)
	dir := b.TempDir()
	l, err := Open(context.Background(), filepath.Join(dir, "ledger"), Options{Origin: testOrigin, Signer: k.signer, SyncInterval: 200 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var neighbour sync.WaitGroup
	neighbour.Add(1)
	go func() {
		defer neighbour.Done()
		f, err := os.Create(filepath.Join(dir, "neighbour"))
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		buf := make([]byte, mib<<20)
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
			}
			f.Write(buf) // mib MiB per 25 ms, never fsynced
		}
	}()
	const appenders = 16
	lat := make([][]time.Duration, appenders)
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += appenders {
				e := testEntry(i, 1)
				e.Payload = make([]byte, 256)
				start := time.Now()
				if _, err := l.Append(context.Background(), e); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(stop)
	neighbour.Wait()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
	b.ReportMetric(ms(0.5), "ack-p50-ms")
	b.ReportMetric(ms(0.99), "ack-p99-ms")
	b.ReportMetric(ms(1), "ack-max-ms")
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "appends/s")
}
