package ledger

// AppendMirrored's guards the second mutation round left open (see
// docs/testing.md, "Guards and mutation testing").

import (
	"context"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// TestMirrorEmptyTreeAndUndecodableEntry: an empty mirror takes the
// writer's checkpoint of the empty tree (size 0, whatever its epoch: no
// entry binds it), and refuses an entry that does not decode even when
// the writer signed a tree holding it.
func TestMirrorEmptyTreeAndUndecodableEntry(t *testing.T) {
	ctx := context.Background()
	k := newTestKey(t, testOrigin)
	w := openTestLog(t, t.TempDir(), k)
	defer w.Close()
	m := openTestMirror(t, t.TempDir())
	defer m.Close()
	sign := func(c Checkpoint) []byte {
		s, err := SignCheckpoint(c, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	empty := Checkpoint{Origin: testOrigin, Size: 0, Root: emptyRoot, Epoch: 3}
	if got, err := m.AppendMirrored(ctx, nil, sign(empty), nil); err != nil || got.Size != 0 {
		t.Fatalf("the empty tree's checkpoint at an empty mirror: %+v, %v", got, err)
	}

	enc, signed := writerBatch(t, w, 0, 4, 3)
	// An entry of an unknown version: its epoch, read in place, is the
	// batch's, so only decoding it tells it is no entry this ledger reads.
	junk := append([]byte(nil), enc[0]...)
	junk[0] = EntryVersion + 1
	entries := append([][]byte{junk}, enc...)
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, e := range entries {
		h := EntryLeafHash(e)
		if err := rng.Append(h[:], nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := Checkpoint{Origin: testOrigin, Size: uint64(len(entries)), Root: Hash(root), Epoch: 3}
	if _, err := m.AppendMirrored(ctx, entries, sign(cp), nil); err == nil {
		t.Fatal("the mirror took an entry that does not decode")
	}
	if m.MirrorSize() != 0 {
		t.Fatalf("a refused batch left %d entries", m.MirrorSize())
	}
	// Control: the writer's own entries are taken.
	if _, err := m.AppendMirrored(ctx, enc, signed, nil); err != nil {
		t.Fatalf("the writer's batch: %v", err)
	}
}
