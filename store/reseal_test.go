package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

// siteSealer is a site's copy's sealer: the inner sealer inside a site
// outer key, as registry.OuterSealer builds it.
type siteSealer struct {
	inner store.Sealer
	outer *seal.SiteKey
}

func (s siteSealer) ChunkID(p []byte) [32]byte { return s.inner.ChunkID(p) }

func (s siteSealer) Seal(id [32]byte, data []byte) ([]byte, error) {
	in, err := s.inner.Seal(id, data)
	if err != nil {
		return nil, err
	}
	return s.outer.Seal(seal.SiteAD("g", "s", id), in)
}

func (s siteSealer) Open(id [32]byte, sealed []byte) ([]byte, error) {
	in, err := s.outer.Open(seal.SiteAD("g", "s", id), sealed)
	if err != nil {
		return nil, err
	}
	return s.inner.Open(id, in)
}

// resealFuncs are ResealPacks' and DropPacks' callbacks for a move from
// one site key to another.
func resealFuncs(from, to *seal.SiteKey) (isNew func(store.ID, []byte) bool, fn func(store.ID, []byte) ([]byte, error)) {
	isNew = func(id store.ID, sealed []byte) bool {
		_, err := to.Open(seal.SiteAD("g", "s", id), sealed)
		return err == nil
	}
	fn = func(id store.ID, sealed []byte) ([]byte, error) {
		return seal.ResealSite(from, to, seal.SiteAD("g", "s", id), sealed)
	}
	return isNew, fn
}

func packNames(t testing.TB, be store.Backend) []string {
	t.Helper()
	var out []string
	if err := be.List(context.Background(), "data/", func(n string, _ int64) error { out = append(out, n); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestResealPacksResumes: a re-seal cut short (here by an error after
// three packs, as by a crash) leaves the old packs and the copies made;
// run again, it copies only the packs not yet copied; DropPacks then
// leaves exactly one pack per old pack, all under the new key, readable
// and checked clean, and none opens under the old key.
func TestResealPacksResumes(t *testing.T) {
	ctx := context.Background()
	be, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old, _ := seal.NewSiteKey()
	next, _ := seal.NewSiteKey()
	inner := newTestSealer(t, 1)
	w := openStore(t, be, store.Options{Chunking: testChunking(t), PackSize: 64 << 10})
	data := content(7, 16<<20, 0)
	ref := put(t, w, siteSealer{inner, old}, data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before := len(packNames(t, be))
	if before < 8 {
		t.Fatalf("%d packs: too few", before)
	}
	isNew, fn := resealFuncs(old, next)
	cut := errors.New("cut")
	n := 0
	_, err = store.ResealPacks(ctx, be, isNew, func(id store.ID, sealed []byte) ([]byte, error) {
		if n++; n > 3 {
			return nil, cut
		}
		return fn(id, sealed)
	})
	if !errors.Is(err, cut) {
		t.Fatalf("cut re-seal: %v", err)
	}
	copied := len(packNames(t, be)) - before
	if copied == 0 || copied >= before {
		t.Fatalf("%d of %d packs copied before the cut", copied, before)
	}
	st, err := store.ResealPacks(ctx, be, isNew, fn)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs != before-copied || st.Kept != copied {
		t.Fatalf("the resumed re-seal copied %d and kept %d, want %d and %d", st.Packs, st.Kept, before-copied, copied)
	}
	st, err = store.DropPacks(ctx, be, isNew)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs != before || len(packNames(t, be)) != before {
		t.Fatalf("dropped %d, %d left; want %d and %d", st.Packs, len(packNames(t, be)), before, before)
	}
	r := openStore(t, be, store.Options{})
	defer r.Close()
	mustGet(t, r, siteSealer{inner, next}, ref, data)
	if err := r.Check(ctx, siteSealer{inner, next}); err != nil {
		t.Fatalf("check after the re-seal: %v", err)
	}
	if _, err := get(r, siteSealer{inner, old}, ref); err == nil {
		t.Fatal("the old key still opens the store")
	}
	// Nothing left to do: both halves are no-ops now.
	if st, err := store.ResealPacks(ctx, be, isNew, fn); err != nil || st.Packs != 0 {
		t.Fatalf("a finished re-seal re-sealed again: %+v, %v", st, err)
	}
	if st, err := store.DropPacks(ctx, be, isNew); err != nil || st.Packs != 0 {
		t.Fatalf("a finished re-seal dropped again: %+v, %v", st, err)
	}
}

// BenchmarkResealPacks measures a site key rotation's re-seal of a
// store: 64 MiB of incompressible attachments in 16 MiB packs on the fs
// backend (fsync per pack), every pack read, checked, each chunk opened
// and sealed under the other key, and the copy saved; then DropPacks
// writes the index and removes the old packs. MB/s counts the packs'
// bytes. Each iteration moves the store to the other of two keys.
func BenchmarkResealPacks(b *testing.B) {
	ctx := context.Background()
	be, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	k0, _ := seal.NewSiteKey()
	k1, _ := seal.NewSiteKey()
	inner := newTestSealer(b, 1)
	w := openStore(b, be, store.Options{Chunking: testChunking(b)})
	put(b, w, siteSealer{inner, k0}, content(9, 64<<20, 0))
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	var size int64
	if err := be.List(ctx, "data/", func(_ string, n int64) error { size += n; return nil }); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	keys := [2]*seal.SiteKey{k0, k1}
	b.ResetTimer()
	for i := range b.N {
		isNew, fn := resealFuncs(keys[i%2], keys[(i+1)%2])
		if _, err := store.ResealPacks(ctx, be, isNew, fn); err != nil {
			b.Fatal(err)
		}
		if _, err := store.DropPacks(ctx, be, isNew); err != nil {
			b.Fatal(err)
		}
	}
}
