package store_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

func openFS(t testing.TB, dir string, opts store.Options) (*store.Store, *testSealer) {
	t.Helper()
	be, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Chunking == nil {
		opts.Chunking = testChunking(t)
	}
	s, err := store.Open(context.Background(), be, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, newTestSealer(t, 1)
}

func put(t testing.TB, s *store.Store, sl store.Sealer, data []byte) store.Ref {
	t.Helper()
	ref, err := s.Put(context.Background(), sl, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Size != int64(len(data)) {
		t.Fatalf("ref size %d, want %d", ref.Size, len(data))
	}
	return ref
}

func get(s *store.Store, sl store.Sealer, ref store.Ref) ([]byte, error) {
	var buf bytes.Buffer
	err := s.Get(context.Background(), sl, ref, &buf)
	return buf.Bytes(), err
}

func mustGet(t testing.TB, s *store.Store, sl store.Sealer, ref store.Ref, want []byte) {
	t.Helper()
	got, err := get(s, sl, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get: %d bytes differ from the %d put", len(got), len(want))
	}
}

// content makes n bytes that are random, compressible or a mix.
func content(seed uint64, n int, kind int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	switch kind {
	case 0:
		for i := 0; i < n; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	case 1:
		for i := range b {
			b[i] = "the registrar certifies "[(uint64(i)+seed)%24]
		}
	default:
		copy(b, content(seed, n, 0))
		for i := 0; i < n; i += 2 {
			b[i] = 'a'
		}
	}
	return b
}

func countFiles(t testing.TB, dir, sub string) int {
	n := 0
	filepath.WalkDir(filepath.Join(dir, sub), func(p string, d iofs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestRoundtrip: whatever goes in comes out, for sizes around the
// chunker's boundaries and beyond, across flushes and a reopen.
func TestRoundtrip(t *testing.T) {
	dir := t.TempDir()
	s, sl := openFS(t, dir, store.Options{PackSize: 1 << 20})
	type stored struct {
		ref  store.Ref
		data []byte
	}
	var all []stored
	special := []int{0, 1, 2, store.MinChunk - 1, store.MinChunk, store.MinChunk + 1,
		store.MaxChunk - 1, store.MaxChunk, store.MaxChunk + 1, 20 << 20}
	maxRandom := 3 << 20
	if testing.Short() {
		// The race detector makes every byte ~10x dearer.
		special, maxRandom = special[:6], 1<<20
	}
	checks := 0
	rapid.Check(t, func(rt *rapid.T) {
		checks++
		var n int
		if rapid.Bool().Draw(rt, "special") {
			n = rapid.SampledFrom(special).Draw(rt, "size")
		} else {
			n = rapid.IntRange(0, maxRandom).Draw(rt, "size")
		}
		kind := rapid.IntRange(0, 2).Draw(rt, "kind")
		data := content(rapid.Uint64().Draw(rt, "seed"), n, kind)
		ref, err := s.Put(context.Background(), sl, bytes.NewReader(data))
		if err != nil {
			rt.Fatal(err)
		}
		if ref.Size != int64(n) {
			rt.Fatalf("size %d, want %d", ref.Size, n)
		}
		// Before any flush: read from the pending pack.
		got, err := get(s, sl, ref)
		if err != nil || !bytes.Equal(got, data) {
			rt.Fatalf("get before flush: %v (%d bytes)", err, len(got))
		}
		if rapid.Bool().Draw(rt, "flush") {
			if err := s.Flush(context.Background()); err != nil {
				rt.Fatal(err)
			}
		}
		b, err := ref.MarshalBinary()
		if err != nil {
			rt.Fatal(err)
		}
		var back store.Ref
		if err := back.UnmarshalBinary(b); err != nil || back.Hash() != ref.Hash() {
			rt.Fatalf("ref round trip: %v", err)
		}
		if checks <= 30 {
			all = append(all, stored{ref, data})
		}
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, sl := openFS(t, dir, store.Options{PackSize: 1 << 20})
	defer s2.Close()
	for _, st := range all {
		mustGet(t, s2, sl, st.ref, st.data)
	}
	if err := s2.Check(context.Background(), sl); err != nil {
		t.Fatalf("check after reopen: %v", err)
	}
}

// TestDedup: the same content twice, in one store or after a reopen, adds
// no chunk and no pack.
func TestDedup(t *testing.T) {
	dir := t.TempDir()
	s, sl := openFS(t, dir, store.Options{})
	data := content(7, 5<<20, 2)
	ref1 := put(t, s, sl, data)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st1, packs1, idx1 := s.Stats(), countFiles(t, dir, "data"), countFiles(t, dir, "index")
	ref2 := put(t, s, sl, data)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ref1.Hash() != ref2.Hash() {
		t.Fatal("same content, different refs")
	}
	if s.Stats() != st1 || countFiles(t, dir, "data") != packs1 || countFiles(t, dir, "index") != idx1 {
		t.Fatalf("second put stored something: %+v → %+v, packs %d → %d", st1, s.Stats(), packs1, countFiles(t, dir, "data"))
	}
	// Repetition inside one stream: chunks are stored once.
	twice := append(append([]byte{}, data...), data...)
	ref3 := put(t, s, sl, twice)
	uniq := map[store.ID]bool{}
	for _, id := range ref3.Chunks {
		uniq[id] = true
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := countFiles(t, dir, "data"); got > packs1+1 {
		t.Fatalf("doubled stream: %d packs, want at most %d", got, packs1+1)
	}
	s2, sl := openFS(t, dir, store.Options{})
	before := countFiles(t, dir, "data")
	put(t, s2, sl, data)
	put(t, s2, sl, twice)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if after := countFiles(t, dir, "data"); after != before {
		t.Fatalf("after reopen, re-putting stored content made packs %d → %d", before, after)
	}
	t.Logf("5 MB put twice plus a doubled stream: %d chunks (%d distinct in the doubled stream), %d packs", s.Stats().Chunks, len(uniq), before)
}

// TestConcurrentPuts: overlapping content from many goroutines (under
// -race this checks the dedup reservation and the pack hand-off).
func TestConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	s, sl := openFS(t, dir, store.Options{PackSize: 256 << 10})
	shared := content(3, 3<<20, 0)
	var wg sync.WaitGroup
	refs := make([]store.Ref, 8)
	datas := make([][]byte, 8)
	for i := range refs {
		datas[i] = append(append([]byte{}, shared...), content(uint64(i), 700<<10, 0)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Put(context.Background(), sl, bytes.NewReader(datas[i]))
			if err != nil {
				t.Error(err)
			}
			refs[i] = r
			// Read back at once, racing the background uploads: chunks
			// are served from pending packs, or from the backend once a
			// pack's buffer has been recycled.
			for range 3 {
				if got, err := get(s, sl, r); err != nil || !bytes.Equal(got, datas[i]) {
					t.Errorf("get right after put: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for i := range refs {
		mustGet(t, s, sl, refs[i], datas[i])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, sl := openFS(t, dir, store.Options{})
	defer s2.Close()
	for i := range refs {
		mustGet(t, s2, sl, refs[i], datas[i])
	}
	if err := s2.Check(context.Background(), sl); err != nil {
		t.Fatal(err)
	}
}

// TestRebuildIndex: with every index object gone (a crash after the pack
// uploads), Open rebuilds from the pack headers, Flush writes a new index
// object, and all blobs read back.
func TestRebuildIndex(t *testing.T) {
	dir := t.TempDir()
	s, sl := openFS(t, dir, store.Options{PackSize: 512 << 10})
	var refs []store.Ref
	var datas [][]byte
	for i := range 6 {
		d := content(uint64(i), 300<<10*(i+1), i%3)
		datas = append(datas, d)
		refs = append(refs, put(t, s, sl, d))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	s2, sl := openFS(t, dir, store.Options{})
	for i := range refs {
		mustGet(t, s2, sl, refs[i], datas[i])
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if countFiles(t, dir, "index") != 1 {
		t.Fatalf("rebuild wrote %d index objects, want 1", countFiles(t, dir, "index"))
	}
}

// TestTamper changes stored bytes at random. A Get of every blob that
// uses a changed byte must fail, naming one of its changed chunks and the
// pack; every other blob must read back intact; Check must notice.
func TestTamper(t *testing.T) {
	trials := 24
	if testing.Short() {
		trials = 6
	}
	for trial := range trials {
		mode := []string{"flip", "truncate", "swap", "index-flip", "index-truncate", "header-flip"}[trial%6]
		t.Run(fmt.Sprintf("%s-%d", mode, trial), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(trial), 99))
			dir := t.TempDir()
			s, sl := openFS(t, dir, store.Options{PackSize: 2 << 20})
			var refs []store.Ref
			var datas [][]byte
			for i := range 16 {
				d := content(r.Uint64(), 100<<10+r.IntN(1500<<10), i%3)
				datas = append(datas, d)
				refs = append(refs, put(t, s, sl, d))
			}
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			packs := map[string][]store.ID{}
			locs := map[store.ID]store.ChunkLocation{}
			for _, ref := range refs {
				for _, id := range ref.Chunks {
					l, ok := s.ChunkAt(id)
					if !ok {
						t.Fatalf("chunk %x not located", id)
					}
					if _, seen := locs[id]; !seen {
						packs[l.Pack] = append(packs[l.Pack], id)
					}
					locs[id] = l
				}
			}
			var names []string
			for p := range packs {
				names = append(names, p)
			}
			if len(names) < 2 {
				t.Fatalf("only %d packs", len(names))
			}
			slices := func(p string) string { return filepath.Join(dir, "data", p[5:7], p[5:]) }
			victim := names[r.IntN(len(names))]
			path := slices(victim)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dataEnd := int64(0)
			for _, id := range packs[victim] {
				dataEnd = max(dataEnd, locs[id].Off+locs[id].Length)
			}
			affected := map[store.ID]bool{}
			reopen := false
			switch mode {
			case "flip":
				at := r.Int64N(dataEnd)
				raw[at] ^= byte(1 + r.IntN(255))
				for _, id := range packs[victim] {
					if l := locs[id]; at >= l.Off && at < l.Off+l.Length {
						affected[id] = true
					}
				}
			case "truncate":
				at := r.Int64N(dataEnd)
				raw = raw[:at]
				for _, id := range packs[victim] {
					if l := locs[id]; l.Off+l.Length > at {
						affected[id] = true
					}
				}
			case "swap":
				other := names[(indexOf(names, victim)+1)%len(names)]
				raw, err = os.ReadFile(slices(other))
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range packs[victim] {
					affected[id] = true
				}
			case "header-flip":
				// Header and trailer are read only when rebuilding: Gets
				// through the index are unaffected, Check is not.
				at := dataEnd + r.Int64N(int64(len(raw))-dataEnd)
				raw[at] ^= 0x40
			case "index-flip", "index-truncate":
				// The index is a cache of the pack headers: a damaged index
				// object is ignored on Open and rebuilt; no Get is affected.
				ents, _ := filepath.Glob(filepath.Join(dir, "index", "*", "*"))
				if len(ents) != 1 {
					t.Fatalf("%d index objects", len(ents))
				}
				path = ents[0]
				raw, err = os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if mode == "index-flip" {
					raw[r.IntN(len(raw))] ^= 1
				} else {
					raw = raw[:r.IntN(len(raw))]
				}
				reopen = true
			}
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			if reopen {
				s.Close()
				s, sl = openFS(t, dir, store.Options{})
			}
			defer s.Close()
			nAffected := 0
			for i, ref := range refs {
				var bad []store.ID
				for _, id := range ref.Chunks {
					if affected[id] {
						bad = append(bad, id)
					}
				}
				got, err := get(s, sl, ref)
				if len(bad) == 0 {
					if err != nil || !bytes.Equal(got, datas[i]) {
						t.Errorf("blob %d untouched by the tamper, but get: %v", i, err)
					}
					continue
				}
				nAffected++
				if err == nil {
					t.Errorf("blob %d uses a tampered chunk, but get succeeded", i)
					continue
				}
				msg := err.Error()
				named := false
				for _, id := range bad {
					named = named || strings.Contains(msg, hex.EncodeToString(id[:]))
				}
				if !named || !strings.Contains(msg, victim) {
					t.Errorf("blob %d: error does not name the chunk and pack %s: %v", i, victim, err)
				}
			}
			cerr := s.Check(context.Background(), sl)
			if cerr == nil {
				t.Errorf("check passed after %s", mode)
			}
			t.Logf("%s: %d of %d blobs affected; check: %.200v", mode, nAffected, len(refs), cerr)
		})
	}
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// TestLeak stores deeds full of names and identifiers and then searches
// every byte the backend holds for them. A control run with a sealer that
// does not encrypt must find them, or the search proves nothing.
func TestLeak(t *testing.T) {
	secrets := []string{"Ivanna Petrenko", "UA-1984-0042-777", "parcel 4410-77-0021", "Oleksandr Bondarenko", "passport FE123456"}
	var docs [][]byte
	for i := range 20 {
		var b bytes.Buffer
		r := rand.New(rand.NewPCG(uint64(i), 1))
		for b.Len() < 100<<10+i*60<<10 {
			fmt.Fprintf(&b, "Deed %d: %s transfers %s to %s; id %s. ", r.IntN(1000), secrets[r.IntN(5)], secrets[2], secrets[3], secrets[1])
			img := make([]byte, r.IntN(2000))
			for j := range img {
				img[j] = byte(r.Uint32())
			}
			b.Write(img)
		}
		docs = append(docs, b.Bytes())
	}
	scan := func(sl store.Sealer) (found []string) {
		dir := t.TempDir()
		s, _ := openFS(t, dir, store.Options{})
		for _, d := range docs {
			put(t, s, sl, d)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range secrets {
				if bytes.Contains(raw, []byte(sec)) || bytes.Contains(asciiLower(raw), []byte(strings.ToLower(sec))) {
					found = append(found, sec+" in "+p)
				}
			}
			return nil
		})
		return found
	}
	if found := scan(newTestSealer(t, 1)); len(found) > 0 {
		t.Fatalf("plaintext in the backend: %v", found)
	}
	if found := scan(plainSealer{newTestSealer(t, 1)}); len(found) == 0 {
		t.Fatal("control: with a non-encrypting sealer the search found nothing, so it cannot detect a leak")
	}
}

// TestOpenOptions: pack sizes outside the format's range are refused, with
// or without chunking; no chunking is allowed (a keyless replica) and
// TestKeylessOpen covers what it permits.
func TestOpenOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts store.Options
		ok   bool
	}{
		{"defaults", store.Options{Chunking: testChunking(t)}, true},
		{"keyless", store.Options{}, true},
		{"pack too small", store.Options{Chunking: testChunking(t), PackSize: 1 << 10}, false},
		{"pack too large", store.Options{Chunking: testChunking(t), PackSize: 1 << 30}, false},
		{"keyless, pack too small", store.Options{PackSize: 1 << 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(context.Background(), newMemBackend(), tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("open: %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				s.Close()
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	s, sl := openFS(t, t.TempDir(), store.Options{})
	defer s.Close()
	err := s.Get(context.Background(), sl, store.Ref{Size: 1, Chunks: []store.ID{{1}}}, &bytes.Buffer{})
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("get of an unknown chunk: %v", err)
	}
}

// asciiLower folds only ASCII letters: bytes.ToLower would decode random
// bytes as UTF-8 and take seconds.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// TestCompressionChoice: compressible chunks are stored compressed and
// random ones raw (the sampling shortcut), and both read back.
func TestCompressionChoice(t *testing.T) {
	for _, tc := range []struct {
		kind    int
		maxFrac float64 // stored bytes / input bytes, at most
		minFrac float64
	}{
		{kind: 1, maxFrac: 0.2},                // text: compressed
		{kind: 0, minFrac: 1.0, maxFrac: 1.05}, // random: raw, plus seal overhead
	} {
		dir := t.TempDir()
		s, sl := openFS(t, dir, store.Options{})
		data := content(uint64(tc.kind)+9, 6<<20, tc.kind)
		ref := put(t, s, sl, data)
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, sl, ref, data)
		s.Close()
		var stored int64
		filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d iofs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fi, _ := d.Info()
				stored += fi.Size()
			}
			return nil
		})
		frac := float64(stored) / float64(len(data))
		if frac > tc.maxFrac || frac < tc.minFrac {
			t.Errorf("content kind %d: stored %.2f of its size, want between %.2f and %.2f", tc.kind, frac, tc.minFrac, tc.maxFrac)
		}
	}
}
