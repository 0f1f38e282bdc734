// Package loadgen runs the pages' time-to-first-byte benchmarks: simulated
// people who each load a page, read it for a while, and load it again.
package loadgen

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"testing"
	"time"
)

// TTFB has users people load b.N pages in all, each pausing think between
// its pages and arriving at a random point of the first pause, and
// reports the time to first byte p50-ms and p99-ms and the pages/s
// served. get loads one page for person u and returns its time to first
// byte; an error stops that person and fails the benchmark.
func TTFB(b *testing.B, users int, think time.Duration, get func(u int) (time.Duration, error)) {
	var mu sync.Mutex
	var ttfb []time.Duration
	work := make(chan struct{}, users)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for u := range users {
		wg.Go(func() {
			var mine []time.Duration
			time.Sleep(time.Duration(rand.Int64N(int64(think))))
			for range work {
				d, err := get(u)
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, d)
				time.Sleep(think)
			}
			mu.Lock()
			ttfb = append(ttfb, mine...)
			mu.Unlock()
		})
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(ttfb)
	if len(ttfb) > 0 {
		b.ReportMetric(float64(ttfb[len(ttfb)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ttfb[len(ttfb)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(ttfb))/el.Seconds(), "pages/s")
	}
}

// FirstByte sends req with c, reads the whole answer, and returns the time
// to its first byte; an answer other than 200 is an error.
func FirstByte(c *http.Client, req *http.Request) (time.Duration, error) {
	var first time.Time
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}))
	t0 := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: status %d", req.URL.Path, res.StatusCode)
	}
	return first.Sub(t0), nil
}
