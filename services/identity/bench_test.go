package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// latencies collects per-operation durations across goroutines, and the
// process's CPU time over the run: on a shared machine the CPU time per
// operation says what the code costs whatever else runs.
type latencies struct {
	mu  sync.Mutex
	d   []time.Duration
	cpu time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (l *latencies) start() { l.cpu = cpuTime() }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, unit string) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	p := func(q float64) float64 { return float64(l.d[int(q*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	cpu := cpuTime() - l.cpu
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSignIn measures completed sign-ins over real HTTPS on
// loopback: authorization request, login challenge, the citizen's eID
// answer (chain, CRL and signature checks, person record), the callback
// that issues the code, and the relying party's code exchange with
// private_key_jwt and PKCE, which issues the access and ID tokens. The
// citizen's and relying party's signing run on the same cores.
func BenchmarkSignIn(b *testing.B) {
	bn := newBench(b)
	b.SetParallelism(8)
	var lat latencies
	b.ResetTimer()
	lat.start()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			f := bn.tax.start()
			back, err := browse(b, bn.browser, f.authURL, bn.w.alice)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := bn.tax.exchange(b, back.Query().Get("code"), f.verifier); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(start))
		}
	})
	b.StopTimer()
	lat.report(b, "signins/s")
}

// BenchmarkRecordRead measures authorised record reads by bearer token
// over real HTTPS on loopback: token check, access rules, the record
// opened from the registry, and the access entry appended to the ledger
// and durable (group commit) before the response.
func BenchmarkRecordRead(b *testing.B) {
	bn := newBench(b)
	tok, _ := bn.tax.signIn(b, bn.browser, bn.w.alice)
	b.SetParallelism(32)
	var lat latencies
	size := bn.home.log.Size()
	b.ResetTimer()
	lat.start()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest("GET", testIssuer+"/records/land/L-7?purpose=bench", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		for pb.Next() {
			start := time.Now()
			resp, err := bn.tax.http.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			lat.add(time.Since(start))
		}
	})
	b.StopTimer()
	if got := bn.home.log.Size() - size; got < uint64(b.N) {
		b.Fatalf("%d access entries for %d reads", got, b.N)
	}
	lat.report(b, "reads/s")
}

// BenchmarkSignInSignatures times the P-256 work alone that one
// BenchmarkSignIn sign-in cannot do without, on one core: the citizen's
// challenge signed and verified, the relying party's private_key_jwt
// assertion signed and verified, and the ID token signed (a complete
// sign-in adds the relying party's check of the ID token). It is the floor
// under a sign-in's CPU: at 5,000 sign-ins/s two cores have 0.4 ms for
// each, HTTP, TLS and both sides included (docs/benchmarks.md).
func BenchmarkSignInSignatures(b *testing.B) {
	keys := make([]*ecdsa.PrivateKey, 3) // citizen, relying party, issuer
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k
	}
	msg := sha256.Sum256([]byte("challenge, assertion or token"))
	for b.Loop() {
		for i, k := range keys {
			sig, err := ecdsa.SignASN1(rand.Reader, k, msg[:])
			if err != nil {
				b.Fatal(err)
			}
			if i < 2 && !ecdsa.VerifyASN1(&k.PublicKey, msg[:], sig) {
				b.Fatal("signature refused")
			}
		}
	}
}
