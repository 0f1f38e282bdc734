package store_test

import (
	"bytes"
	"testing"

	"github.com/chancery-gov/chancery/store"
)

// FuzzRefUnmarshal: anything UnmarshalBinary accepts re-encodes to the
// same bytes (strictness: one Ref, one encoding), and nothing panics.
func FuzzRefUnmarshal(f *testing.F) {
	for _, r := range []store.Ref{{}, {Size: 1, Chunks: []store.ID{{1}}}, {Size: 5 << 20, Chunks: []store.ID{{1}, {2}, {3}}}} {
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte("CHRF\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r store.Ref
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted ref does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("non-canonical encoding accepted:\n in %x\nout %x", data, again)
		}
		_ = r.Hash()
	})
}

// FuzzPackTail drives the parser that reads a pack's header and trailer,
// which Open runs on bytes a host controls. Accepted entries must tile
// the data region exactly.
func FuzzPackTail(f *testing.F) {
	f.Add(store.BuildPack([]store.ID{{1}, {2}}, [][]byte{[]byte("sealed one"), []byte("two")}))
	f.Add(store.BuildPack(nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		locs, _, err := store.PackTailEntries(data)
		if err != nil {
			return
		}
		var off int64
		for _, l := range locs {
			if l[1] != off || l[2] <= 0 {
				t.Fatalf("entries do not tile: %v", locs)
			}
			off += l[2]
		}
		if off+int64(len(locs))*36+44 != int64(len(data)) {
			t.Fatalf("entries cover %d bytes of a %d-byte pack with %d entries", off, len(data), len(locs))
		}
	})
}

// FuzzIndexObject drives the index-object parser: accepted input must
// re-encode to itself.
func FuzzIndexObject(f *testing.F) {
	f.Add([]byte("CHIDX001\x00\x00\x00\x00"))
	f.Add(append([]byte("CHIDX001\x00\x00\x00\x01"), append(make([]byte, 32), append([]byte{0, 0, 0, 1}, append(make([]byte, 32), 0, 0, 0, 0, 0, 0, 0, 9)...)...)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		again, err := store.EncodeIndexOf(data)
		if err != nil {
			return
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("index re-encodes differently:\n in %x\nout %x", data, again)
		}
	})
}
