package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

// ship does what the replicator does with one object: read it on the
// writer's side, check it on arrival, save it on the site's side.
func ship(t testing.TB, from, to store.Backend, name string) {
	t.Helper()
	data, err := readObject(from, name)
	if err != nil {
		t.Fatalf("ship %s: %v", name, err)
	}
	if err := store.CheckObject(name, data); err != nil {
		t.Fatalf("ship %s: %v", name, err)
	}
	if err := to.Save(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("ship %s: %v", name, err)
	}
}

func openStore(t testing.TB, be store.Backend, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), be, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hexName(dir string, b []byte) string {
	h := sha256.Sum256(b)
	return dir + "/" + hex.EncodeToString(h[:])
}

func TestPackName(t *testing.T) {
	id := store.PackID{0xab, 0x01}
	canon := store.PackName(id)
	if canon != "data/ab01"+strings.Repeat("0", 60) {
		t.Fatalf("PackName = %s", canon)
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{canon, true},
		{strings.ToUpper(canon[:5]) + canon[5:], false},
		{"data/AB01" + strings.Repeat("0", 60), false}, // same hash, other object to a backend
		{"index/ab01" + strings.Repeat("0", 60), false},
		{canon[:len(canon)-1], false},
		{canon + "0", false},
		{canon + "/x", false},
		{"data/" + strings.Repeat("g", 64), false},
		{"data/", false},
		{"", false},
	} {
		got, ok := store.ParsePackName(tc.name)
		if ok != tc.ok || ok && got != id {
			t.Errorf("ParsePackName(%q) = %x, %v; want ok=%v", tc.name, got, ok, tc.ok)
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		id := store.PackID(rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(rt, "id"))
		name := store.PackName(id)
		if back, ok := store.ParsePackName(name); !ok || back != id {
			rt.Fatalf("round trip of %s: %x, %v", name, back, ok)
		}
		if !store.ValidName(name) {
			rt.Fatalf("%s is not a valid backend name", name)
		}
		// Any accepted name is the canonical name of what it parses to.
		s := rapid.StringMatching(`data/[0-9a-fA-F]{62,66}`).Draw(rt, "name")
		if p, ok := store.ParsePackName(s); ok && store.PackName(p) != s {
			rt.Fatalf("ParsePackName accepted %q, which is not PackName of %x", s, p)
		}
	})
}

func TestCheckObject(t *testing.T) {
	data := []byte("a pack's bytes")
	other := []byte("another object")
	for _, tc := range []struct {
		what, name string
		data       []byte
		ok         bool
	}{
		{"pack", hexName("data", data), data, true},
		{"index object", hexName("index", data), data, true},
		{"empty pack object", hexName("data", nil), nil, true},
		{"pack under another's name", hexName("data", other), data, false},
		{"index under another's name", hexName("index", other), data, false},
		{"one byte short", hexName("data", data), data[1:], false},
		{"upper-case hex", "data/" + strings.ToUpper(hexName("data", data)[5:]), data, false},
		{"other directory", hexName("keys", data), data, false},
		{"not a hash", "data/pack1", data, false},
		{"empty name", "", data, false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			err := store.CheckObject(tc.name, tc.data)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckObject: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error does not name the object %q: %v", tc.name, err)
			}
		})
	}
	rapid.Check(t, func(rt *rapid.T) {
		data := rapid.SliceOfN(rapid.Byte(), 1, 512).Draw(rt, "data")
		dir := rapid.SampledFrom([]string{"data", "index"}).Draw(rt, "dir")
		name := hexName(dir, data)
		if err := store.CheckObject(name, data); err != nil {
			rt.Fatal(err)
		}
		bad := bytes.Clone(data)
		bad[rapid.IntRange(0, len(bad)-1).Draw(rt, "at")] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
		if store.CheckObject(name, bad) == nil {
			rt.Fatal("a changed byte passed")
		}
		i := len(dir) + 1 + rapid.IntRange(0, 63).Draw(rt, "name at")
		c := "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", name[i])+1)%16]
		if store.CheckObject(name[:i]+string(c)+name[i+1:], data) == nil {
			rt.Fatal("a changed name passed")
		}
	})
}

// TestKeylessOpen: without Chunking a store opens read-only. Put fails
// clearly and writes nothing; Get and Check work for a caller with the
// Sealer; Has and Packs need nothing.
func TestKeylessOpen(t *testing.T) {
	ctx := context.Background()
	be := newMemBackend()
	w := openStore(t, be, store.Options{Chunking: testChunking(t), PackSize: 256 << 10})
	sl := newTestSealer(t, 1)
	data := content(4, 1500<<10, 2)
	ref := put(t, w, sl, data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before := listAll(t, be, "")

	r := openStore(t, be, store.Options{})
	defer r.Close()
	_, err := r.Put(ctx, sl, bytes.NewReader([]byte("anything")))
	if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "store opened without chunking: read-only, keyless") {
		t.Fatalf("put on a keyless store: %v", err)
	}
	_, err = r.Put(ctx, sl, bytes.NewReader(nil))
	if !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("empty put on a keyless store: %v", err)
	}
	mustGet(t, r, sl, ref, data)
	for _, id := range ref.Chunks {
		if !r.Has(id) {
			t.Errorf("keyless store lacks chunk %x", id)
		}
	}
	if err := r.Check(ctx, sl); err != nil {
		t.Fatalf("check on a keyless store: %v", err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if after := listAll(t, be, ""); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the keyless store wrote to the backend:\nbefore %v\n after %v", keys(before), keys(after))
	}
}

// TestHasLocate: a chunk is located only once its pack is an object in
// the backend, and then in a pack whose header lists it.
func TestHasLocate(t *testing.T) {
	ctx := context.Background()
	be := newMemBackend()
	s := openStore(t, be, store.Options{Chunking: testChunking(t)})
	defer s.Close()
	sl := newTestSealer(t, 1)
	ref := put(t, s, sl, content(5, 3<<20, 0)) // well under one 16 MiB pack
	for _, id := range ref.Chunks {
		if s.Has(id) {
			t.Errorf("chunk %x counted before its pack was uploaded", id)
		}
		if p, ok := s.Locate(id); ok {
			t.Errorf("chunk %x located in %x before its pack was uploaded", id, p)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ref.Chunks {
		p, ok := s.Locate(id)
		if !ok || !s.Has(id) {
			t.Fatalf("chunk %x not located after Flush", id)
		}
		raw, err := readObject(be, store.PackName(p))
		if err != nil {
			t.Fatalf("located pack: %v", err)
		}
		_, ids, err := store.PackTailEntries(raw)
		if err != nil || !slices.Contains(ids, id) {
			t.Fatalf("pack %x does not list chunk %x (%v)", p, id, err)
		}
	}
	if s.Has(store.ID{1, 2, 3}) {
		t.Error("an unknown id is present")
	}
	if _, ok := s.Locate(store.ID{1, 2, 3}); ok {
		t.Error("an unknown id is located")
	}
}

// TestPacks: Packs lists exactly the pack objects with their sizes, sorted,
// whether the index was built by this Store, read from index objects, or
// rebuilt from pack headers.
func TestPacks(t *testing.T) {
	ctx := context.Background()
	be := newMemBackend()
	opts := store.Options{Chunking: testChunking(t), PackSize: 300 << 10}
	s := openStore(t, be, opts)
	sl := newTestSealer(t, 1)
	for i := range 5 {
		put(t, s, sl, content(uint64(i), 100<<10+i*400<<10, i%3))
	}
	// Content already stored adds no pack and must not change a size.
	put(t, s, sl, content(0, 100<<10, 0))
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := func() string {
		var out []string
		for name, size := range listAll(t, be, "data/") {
			out = append(out, fmt.Sprintf("%s=%d", name, size))
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}()
	got := func(s *store.Store) string {
		ps := s.Packs()
		if !slices.IsSortedFunc(ps, func(a, b store.PackInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) }) {
			t.Error("Packs is not sorted by id")
		}
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s=%d", store.PackName(p.ID), p.Size))
		}
		return fmt.Sprint(out)
	}
	if g := got(s); g != want || len(s.Packs()) < 3 {
		t.Fatalf("after writing:\n got %s\nwant %s", g, want)
	}
	s.Close()
	s = openStore(t, be, store.Options{})
	if g := got(s); g != want {
		t.Fatalf("from index objects:\n got %s\nwant %s", g, want)
	}
	s.Close()
	for name := range listAll(t, be, "index/") {
		be.Remove(ctx, name)
	}
	s = openStore(t, be, store.Options{})
	defer s.Close()
	if g := got(s); g != want {
		t.Fatalf("rebuilt from pack headers:\n got %s\nwant %s", g, want)
	}
}

// TestReplicate is the embassy flow end to end on disk: the writer locates
// the packs of two of three attachments in its population registry, ships
// them to the site's population view, the site adopts them keylessly and
// flushes; it then has every chunk of those two attachments and none of
// the third's, also after reopening, and a caller with the keys reads them
// back from the site.
func TestReplicate(t *testing.T) {
	ctx := context.Background()
	const reg = "registries/population/"
	home, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	siteDir := t.TempDir()
	embassy, err := fs.New(siteDir)
	if err != nil {
		t.Fatal(err)
	}
	w := openStore(t, store.Prefixed(home, reg), store.Options{Chunking: testChunking(t), PackSize: 512 << 10})
	defer w.Close()
	sl := newTestSealer(t, 1)
	var refs []store.Ref
	var datas [][]byte
	for i := range 3 {
		d := content(uint64(10+i), 1200<<10+i*300<<10, i%2)
		datas = append(datas, d)
		refs = append(refs, put(t, w, sl, d))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	shipped := map[store.PackID]bool{}
	for _, ref := range refs[:2] {
		for _, id := range ref.Chunks {
			p, ok := w.Locate(id)
			if !ok {
				t.Fatalf("writer cannot locate chunk %x after Flush", id)
			}
			shipped[p] = true
		}
	}
	site := store.Prefixed(embassy, reg)
	r := openStore(t, site, store.Options{})
	for p := range shipped {
		ship(t, store.Prefixed(home, reg), site, store.PackName(p))
		if err := r.AdoptPack(ctx, store.PackName(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(listAll(t, site, "index/")); n != 1 {
		t.Fatalf("site wrote %d index objects, want 1", n)
	}
	for name := range listAll(t, embassy, "") {
		if !strings.HasPrefix(name, reg) {
			t.Errorf("site holds %s outside the registry's prefix", name)
		}
	}
	check := func(r *store.Store, when string) {
		t.Helper()
		for i, ref := range refs {
			for _, id := range ref.Chunks {
				p, _ := w.Locate(id)
				if r.Has(id) != shipped[p] {
					t.Errorf("%s: blob %d chunk %x: Has = %v, shipped = %v", when, i, id, r.Has(id), shipped[p])
				}
			}
		}
		if len(r.Packs()) != len(shipped) {
			t.Errorf("%s: site lists %d packs, %d shipped", when, len(r.Packs()), len(shipped))
		}
	}
	check(r, "after adopting")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = openStore(t, site, store.Options{})
	defer r.Close()
	check(r, "after reopening")
	for i := range 2 {
		mustGet(t, r, sl, refs[i], datas[i])
	}
	if err := r.Check(ctx, sl); err != nil {
		t.Fatalf("check at the site: %v", err)
	}
}

// TestAdoptPackDamaged: every way an object can be wrong is refused with
// an error naming it, and the index, the pack list and the next index
// object are as before.
func TestAdoptPackDamaged(t *testing.T) {
	ctx := context.Background()
	src := newMemBackend()
	w := openStore(t, src, store.Options{Chunking: testChunking(t), PackSize: 256 << 10})
	sl := newTestSealer(t, 1)
	for i := range 4 {
		put(t, w, sl, content(uint64(20+i), 600<<10, 0))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	packs := w.Packs()
	if len(packs) < 3 {
		t.Fatalf("%d packs", len(packs))
	}
	raw := func(i int) []byte {
		b, err := readObject(src, store.PackName(packs[i].ID))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good, victim := store.PackName(packs[0].ID), store.PackName(packs[1].ID)
	_, victimIDs, err := store.PackTailEntries(raw(1))
	if err != nil {
		t.Fatal(err)
	}
	headerFlipped := raw(1)
	headerFlipped[len(headerFlipped)-44-1] ^= 1 // last byte of the last entry's length
	notAPack := bytes.Repeat([]byte("not a pack, but named by its hash "), 100)
	empty := store.BuildPack(nil, nil)
	tailOnly := func() []byte { // the header and trailer of a real pack, its data gone
		b := raw(1)
		n := len(victimIDs)*36 + 44
		return b[len(b)-n:]
	}()

	for _, tc := range []struct {
		what   string
		name   string
		data   []byte // saved under name first; nil: save nothing
		wantIs error
	}{
		{"byte flipped", victim, flip(raw(1), 1000), nil},
		{"last byte flipped", victim, flip(raw(1), len(raw(1))-1), nil},
		{"truncated", victim, raw(1)[:len(raw(1))-1], nil},
		{"another pack's bytes", victim, raw(2), nil},
		{"header checksum wrong, named by its hash", hexName("data", headerFlipped), headerFlipped, nil},
		{"not a pack, named by its hash", hexName("data", notAPack), notAPack, nil},
		{"short object, named by its hash", hexName("data", []byte("tiny")), []byte("tiny"), nil},
		{"empty pack, named by its hash", hexName("data", empty), empty, nil},
		{"header without data, named by its hash", hexName("data", tailOnly), tailOnly, nil},
		{"missing", victim, nil, iofs.ErrNotExist},
		{"index object name", "index/" + victim[5:], nil, nil},
		{"upper-case name", "data/" + strings.ToUpper(victim[5:]), nil, nil},
		{"not a hash", "data/pack", nil, nil},
	} {
		t.Run(tc.what, func(t *testing.T) {
			be := newMemBackend()
			ship(t, src, be, good)
			r := openStore(t, be, store.Options{})
			defer r.Close()
			if err := r.AdoptPack(ctx, good); err != nil {
				t.Fatal(err)
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			stats, list, objs := r.Stats(), r.Packs(), listAll(t, be, "index/")
			if tc.data != nil {
				be.set(tc.name, tc.data)
			}
			err := r.AdoptPack(ctx, tc.name)
			if err == nil {
				t.Fatal("adopted")
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error does not name %s: %v", tc.name, err)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			t.Logf("%v", err)
			if r.Stats() != stats || fmt.Sprint(r.Packs()) != fmt.Sprint(list) {
				t.Errorf("index changed: %+v → %+v", stats, r.Stats())
			}
			for _, id := range victimIDs {
				if r.Has(id) {
					t.Errorf("chunk %x of the damaged pack is present", id)
				}
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := listAll(t, be, "index/"); fmt.Sprint(got) != fmt.Sprint(objs) {
				t.Errorf("Flush after a failed adoption wrote index objects: %v → %v", keys(objs), keys(got))
			}
		})
	}
}

func flip(b []byte, at int) []byte {
	b = bytes.Clone(b)
	b[at] ^= 0x20
	return b
}

// TestAdoptPackIdempotent: adopting a known pack, again, concurrently, or
// on the writer that made it, changes nothing, and the next index object
// describes each pack once.
func TestAdoptPackIdempotent(t *testing.T) {
	ctx := context.Background()
	src := newMemBackend()
	w := openStore(t, src, store.Options{Chunking: testChunking(t), PackSize: 256 << 10})
	defer w.Close()
	sl := newTestSealer(t, 1)
	for i := range 3 {
		put(t, w, sl, content(uint64(30+i), 500<<10, 0))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	packs := w.Packs()
	// The writer adopting its own packs: known, so nothing to write.
	wIndex := listAll(t, src, "index/")
	for _, p := range packs {
		if err := w.AdoptPack(ctx, store.PackName(p.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, src, "index/"); len(got) != len(wIndex) {
		t.Fatalf("writer re-adopting its packs wrote index objects: %d → %d", len(wIndex), len(got))
	}

	be := newMemBackend()
	r := openStore(t, be, store.Options{})
	defer r.Close()
	for _, p := range packs {
		ship(t, src, be, store.PackName(p.ID))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range packs {
				p := packs[(i+g)%len(packs)]
				if err := r.AdoptPack(ctx, store.PackName(p.ID)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	stats := r.Stats()
	for range 2 {
		if err := r.AdoptPack(ctx, store.PackName(packs[0].ID)); err != nil {
			t.Fatal(err)
		}
	}
	if r.Stats() != stats {
		t.Fatalf("adopting again changed the index: %+v → %+v", stats, r.Stats())
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	idx := listAll(t, be, "index/")
	if len(idx) != 1 {
		t.Fatalf("%d index objects, want 1", len(idx))
	}
	for name := range idx {
		data, err := readObject(be, name)
		if err != nil {
			t.Fatal(err)
		}
		described, err := store.IndexPacks(data)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[store.PackID]int{}
		for _, p := range described {
			seen[p]++
		}
		for _, p := range packs {
			if seen[p.ID] != 1 {
				t.Errorf("index object describes pack %x %d times", p.ID, seen[p.ID])
			}
		}
		if len(described) != len(packs) {
			t.Errorf("index object describes %d packs, want %d", len(described), len(packs))
		}
	}
	if err := r.AdoptPack(ctx, store.PackName(packs[1].ID)); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(listAll(t, be, "index/")); n != 1 {
		t.Fatalf("re-adopting after Flush wrote another index object: %d", n)
	}

	// A no-op costs no request: a replicator retrying a batch of
	// thousands of packs must not re-read and re-hash gigabytes.
	counted := &countingBackend{Backend: be}
	r2 := openStore(t, counted, store.Options{})
	defer r2.Close()
	counted.reads.Store(0)
	for _, p := range packs {
		if err := r2.AdoptPack(ctx, store.PackName(p.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.reads.Load(); n != 0 {
		t.Fatalf("adopting %d known packs made %d backend reads", len(packs), n)
	}
}

// countingBackend counts Loads and Stats.
type countingBackend struct {
	store.Backend
	reads atomic.Int64
}

func (c *countingBackend) Load(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Backend.Load(ctx, name, off, length)
}

func (c *countingBackend) Stat(ctx context.Context, name string) (int64, error) {
	c.reads.Add(1)
	return c.Backend.Stat(ctx, name)
}

// TestAdoptProperty: for any set of blobs, pack size, and any sequence of
// shipped packs (any subset, any order, repeats, Flushes in between), the
// site has exactly the chunks of the packs it was sent, lists exactly those
// packs with the writer's sizes, keeps both across a reopen with each pack
// in exactly one index object, and reads back every blob it was sent all of.
func TestAdoptProperty(t *testing.T) {
	ctx := context.Background()
	chunking := testChunking(t)
	sl := newTestSealer(t, 1)
	rapid.Check(t, func(rt *rapid.T) {
		src := newMemBackend()
		w := openStore(t, src, store.Options{Chunking: chunking, PackSize: rapid.IntRange(4<<10, 256<<10).Draw(rt, "pack size")})
		defer w.Close()
		n := rapid.IntRange(1, 8).Draw(rt, "blobs")
		var refs []store.Ref
		var datas [][]byte
		for i := range n {
			size := rapid.IntRange(0, 700<<10).Draw(rt, fmt.Sprintf("size %d", i))
			d := content(rapid.Uint64Range(0, 3).Draw(rt, "seed"), size, rapid.IntRange(0, 2).Draw(rt, "kind"))
			datas = append(datas, d)
			refs = append(refs, put(t, w, sl, d))
		}
		if err := w.Flush(ctx); err != nil {
			rt.Fatal(err)
		}
		all := w.Packs()
		sizes := map[store.PackID]int64{}
		for _, p := range all {
			sizes[p.ID] = p.Size
		}

		be := newMemBackend()
		r := openStore(t, be, store.Options{})
		shipped := map[store.PackID]bool{}
		if len(all) > 0 {
			for range rapid.IntRange(0, 2*len(all)).Draw(rt, "shipments") {
				p := rapid.SampledFrom(all).Draw(rt, "pack").ID
				ship(t, src, be, store.PackName(p))
				if err := r.AdoptPack(ctx, store.PackName(p)); err != nil {
					rt.Fatal(err)
				}
				shipped[p] = true
				if rapid.Bool().Draw(rt, "flush") {
					if err := r.Flush(ctx); err != nil {
						rt.Fatal(err)
					}
				}
			}
		}
		verify := func(r *store.Store, when string) {
			for _, ref := range refs {
				for _, id := range ref.Chunks {
					p, ok := w.Locate(id)
					if !ok {
						rt.Fatalf("writer lost chunk %x", id)
					}
					// The writer's dedup is exact, so each chunk is in one pack.
					if r.Has(id) != shipped[p] {
						rt.Fatalf("%s: chunk %x: Has = %v, its pack shipped = %v", when, id, r.Has(id), shipped[p])
					}
				}
			}
			got := r.Packs()
			if len(got) != len(shipped) {
				rt.Fatalf("%s: %d packs listed, %d shipped", when, len(got), len(shipped))
			}
			for _, p := range got {
				if !shipped[p.ID] || p.Size != sizes[p.ID] {
					rt.Fatalf("%s: lists %x (%d bytes); shipped %v, writer's size %d", when, p.ID, p.Size, shipped[p.ID], sizes[p.ID])
				}
			}
		}
		verify(r, "adopted")
		if err := r.Close(); err != nil {
			rt.Fatal(err)
		}
		described := map[store.PackID]int{}
		for name := range listAll(t, be, "index/") {
			data, err := readObject(be, name)
			if err != nil {
				rt.Fatal(err)
			}
			ps, err := store.IndexPacks(data)
			if err != nil {
				rt.Fatal(err)
			}
			for _, p := range ps {
				described[p]++
			}
		}
		for p := range shipped {
			if described[p] != 1 {
				rt.Fatalf("pack %x is in %d index objects", p, described[p])
			}
		}
		if len(described) != len(shipped) {
			rt.Fatalf("index objects describe %d packs, %d shipped", len(described), len(shipped))
		}
		r = openStore(t, be, store.Options{})
		defer r.Close()
		verify(r, "reopened")
		for i, ref := range refs {
			complete := true
			for _, id := range ref.Chunks {
				complete = complete && r.Has(id)
			}
			if complete {
				got, err := get(r, sl, ref)
				if err != nil || !bytes.Equal(got, datas[i]) {
					rt.Fatalf("blob %d, all of whose chunks arrived: %v", i, err)
				}
			}
		}
	})
}

// listHidden hides every object from List, so a benchmark can open a fresh
// Store per iteration over one saved pack without Open indexing it first.
type listHidden struct{ store.Backend }

func (listHidden) List(context.Context, string, func(string, int64) error) error { return nil }

// BenchmarkAdoptPack: adopting one 16 MiB pack, the receiving site's cost
// per pack: one read into a fresh buffer and one SHA-256 of the whole
// object, which is most of it (figures in docs/store.md), plus the header.
func BenchmarkAdoptPack(b *testing.B) {
	ctx := context.Background()
	src := newMemBackend()
	w := openStore(b, src, store.Options{Chunking: testChunking(b)})
	put(b, w, newTestSealer(b, 1), content(1, 17<<20, 0))
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	var big store.PackInfo
	for _, p := range w.Packs() {
		if p.Size > big.Size {
			big = p
		}
	}
	if big.Size < 16<<20 {
		b.Fatalf("largest pack is %d bytes", big.Size)
	}
	name := store.PackName(big.ID)
	for _, tc := range []struct {
		name string
		be   func(b *testing.B) store.Backend
	}{
		{"fs", func(b *testing.B) store.Backend {
			be, err := fs.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return be
		}},
		{"mem", func(*testing.B) store.Backend { return newMemBackend() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := tc.be(b)
			ship(b, src, be, name)
			b.SetBytes(big.Size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				r := openStore(b, listHidden{be}, store.Options{})
				b.StartTimer()
				if err := r.AdoptPack(ctx, name); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if r.Stats().Packs != 1 {
					b.Fatal("not adopted")
				}
				r.Close()
				b.StartTimer()
			}
		})
	}
}

// hugeBackend claims every object is 2 GiB, as a hostile host could.
type hugeBackend struct{ countingBackend }

func (h *hugeBackend) Stat(context.Context, string) (int64, error) { return 2 << 30, nil }

// TestAdoptPackHuge: an object above the format's pack limit is refused
// before any of it is read, so a host cannot make a site allocate at will.
func TestAdoptPackHuge(t *testing.T) {
	h := &hugeBackend{countingBackend{Backend: newMemBackend()}}
	r := openStore(t, h, store.Options{})
	defer r.Close()
	name := store.PackName(store.PackID{7})
	err := r.AdoptPack(context.Background(), name)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("adopting a 2 GiB object: %v", err)
	}
	if n := h.reads.Load(); n != 0 {
		t.Fatalf("%d loads of an object above the limit", n)
	}
}
