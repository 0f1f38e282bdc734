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

// TestSavePack: a pack received in memory is checked before anything is
// stored — a damaged one leaves the site's backend and index untouched —
// and a good one is stored once and readable with the keys.
func TestSavePack(t *testing.T) {
	ctx := context.Background()
	home, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := openStore(t, home, store.Options{Chunking: testChunking(t), PackSize: 512 << 10})
	defer w.Close()
	sl := newTestSealer(t, 1)
	d := content(7, 900<<10, 0)
	ref := put(t, w, sl, d)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, ok := w.Locate(ref.Chunks[0])
	if !ok {
		t.Fatal("chunk not located")
	}
	name := store.PackName(p)
	rc, err := home.Load(ctx, name, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()

	siteBE, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	site := openStore(t, siteBE, store.Options{})
	defer site.Close()
	for _, bad := range []struct {
		what string
		data []byte
	}{
		{"flipped byte", func() []byte { b := bytes.Clone(data); b[len(b)/2] ^= 1; return b }()},
		{"truncated", data[:len(data)-1]},
		{"empty", nil},
	} {
		err := site.SavePack(ctx, name, bad.data)
		if !errors.Is(err, store.ErrBadPack) {
			t.Fatalf("%s: %v, want ErrBadPack", bad.what, err)
		}
		if _, err := siteBE.Stat(ctx, name); err == nil {
			t.Fatalf("%s: a damaged pack was stored", bad.what)
		}
		if site.HasPack(p) {
			t.Fatalf("%s: a damaged pack was indexed", bad.what)
		}
	}
	if err := site.SavePack(ctx, "data/zz", data); err == nil {
		t.Fatal("a bad name was accepted")
	}
	for range 2 { // the second is a no-op
		if err := site.SavePack(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	if !site.Has(ref.Chunks[0]) || !site.HasPack(p) {
		t.Fatal("saved pack not indexed")
	}
	if err := site.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mustGet(t, site, sl, ref, d)
}
