package extract_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

const benchBatch = 64

// cpuTime is the CPU time (user and system) the process has used. The
// benchmarks report it per extract beside the wall-clock rate: on a
// machine shared with other work the wall clock measures the others too,
// and 2 cores / CPU time per extract is the rate two idle cores reach.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per extract since start and the rate it
// gives on two cores.
func reportCPU(b *testing.B, start time.Duration, n int64) {
	per := float64(cpuTime(b)-start) / float64(n)
	b.ReportMetric(per/1e3, "cpu-µs/extract")
	b.ReportMetric(2e9/per, "extracts/s-on-2-cores")
}

// BenchmarkIssue issues extracts in batches of 64 as a site serving many
// requests does: sign the statements, append the acts (one durable
// write), a cosigned checkpoint, inclusion proofs, receipts, and for each
// the QR text and its PNG ("qr"), or without them ("noqr": what the
// ledger, the signatures and the receipts cost alone). Reported per
// extract.
func BenchmarkIssue(b *testing.B) {
	for _, qr := range []bool{true, false} {
		b.Run(map[bool]string{true: "qr", false: "noqr"}[qr], func(b *testing.B) {
			f := newFixture(b)
			home := f.openLog(b, "home")
			is := f.issuer(b, "home", home, 1, "embassy-north", "embassy-south")
			reqs := make([]extract.Request, benchBatch)
			for i := range reqs {
				reqs[i] = birthRequest(i)
			}
			b.ResetTimer()
			start := cpuTime(b)
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					es, err := is.Issue(context.Background(), reqs...)
					if err != nil {
						b.Error(err)
						return
					}
					for _, e := range es {
						if !qr {
							break
						}
						if _, _, err := is.Render(e); err != nil {
							b.Error(err)
							return
						}
					}
					n.Add(int64(len(es)))
				}
			})
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "extracts/s")
			b.ReportMetric(0, "ns/op")
			reportCPU(b, start, n.Load())
		})
	}
}

// BenchmarkQR is the QR text and PNG of one extract (Issuer.Render), and
// each part alone; "fresh" is QRPNG and EncodeText without reused
// compressors.
func BenchmarkQR(b *testing.B) {
	f := newFixture(b)
	home := f.openLog(b, "home")
	is := f.issuer(b, "home", home, 1, "embassy-north")
	e := issueOne(b, is, 0)
	text, _, err := is.Render(e)
	if err != nil {
		b.Fatal(err)
	}
	var te offline.TextEncoder
	var qe extract.QREncoder
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"render", func() error { _, _, err := is.Render(e); return err }},
		{"text", func() error { _, err := te.EncodeText(e.COSE); return err }},
		{"matrix", func() error { _, err := qe.Matrix(text); return err }},
		{"png", func() error { _, err := qe.PNG(text); return err }},
		{"fresh", func() error {
			t, err := offline.EncodeText(e.COSE)
			if err == nil {
				_, err = extract.QRPNG(t)
			}
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			start := cpuTime(b)
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start, int64(b.N))
		})
	}
}

// verifySet issues 1,024 extracts in batches (so several checkpoints).
func verifySet(b *testing.B) (*offline.Verifier, [][]byte, []string) {
	f := newFixture(b)
	home := f.openLog(b, "home")
	is := f.issuer(b, "home", home, 1, "embassy-north", "embassy-south")
	var msgs [][]byte
	var texts []string
	for range 1024 / benchBatch {
		reqs := make([]extract.Request, benchBatch)
		for i := range reqs {
			reqs[i] = birthRequest(i)
		}
		es, err := is.Issue(context.Background(), reqs...)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range es {
			msgs = append(msgs, e.COSE)
			t, err := offline.EncodeText(e.COSE)
			if err != nil {
				b.Fatal(err)
			}
			texts = append(texts, t)
		}
	}
	return f.verifier(b), msgs, texts
}

// BenchmarkVerify verifies extracts offline (COSE bytes), in parallel.
func BenchmarkVerify(b *testing.B) {
	v, msgs, _ := verifySet(b)
	var i atomic.Int64
	b.ResetTimer()
	start := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(msgs[int(i.Add(1))%len(msgs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "extracts/s")
	reportCPU(b, start, int64(b.N))
}

// BenchmarkVerifyText verifies from the QR text: Base45, zlib, then as
// BenchmarkVerify.
func BenchmarkVerifyText(b *testing.B) {
	v, _, texts := verifySet(b)
	var i atomic.Int64
	b.ResetTimer()
	start := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.VerifyText(texts[int(i.Add(1))%len(texts)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "extracts/s")
	reportCPU(b, start, int64(b.N))
}
