package registry

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkImport is the bulk load: population records of about 500 bytes,
// validated, sealed and ledgered durably. The target is 50,000
// records/s on this 2-core machine.
func BenchmarkImport(b *testing.B) {
	fx := newFixture(b)
	var in bytes.Buffer
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(&in, `{"registry":"population","id":"DR-%010d","record":{"national_id":"DR-%010d","first_name":"Aleksandra","last_name":"Kowalska-%d","birth_date":"1984-03-17","sex":"F","address":{"street":"Boulevard of the Republic","number":"%d","city":"Capital City","postcode":"10%03d"},"eid_public_key":"r8T6qZ3vJm2XkQ9pW1sN4bH7yC0dF5gA6eL2uV8iO3M=","phone":"+999 555 %07d","email":"a.kowalska%d@mail.demo-republic.example"}}`+"\n", i, i, i, i%300, i%1000, i, i)
	}
	b.SetBytes(int64(in.Len() / max(b.N, 1)))
	b.ResetTimer()
	res, err := fx.reg.Import(context.Background(), &in, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Records != b.N {
		b.Fatalf("imported %d of %d", res.Records, b.N)
	}
	b.ReportMetric(float64(b.N)/res.Elapsed.Seconds(), "records/s")
}

// BenchmarkGet is a read of a random record: index lookup, entry read,
// inclusion proof against the signed tree, unseal.
func BenchmarkGet(b *testing.B) {
	fx := newFixture(b)
	const n = 20000
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, `{"registry":"population","id":"DR-%d","record":{"national_id":"DR-%d","last_name":"L%d"}}`+"\n", i, i, i)
	}
	ctx := context.Background()
	if _, err := fx.reg.Import(ctx, &in, ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, _, err := fx.log.WaitPublished(ctx, n); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i*7919 + 13) % n
			if _, err := fx.reg.Get(ctx, "population", fmt.Sprintf("DR-%d", i), AsOf{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
