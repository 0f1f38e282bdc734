package seal

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkSealRecord: records/s = 1e9 / ns/op for a 500-byte record.
func BenchmarkSealRecord(b *testing.B) {
	rk := newKeyring(b, "demo-republic").Registry("population")
	a := ad("population")
	pt := bytes.Repeat([]byte{'r'}, 500)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rk.Seal(a, pt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkOpenRecord(b *testing.B) {
	rk := newKeyring(b, "demo-republic").Registry("population")
	a := ad("population")
	pt := bytes.Repeat([]byte{'r'}, 500)
	sealed, _ := rk.Seal(a, pt)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rk.Open(a, sealed); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkSealRecordParallel(b *testing.B) {
	rk := newKeyring(b, "demo-republic").Registry("population")
	a := ad("population")
	pt := bytes.Repeat([]byte{'r'}, 500)
	b.SetBytes(int64(len(pt)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rk.Seal(a, pt); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkBlindID(b *testing.B) {
	rk := newKeyring(b, "demo-republic").Registry("population")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rk.BlindID(fmt.Sprintf("3851210%04d", i%10000))
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

func BenchmarkBlobSeal1MiB(b *testing.B) {
	bk := newKeyring(b, "demo-republic").Registry("land").Blobs()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	id := bk.ChunkID(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := bk.Seal(id, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlobOpen1MiB(b *testing.B) {
	bk := newKeyring(b, "demo-republic").Registry("land").Blobs()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	id := bk.ChunkID(data)
	sealed, _ := bk.Seal(id, data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := bk.Open(id, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkID1MiB(b *testing.B) {
	bk := newKeyring(b, "demo-republic").Registry("land").Blobs()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		bk.ChunkID(data)
	}
}

func BenchmarkSplitCombine3of5(b *testing.B) {
	ck := custodians(b, 5, false)
	r := newRoot(b)
	for b.Loop() {
		p, err := Split("demo-republic", r, 3, ck.list)
		if err != nil {
			b.Fatal(err)
		}
		var shares []*Share
		for _, c := range ck.list[:3] {
			s, err := p.OpenShare(c.ID, ck.ids[c.ID])
			if err != nil {
				b.Fatal(err)
			}
			shares = append(shares, s)
		}
		if _, err := p.Combine(shares); err != nil {
			b.Fatal(err)
		}
	}
}
