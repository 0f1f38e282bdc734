package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// BenchmarkProcedureStepHTTP measures a procedure step end to end through
// the home's officials' API on loopback: the official's request signed
// (and its nonce journalled by the site), the step's Ed25519 signature
// verified against the charter, the case read, validated and its next
// version sealed and appended, the decision and its effect landing as one
// ledger batch, durable (fsync) before the answer. Each case is two steps
// — open (register-business, validated against its schema) and the
// registrar's signed decision — so b.N steps are b.N/2 cases.
//
// The load is open-loop at -rate steps/s (default 1,000): requests are
// issued on a fixed schedule by 64 workers and each latency is counted
// from its scheduled time, so a stall delays every request behind it
// (no coordinated omission). Reported: p50 and p99 in ms, the achieved
// rate, and the process's CPU time per step (site and client both: they
// share the process), with the load average before and after.
//
//	go test -run '^$' -bench BenchmarkProcedureStepHTTP -benchtime 10000x ./site
func BenchmarkProcedureStepHTTP(b *testing.B) {
	rate := 1000.0
	if v := os.Getenv("CHANCERY_BENCH_STEP_RATE"); v != "" {
		fmt.Sscan(v, &rate)
	}
	ts := startBenchSite(b)
	ctx := context.Background()
	key := statetest.OfficialKey(b, ts.dir, "registrar", []byte(testPass))
	n := max(b.N, 2)
	cases := n / 2
	type job struct {
		i    int
		at   time.Time
		open bool
	}
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	opened := make([]chan *siteapi.CaseResponse, cases)
	for i := range opened {
		opened[i] = make(chan *siteapi.CaseResponse, 1)
	}
	jobs := make(chan job, n)
	var errOnce sync.Once
	var firstErr error
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	var wg sync.WaitGroup
	clients := make([]*siteapi.Client, 64)
	// One keep-alive connection per worker: the default keeps two idle,
	// and reconnecting would be measured as the step's cost.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(clients)}}
	defer hc.CloseIdleConnections()
	for w := range clients {
		clients[w] = &siteapi.Client{BaseURL: ts.srv.URL, HTTP: hc,
			Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key}}
	}
	for w := range clients {
		cl := clients[w]
		wg.Go(func() {
			for j := range jobs {
				if j.open {
					in := fmt.Sprintf(`{"registration_no":"B-%06d","name":"Bench Trading %d","founder_id":"DR-0000001","legal_form":"cooperative"}`, j.i, j.i)
					r, err := cl.StartCase(ctx, "register-business", json.RawMessage(in))
					if err != nil {
						fail(fmt.Errorf("open case %d: %w", j.i, err))
						opened[j.i] <- nil
						continue
					}
					d := time.Since(j.at)
					opened[j.i] <- r
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					continue
				}
				r := <-opened[j.i]
				if r == nil {
					continue
				}
				claim, err := r.Claim("registrar")
				if err != nil {
					fail(err)
					continue
				}
				sig, err := procedure.SignStep(claim, key)
				if err != nil {
					fail(err)
					continue
				}
				out, err := cl.SubmitStep(ctx, &procedure.Submission{Case: claim.Case, Step: claim.Step, Official: "registrar", Sig: sig})
				if err != nil {
					fail(fmt.Errorf("decide case %d: %w", j.i, err))
					continue
				}
				if out.Case.State != procedure.StateDecided {
					fail(fmt.Errorf("case %d: %s after the decision", j.i, out.Case.State))
				}
				d := time.Since(j.at)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	load0 := loadAvg()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	interval := time.Duration(float64(time.Second) / rate)
	b.ResetTimer()
	start := time.Now()
	// Each case's decision is scheduled lag steps after its opening
	// (50 ms at 1,000/s), so the two kinds of step interleave at the
	// rate, as desks working many cases at once would send them.
	const lag = 50
	// The schedule: step k at start + k·interval; the first lag cases
	// open, then decide(i-lag) and open(i) alternate.
	sched := make([]job, 0, n)
	next, dec := 0, 0
	for len(sched) < 2*cases {
		if next < cases && (next-dec < lag || dec >= next) {
			sched = append(sched, job{i: next, open: true})
			next++
		} else {
			sched = append(sched, job{i: dec})
			dec++
		}
	}
	for k, j := range sched {
		j.at = start.Add(time.Duration(k) * interval)
		if d := time.Until(j.at); d > 0 {
			time.Sleep(d)
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1e3, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1e3, "max-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "steps/s")
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(len(lat)), "cpu-ms/step")
	b.Logf("%d steps (%d cases) at %.0f/s offered, %.0f/s served; p50 %v p99 %v max %v; CPU %v (%.2f ms/step); load average %s before, %s after",
		len(lat), cases, rate, float64(len(lat))/elapsed.Seconds(), pct(0.5), pct(0.99), lat[len(lat)-1], cpu, float64(cpu.Microseconds())/1e3/float64(len(lat)), load0, loadAvg())
}

// startBenchSite serves a fresh founded home on loopback, its ledger
// tuned as `chancery serve` tunes it.
func startBenchSite(b *testing.B) *testSite {
	b.Helper()
	ts := &testSite{dir: founded.Copy(b), logs: &syncBuffer{}, now: time.Now}
	// The ledger as serve runs it (checkpoints at most every 25 ms), not
	// the tests' 1 ms that openHome sets.
	cfg := &site.Config{StateDir: ts.dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true}}
	s, err := site.Open(context.Background(), cfg, site.Options{Logger: slog.New(slog.NewJSONHandler(ts.logs, nil)),
		Local: guest.LocalOptions{Passphrase: []byte(testPass)}})
	if err != nil {
		b.Fatal(err)
	}
	ts.site = s
	ts.srv = httptest.NewServer(s.Handler())
	b.Cleanup(func() {
		ts.srv.Close()
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return ts
}

// loadAvg is the 1, 5 and 15 minute load averages, from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
