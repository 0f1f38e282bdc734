package registry

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkPut64 runs record updates from 64 concurrent writers, as the
// API does under load (issue 16 item 3): on distinct ids, and on 64 ids
// that every writer updates (overlapping, so writers meet on records).
//
//	go test -run '^$' -bench BenchmarkPut64 -benchtime 20000x ./registry/
func BenchmarkPut64(b *testing.B) {
	for _, mode := range []string{"distinct", "overlapping"} {
		b.Run(mode, func(b *testing.B) {
			fx := newFixture(b)
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					id := fmt.Sprintf("DR-%d", i)
					if mode == "overlapping" {
						id = fmt.Sprintf("DR-%d", i%64)
					}
					if _, err := fx.reg.Put(ctx, "population", id, person(id, "Berg"), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
