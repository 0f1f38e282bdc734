package ledger

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchEntries makes n entries whose encoding is 256 bytes.
func benchEntries(n int) []Entry {
	r := rand.New(rand.NewPCG(1, 2))
	es := make([]Entry, n)
	for i := range es {
		p := make([]byte, 256-EntryHeaderSize)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		es[i] = Entry{Type: TypeRecord, Epoch: 1, Time: time.UnixMilli(1_700_000_000_000), Payload: p}
	}
	return es
}

// BenchmarkAppendDurable64 is the headline figure: 64 appenders, each
// waiting until its 256-byte entry is fsynced.
func BenchmarkAppendDurable64(b *testing.B) {
	benchmarkAppend(b, 64)
}

func benchmarkAppend(b *testing.B, appenders int) {
	k := newTestKey(b, testOrigin)
	l, err := Open(context.Background(), b.TempDir(), Options{Origin: testOrigin, Signer: k.signer})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	es := benchEntries(4096)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(256)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < appenders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := l.Append(context.Background(), es[i%int64(len(es))]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	st := l.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Entries)/float64(st.Commits), "entries/commit")
		b.ReportMetric(float64(st.SyncTime.Microseconds())/float64(st.Commits), "µs/commit")
	}
}

// BenchmarkAppendLatency measures one appender's durable latency.
func BenchmarkAppendLatency(b *testing.B) {
	k := newTestKey(b, testOrigin)
	l := openTestLog(b, b.TempDir(), k)
	defer l.Close()
	es := benchEntries(1024)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if _, err := l.Append(context.Background(), es[i%len(es)]); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
