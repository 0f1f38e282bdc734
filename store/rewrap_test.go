package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

// TestRewrapPack: a rewrapped pack is a valid pack under its own name with
// the same chunk ids, each chunk transformed; undoing the transform gives
// back the original pack byte for byte; a damaged input is refused.
func TestRewrapPack(t *testing.T) {
	ctx := context.Background()
	be, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := openStore(t, be, store.Options{Chunking: testChunking(t), PackSize: 512 << 10})
	defer w.Close()
	sl := newTestSealer(t, 1)
	ref := put(t, w, sl, content(3, 3<<20, 1))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := w.Locate(ref.Chunks[0])
	rc, err := be.Load(ctx, store.PackName(p), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()

	xor := func(_ store.ID, b []byte) ([]byte, error) {
		out := append([]byte{0xAA}, b...)
		for i := range out[1:] {
			out[1+i] ^= 0x5C
		}
		return out, nil
	}
	unxor := func(_ store.ID, b []byte) ([]byte, error) {
		if b[0] != 0xAA {
			return nil, errors.New("not wrapped")
		}
		out := bytes.Clone(b[1:])
		for i := range out {
			out[i] ^= 0x5C
		}
		return out, nil
	}
	nid, wrapped, err := store.RewrapPack(p, data, xor)
	if err != nil {
		t.Fatal(err)
	}
	if nid == p || bytes.Equal(wrapped, data) {
		t.Fatal("rewrapping changed nothing")
	}
	site, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, site, store.Options{})
	defer st.Close()
	if err := st.SavePack(ctx, store.PackName(nid), wrapped); err != nil {
		t.Fatalf("the rewrapped pack is not a valid pack: %v", err)
	}
	for _, id := range ref.Chunks {
		if loc, ok := w.Locate(id); ok && loc == p && !st.Has(id) {
			t.Fatalf("chunk %x lost its id in the rewrap", id[:4])
		}
	}
	back, orig, err := store.RewrapPack(nid, wrapped, unxor)
	if err != nil || back != p || !bytes.Equal(orig, data) {
		t.Fatalf("unwrapping does not give the original pack back: %v", err)
	}
	bad := bytes.Clone(data)
	bad[10] ^= 1
	if _, _, err := store.RewrapPack(p, bad, xor); err == nil {
		t.Fatal("a damaged pack was rewrapped")
	}
}
