package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestReadProven: every entry of a published tree reads back proven, under
// the newest checkpoint and under an older one; an altered entry, an entry
// beyond the tree and a checkpoint of another tree are refused.
func TestReadProven(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	const n = 600 // two full bundles and a partial one
	want := make([][]byte, 0, n)
	var older Checkpoint
	for i := range n {
		e := testEntry(i, 1)
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		b, _ := e.MarshalBinary()
		want = append(want, b)
		if i == 299 {
			_, cp, err := l.WaitPublished(ctx, 300)
			if err != nil {
				t.Fatal(err)
			}
			older = cp
		}
	}
	_, cp, err := l.WaitPublished(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := NewProver(DirFetcher(dir), 0)

	rapid.Check(t, func(rt *rapid.T) {
		c := cp
		if rapid.Bool().Draw(rt, "older") {
			c = older
		}
		idx := rapid.Uint64Range(0, c.Size-1).Draw(rt, "index")
		got, err := p.ReadProven(ctx, c, idx)
		if err != nil {
			rt.Fatalf("entry %d under size %d: %v", idx, c.Size, err)
		}
		if !bytes.Equal(got, want[idx]) {
			rt.Fatalf("entry %d read back other bytes", idx)
		}
	})

	other := cp
	other.Root[0] ^= 1
	for _, tt := range []struct {
		name  string
		cp    Checkpoint
		index uint64
		want  string
		is    error
	}{
		{"beyond the tree", cp, n, "beyond the tree size", nil},
		{"beyond an older tree", older, older.Size, "beyond the tree size", nil},
		{"another tree's root", other, 5, "signed tree", ErrNotInTree},
	} {
		_, err := p.ReadProven(ctx, tt.cp, tt.index)
		if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}

	// Alter one payload byte of entry 3 in the first (full) bundle: the
	// bundle still parses, entry 3 no longer proves, its neighbours do.
	path := filepath.Join(dir, EntriesPath(0, 0))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 0; i < 3; i++ {
		off += 2 + len(want[i])
	}
	b[off+2+len(want[3])-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p = NewProver(DirFetcher(dir), 0)
	if _, err := p.ReadProven(ctx, cp, 3); !errors.Is(err, ErrNotInTree) || !strings.Contains(err.Error(), "entry 3") {
		t.Fatalf("altered entry 3: %v, want ErrNotInTree naming the entry", err)
	}
	for _, idx := range []uint64{2, 4} {
		if _, err := p.ReadProven(ctx, cp, idx); err != nil {
			t.Fatalf("entry %d beside the altered one: %v", idx, err)
		}
	}
}
