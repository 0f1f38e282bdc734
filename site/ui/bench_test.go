package ui

import (
	"net/http"
	"net/http/httptest"
	"path"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/loadgen"
)

// BenchmarkPageTTFB: 200 simulated users load a page over real HTTP on
// loopback, each with its own connection, each pausing a second between
// pages as a person reading a dashboard does (about 200 pages/s offered);
// reports time to first byte p50/p99 and the pages/s served. Target (issue
// 15): p99 ≤ 50 ms on 2 cores. BenchmarkPageRender is the cost of one page
// alone, for the capacity that is left.
func BenchmarkPageTTFB(b *testing.B) {
	for _, page := range []string{"/ui/dashboard", "/ui/host", "/ui/desk", "/portal/records", "/portal/tracker"} {
		b.Run(path.Base(page), func(b *testing.B) {
			_, u := newFixture(b)
			srv := httptest.NewServer(u)
			defer srv.Close()
			const users = 200
			tr := &http.Transport{MaxIdleConnsPerHost: users, MaxConnsPerHost: users}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			loadgen.TTFB(b, users, time.Second, func(int) (time.Duration, error) {
				req, _ := http.NewRequest("GET", srv.URL+page, nil)
				req.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
				return loadgen.FirstByte(client, req)
			})
		})
	}
}

// BenchmarkPageRender is one page rendered in process, without HTTP.
func BenchmarkPageRender(b *testing.B) {
	_, u := newFixture(b)
	for _, page := range []string{"/ui/dashboard", "/ui/host", "/ui/desk", "/portal/records", "/portal/tracker"} {
		b.Run(path.Base(page), func(b *testing.B) {
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
