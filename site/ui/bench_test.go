package ui

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPageTTFB: 200 simulated users load a page over real HTTP on
// loopback, each with its own connection, each pausing a second between
// pages as a person reading a dashboard does (about 200 pages/s offered);
// reports time to first byte p50/p99 and the pages/s served. Target (issue
// 15): p99 ≤ 50 ms on 2 cores. BenchmarkPageRender is the cost of one page
// alone, for the capacity that is left.
func BenchmarkPageTTFB(b *testing.B) {
	for _, page := range []string{"/ui/dashboard", "/ui/host", "/ui/desk"} {
		b.Run(page[4:], func(b *testing.B) {
			_, u := newFixture(b)
			srv := httptest.NewServer(u)
			defer srv.Close()
			const users = 200
			const think = time.Second
			tr := &http.Transport{MaxIdleConnsPerHost: users, MaxConnsPerHost: users}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var mu sync.Mutex
			var ttfb []time.Duration
			work := make(chan struct{}, users)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range users {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					// Users arrive spread over the first pause, not at once.
					time.Sleep(time.Duration(rand.Int64N(int64(think))))
					for range work {
						req, _ := http.NewRequest("GET", srv.URL+page, nil)
						req.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
						var t0, first time.Time
						req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
							GotFirstResponseByte: func() { first = time.Now() },
						}))
						t0 = time.Now()
						res, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != 200 {
							b.Errorf("status %d", res.StatusCode)
							return
						}
						mine = append(mine, first.Sub(t0))
						time.Sleep(think)
					}
					mu.Lock()
					ttfb = append(ttfb, mine...)
					mu.Unlock()
				}()
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
		})
	}
}

// BenchmarkPageRender is one page rendered in process, without HTTP.
func BenchmarkPageRender(b *testing.B) {
	_, u := newFixture(b)
	for _, page := range []string{"/ui/dashboard", "/ui/host", "/ui/desk"} {
		b.Run(page[4:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", page, nil)
				req.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
				w := httptest.NewRecorder()
				u.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
