package procedure

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkStepPaced measures a procedure step end to end — an official's
// signature made, the submission decoded, verified against the charter,
// checked against the case, sealed and appended durably to the ledger
// (decision plus effect in one batch) — offered at a fixed rate of 1,000
// steps per second, each on its own case, and reports the latency
// percentiles. The target is p99 ≤ 20 ms at 1,000 steps/s.
//
//	go test -run XXX -bench StepPaced -benchtime 3000x ./services/procedure
func BenchmarkStepPaced(b *testing.B) {
	const rate = 1000
	fx, cases := openBirthCases(b)
	ctx := context.Background()
	key := fx.keys["registrar"]
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	errs := make(chan error, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		at := start.Add(time.Duration(i) * time.Second / rate)
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func(i int, at time.Time) {
			defer wg.Done()
			c := cases[i]
			claim := StepClaim{Guest: fx.c.Guest.ID, Case: c.ID, Procedure: c.Procedure, Step: "decide", Subject: c.Subject, Official: "registrar"}
			sig, err := SignStep(claim, key)
			if err != nil {
				errs <- err
				return
			}
			raw, err := MarshalSubmission(&Submission{Case: c.ID, Step: "decide", Official: "registrar", Sig: sig})
			if err != nil {
				errs <- err
				return
			}
			sub, err := DecodeSubmission(raw)
			if err != nil {
				errs <- err
				return
			}
			if _, err := fx.eng.Advance(ctx, sub); err != nil {
				errs <- err
				return
			}
			// Latency from when the step was due, so a backlog counts.
			lat[i] = time.Since(at)
		}(i, at)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "steps/s")
}

// BenchmarkPaymentRun1000 opens a payment run over 1,000 beneficiaries:
// every record of the registry read as of the index, the pain.001 file
// built, stored sealed, and the case written.
//
//	go test -run XXX -bench PaymentRun1000 -benchtime 5x ./services/procedure
func BenchmarkPaymentRun1000(b *testing.B) {
	fx := newFixtureInterval(b, 0)
	ctx := context.Background()
	for i := range 1000 {
		fx.put(b, "pensions", fmt.Sprintf("PEN-%06d", i), pensioner(i, "old-age", "812.50"))
	}
	b.ResetTimer()
	for range b.N {
		c, err := fx.eng.Start(ctx, StartRequest{Procedure: "benefit-payment-run", Official: "cio",
			Input: json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-28"}`)})
		if err != nil {
			b.Fatal(err)
		}
		if c.Payment.NbOfTxs != 1000 {
			b.Fatalf("%d transactions", c.Payment.NbOfTxs)
		}
	}
}

// BenchmarkStep is one step end to end, one after another: its ns/op is
// the step's cost (CPU, and one durable group commit per step, since
// nothing else is in flight to share it).
//
//	go test -run XXX -bench 'Step$' -benchtime 1000x ./services/procedure
func BenchmarkStep(b *testing.B) {
	fx, cases := openBirthCases(b)
	ctx := context.Background()
	key := fx.keys["registrar"]
	b.ResetTimer()
	for i := range b.N {
		c := cases[i]
		claim := StepClaim{Guest: fx.c.Guest.ID, Case: c.ID, Procedure: c.Procedure, Step: "decide", Subject: c.Subject, Official: "registrar"}
		sig, err := SignStep(claim, key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fx.eng.Advance(ctx, &Submission{Case: c.ID, Step: "decide", Official: "registrar", Sig: sig}); err != nil {
			b.Fatal(err)
		}
	}
}

// openBirthCases opens b.N birth cases, each waiting for the registrar's
// decision, on a ledger with the default checkpoint interval.
func openBirthCases(b *testing.B) (*fixture, []*Case) {
	fx := newFixtureInterval(b, 0)
	cases := make([]*Case, b.N)
	for i := range cases {
		in := fmt.Sprintf(`{"child_id":"DR-%010d","given_name":"Nia","family_name":"Okafor","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1990000042"}`, i)
		c, err := fx.eng.Start(context.Background(), StartRequest{Procedure: "register-birth", Input: json.RawMessage(in), Official: "registrar"})
		if err != nil {
			b.Fatal(err)
		}
		cases[i] = c
	}
	return fx, cases
}
