package replica_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
)

// sameBatch compares two batches, an empty slice equal to a nil one.
func sameBatch(a, b *replica.Batch) bool {
	if a.First != b.First || !bytes.Equal(a.Checkpoint, b.Checkpoint) || len(a.Proof) != len(b.Proof) || len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Proof {
		if a.Proof[i] != b.Proof[i] {
			return false
		}
	}
	for i := range a.Entries {
		if !bytes.Equal(a.Entries[i], b.Entries[i]) {
			return false
		}
	}
	return true
}

func batchGen() *rapid.Generator[*replica.Batch] {
	return rapid.Custom(func(t *rapid.T) *replica.Batch {
		b := &replica.Batch{
			First:      rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(math.MaxUint64-4, math.MaxUint64)).Draw(t, "first"),
			Checkpoint: rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, "checkpoint"),
		}
		if rapid.IntRange(0, 20).Draw(t, "big checkpoint") == 0 {
			b.Checkpoint = make([]byte, rapid.IntRange(64<<10-2, 64<<10+2).Draw(t, "checkpoint size"))
		}
		for range rapid.IntRange(0, 66).Draw(t, "proof length") {
			var h ledger.Hash
			copy(h[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "hash"))
			b.Proof = append(b.Proof, h)
		}
		for range rapid.IntRange(0, 12).Draw(t, "entries") {
			e := rapid.SliceOfN(rapid.Byte(), 0, 100).Draw(t, "entry")
			if rapid.IntRange(0, 30).Draw(t, "big entry") == 0 {
				e = make([]byte, rapid.IntRange(ledger.MaxEntrySize-1, ledger.MaxEntrySize+1).Draw(t, "entry size"))
			}
			b.Entries = append(b.Entries, e)
		}
		return b
	})
}

// TestBatchRoundTrip: whatever MarshalBinary encodes, ParseBatch decodes
// to the same batch and re-encodes to the same bytes; it refuses exactly
// what breaks the format's limits; and any truncation or trailing byte of
// an encoding is refused.
func TestBatchRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := batchGen().Draw(t, "batch")
		valid := len(b.Checkpoint) <= 64<<10 && len(b.Proof) <= 64 && b.First <= math.MaxUint64-uint64(len(b.Entries))
		for _, e := range b.Entries {
			valid = valid && len(e) <= ledger.MaxEntrySize
		}
		data, err := b.MarshalBinary()
		if (err == nil) != valid {
			t.Fatalf("marshal of a batch within limits=%v: %v", valid, err)
		}
		if err != nil {
			return
		}
		p, err := replica.ParseBatch(data)
		if err != nil {
			t.Fatalf("parse of a marshalled batch: %v", err)
		}
		if !sameBatch(b, p) {
			t.Fatalf("round trip changed the batch")
		}
		if p.End() != b.First+uint64(len(b.Entries)) {
			t.Fatalf("end %d", p.End())
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-marshal: %v", err)
		}
		cut := rapid.IntRange(0, len(data)-1).Draw(t, "cut")
		if _, err := replica.ParseBatch(data[:cut]); err == nil {
			t.Fatalf("parse of the first %d of %d bytes succeeded", cut, len(data))
		}
		if _, err := replica.ParseBatch(append(data[:len(data):len(data)], 0)); err == nil {
			t.Fatal("parse with a trailing byte succeeded")
		}
	})
}

// TestParseBatchRefuses pins the refusals that name what was wrong.
func TestParseBatchRefuses(t *testing.T) {
	good := &replica.Batch{First: 7, Checkpoint: []byte("cp"), Entries: [][]byte{[]byte("a"), []byte("bc")}}
	data, err := good.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), data...)) }
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"bad magic", mutate(func(b []byte) []byte { b[7] = '2'; return b }), "magic"},
		{"huge checkpoint length", mutate(func(b []byte) []byte { b[16] = 0xff; return b }), "checkpoint of"},
		{"checkpoint past the end", mutate(func(b []byte) []byte { b[19] = 200; return b }), "unexpected EOF"},
		{"too many proof hashes", mutate(func(b []byte) []byte { b[22] = 65; return b }), "proof of 65"},
		{"count past the end", mutate(func(b []byte) []byte { b[26] = 9; return b }), "cannot fit"},
		{"entry past the end", mutate(func(b []byte) []byte { b[28] = 9; return b }), "entry 7"},
		{"trailing byte", append(mutate(func(b []byte) []byte { return b }), 0), "trailing"},
		{"first index overflows", mutate(func(b []byte) []byte {
			copy(b[8:16], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			return b
		}), "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replica.ParseBatch(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%x: %v, want an error with %q", tc.data, err, tc.want)
			}
		})
	}
}

// FuzzParseBatch: ParseBatch never panics on outside input, and whatever
// it accepts re-encodes to exactly the bytes it read (the encoding has one
// spelling per batch).
func FuzzParseBatch(f *testing.F) {
	entry := func(typ ledger.Type, payload string) []byte {
		b, err := ledger.Entry{Type: typ, Epoch: 1, Time: time.UnixMilli(1_700_000_000_000), Payload: []byte(payload)}.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	stub, err := ledger.Withhold(entry(ledger.TypeRecord, "sealed"))
	if err != nil {
		f.Fatal(err)
	}
	cp := []byte("ledger.demo-republic.example\n3\nq1Xr3XCKnAJdz5LbO3Uc0E0hxQm8Yi1X3V7v3CLcVQ0=\n\n— ledger.demo-republic.example AAAA\n")
	for _, b := range []*replica.Batch{
		{},
		{First: 0, Checkpoint: cp, Entries: [][]byte{entry(ledger.TypeRecord, "x"), stub, entry(ledger.TypeCharter, "c")}},
		{First: 1, Checkpoint: cp, Proof: []ledger.Hash{{1}, {2}}, Entries: [][]byte{stub}},
		{First: 255, Checkpoint: cp, Proof: []ledger.Hash{{3}}},
	} {
		data, err := b.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := replica.ParseBatch(data)
		if err != nil {
			return
		}
		again, err := b.MarshalBinary()
		if err != nil {
			t.Fatalf("a parsed batch does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-marshal differs:\n%x\n%x", data, again)
		}
	})
}
