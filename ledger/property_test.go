package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"pgregory.net/rapid"
)

// Property tests: everything the ledger computes is checked against an
// independent model built from transparency-dev/merkle's RFC 6962 hasher and
// compact ranges, never against the ledger's own hashing.

// memLedger is a tileSink and a Fetcher over a map: a ledger served from
// memory, so that trees of thousands of sizes can be built quickly.
type memLedger struct {
	mu    sync.RWMutex
	files map[string][]byte
}

func newMemLedger() *memLedger { return &memLedger{files: map[string][]byte{}} }

func (m *memLedger) tile(path string, data []byte, full bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = bytes.Clone(data)
	return nil
}

func (m *memLedger) Fetch(_ context.Context, path string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.files[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	return b, nil
}

// refModel is the reference: leaf hashes and the hashes of every tree node at
// tile-boundary levels (0, 8, 16), computed by transparency-dev/merkle.
type refModel struct {
	entries [][]byte
	leaves  [][]byte
	rng     *compact.Range
	nodes   map[uint][][]byte // tree level → node hashes at that level, in order
}

var refFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

func newRefModel() *refModel {
	return &refModel{rng: refFactory.NewEmptyRange(0), nodes: map[uint][][]byte{}}
}

func (m *refModel) append(entry []byte) {
	m.entries = append(m.entries, entry)
	lh := rfc6962.DefaultHasher.HashLeaf(entry)
	m.leaves = append(m.leaves, lh)
	if err := m.rng.Append(lh, func(id compact.NodeID, h []byte) {
		if id.Level%TileHeight != 0 {
			return
		}
		if uint64(len(m.nodes[id.Level])) != id.Index {
			panic(fmt.Sprintf("reference: node %d/%d out of order", id.Level, id.Index))
		}
		m.nodes[id.Level] = append(m.nodes[id.Level], bytes.Clone(h))
	}); err != nil {
		panic(err)
	}
}

func (m *refModel) root() Hash {
	if m.rng.End() == 0 {
		return Hash(rfc6962.DefaultHasher.EmptyRoot())
	}
	r, err := m.rng.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	return Hash(r)
}

// rootAt computes the root of the first size leaves from scratch.
func (m *refModel) rootAt(size uint64) Hash {
	r := refFactory.NewEmptyRange(0)
	for _, lh := range m.leaves[:size] {
		if err := r.Append(lh, nil); err != nil {
			panic(err)
		}
	}
	if size == 0 {
		return Hash(rfc6962.DefaultHasher.EmptyRoot())
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	return Hash(h)
}

// propEntry is a distinct encoded entry for index i (distinct leaves make a
// proof for a changed index fail, as it must).
func propEntry(i int, extra int) []byte {
	e := Entry{Type: Type(1 + i%7), Epoch: uint64(i / 1000), Time: time.UnixMilli(1_700_000_000_000 + int64(i)),
		Payload: append([]byte(fmt.Sprintf("property entry %d/", i)), bytes.Repeat([]byte{byte(i)}, extra)...)}
	b, err := e.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// expectedWidth computes floor(size / 256^level) mod 256 with big integers,
// independently of the shifts the ledger uses.
func expectedWidth(level uint64, size uint64) int {
	d := new(big.Int).Exp(big.NewInt(256), new(big.Int).SetUint64(level), nil)
	q := new(big.Int).Quo(new(big.Int).SetUint64(size), d)
	return int(new(big.Int).Mod(q, big.NewInt(256)).Int64())
}

func concatHashes(hs [][]byte) []byte { return bytes.Join(hs, nil) }

// checkTilesAt checks that the sink holds, for a tree of the given size,
// exactly the right full and partial tiles and entry bundle.
func checkTilesAt(t *rapid.T, m *memLedger, ref *refModel, size uint64) {
	for level := uint64(0); size>>(TileHeight*level) > 0; level++ {
		nodes := ref.nodes[uint(level*TileHeight)]
		count := size >> (TileHeight * level)
		if uint64(len(nodes)) < count {
			t.Fatalf("reference holds %d nodes at tile level %d, need %d", len(nodes), level, count)
		}
		for idx := uint64(0); idx < count/TileWidth; idx++ {
			got, err := m.Fetch(context.Background(), TilePath(level, idx, 0))
			if err != nil {
				t.Fatalf("full tile %d/%d at size %d: %v", level, idx, size, err)
			}
			if !bytes.Equal(got, concatHashes(nodes[idx*TileWidth:(idx+1)*TileWidth])) {
				t.Fatalf("full tile %d/%d differs from the reference", level, idx)
			}
		}
		w := expectedWidth(level, size)
		if w2 := partialWidth(level, size); w2 != w {
			t.Fatalf("partialWidth(%d, %d) = %d, want %d", level, size, w2, w)
		}
		if w == 0 {
			continue
		}
		idx := count / TileWidth
		got, err := m.Fetch(context.Background(), TilePath(level, idx, w))
		if err != nil {
			t.Fatalf("partial tile %d/%d.p/%d at size %d: %v", level, idx, w, size, err)
		}
		if !bytes.Equal(got, concatHashes(nodes[idx*TileWidth:idx*TileWidth+uint64(w)])) {
			t.Fatalf("partial tile %d/%d.p/%d differs from the reference", level, idx, w)
		}
	}
	if w := int(size % TileWidth); w > 0 {
		got, err := m.Fetch(context.Background(), EntriesPath(size/TileWidth, w))
		if err != nil {
			t.Fatalf("partial entry bundle at size %d: %v", size, err)
		}
		var want []byte
		for _, e := range ref.entries[size/TileWidth*TileWidth : size] {
			want = binary.BigEndian.AppendUint16(want, uint16(len(e)))
			want = append(want, e...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("partial entry bundle at size %d differs", size)
		}
	}
}

func libVerifyInclusion(idx, size uint64, leaf Hash, prf []Hash, root Hash) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, bytes.Clone(leaf[:]), hashSlices(prf), bytes.Clone(root[:]))
}

func libVerifyConsistency(s1, s2 uint64, prf []Hash, r1, r2 Hash) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, s1, s2, hashSlices(prf), bytes.Clone(r1[:]), bytes.Clone(r2[:]))
}

func flipped(prf []Hash, i, b int, x byte) []Hash {
	out := slices.Clone(prf)
	out[i][b] ^= x
	return out
}

// checkProofs draws inclusion and consistency queries against published
// sizes and checks that good proofs verify and altered ones do not.
func checkProofs(t *rapid.T, p *Prover, ref *refModel, roots map[uint64]Hash, published []uint64, queries int) {
	ctx := context.Background()
	for q := 0; q < queries; q++ {
		size := rapid.SampledFrom(published).Draw(t, "size")
		idx := rapid.Uint64Range(0, size-1).Draw(t, "index")
		root := roots[size]
		leaf := Hash(ref.leaves[idx])
		prf, err := p.Inclusion(ctx, idx, size)
		if err != nil {
			t.Fatalf("inclusion proof %d in %d: %v", idx, size, err)
		}
		if err := VerifyInclusion(idx, size, leaf, prf, root); err != nil {
			t.Fatalf("inclusion proof %d in %d does not verify: %v", idx, size, err)
		}
		if err := libVerifyInclusion(idx, size, leaf, prf, root); err != nil {
			t.Fatalf("inclusion proof %d in %d rejected by transparency-dev/merkle: %v", idx, size, err)
		}
		if lh, err := p.LeafHash(ctx, idx, size); err != nil || lh != leaf {
			t.Fatalf("LeafHash(%d, %d) = %x, %v; want %x", idx, size, lh, err, leaf)
		}
		// A different entry at the same index.
		other := Hash(rfc6962.DefaultHasher.HashLeaf(append(bytes.Clone(ref.entries[idx]), 0)))
		if VerifyInclusion(idx, size, other, prf, root) == nil || libVerifyInclusion(idx, size, other, prf, root) == nil {
			t.Fatalf("inclusion proof %d in %d verifies for a changed entry", idx, size)
		}
		if size > 1 {
			j := rapid.Uint64Range(0, size-2).Draw(t, "otherIndex")
			if j >= idx {
				j++
			}
			if VerifyInclusion(j, size, leaf, prf, root) == nil || libVerifyInclusion(j, size, leaf, prf, root) == nil {
				t.Fatalf("inclusion proof of %d in %d verifies at index %d", idx, size, j)
			}
			if VerifyInclusion(j, size, Hash(ref.leaves[j]), prf, root) == nil {
				t.Fatalf("inclusion proof of %d in %d verifies for leaf %d", idx, size, j)
			}
		}
		if len(prf) > 0 {
			i := rapid.IntRange(0, len(prf)-1).Draw(t, "proofElem")
			b := rapid.IntRange(0, 31).Draw(t, "proofByte")
			x := rapid.ByteRange(1, 255).Draw(t, "xor")
			bad := flipped(prf, i, b, x)
			if VerifyInclusion(idx, size, leaf, bad, root) == nil || libVerifyInclusion(idx, size, leaf, bad, root) == nil {
				t.Fatalf("inclusion proof %d in %d verifies with byte %d of hash %d flipped", idx, size, b, i)
			}
		}

		s1 := rapid.SampledFrom(published).Draw(t, "size1")
		s2 := rapid.SampledFrom(published).Draw(t, "size2")
		if s1 > s2 {
			s1, s2 = s2, s1
		}
		cp, err := p.Consistency(ctx, s1, s2)
		if err != nil {
			t.Fatalf("consistency proof %d→%d: %v", s1, s2, err)
		}
		r1, r2 := roots[s1], roots[s2]
		if err := VerifyConsistency(s1, s2, cp, r1, r2); err != nil {
			t.Fatalf("consistency proof %d→%d does not verify: %v", s1, s2, err)
		}
		if err := libVerifyConsistency(s1, s2, cp, r1, r2); err != nil {
			t.Fatalf("consistency proof %d→%d rejected by transparency-dev/merkle: %v", s1, s2, err)
		}
		if len(cp) > 0 {
			i := rapid.IntRange(0, len(cp)-1).Draw(t, "cproofElem")
			b := rapid.IntRange(0, 31).Draw(t, "cproofByte")
			bad := flipped(cp, i, b, 0x80)
			if VerifyConsistency(s1, s2, bad, r1, r2) == nil || libVerifyConsistency(s1, s2, bad, r1, r2) == nil {
				t.Fatalf("consistency proof %d→%d verifies with byte %d of hash %d flipped", s1, s2, b, i)
			}
		}
		bad1 := r1
		bad1[rapid.IntRange(0, 31).Draw(t, "rootByte")] ^= 1
		if VerifyConsistency(s1, s2, cp, bad1, r2) == nil {
			t.Fatalf("consistency proof %d→%d verifies against a wrong first root", s1, s2)
		}
		if s1 < s2 {
			if _, err := p.Consistency(ctx, s2, s1); err == nil {
				t.Fatalf("consistency proof %d→%d (shrinking) did not fail", s2, s1)
			}
		}
	}
}

// TestPropertyTreeProofs builds trees of random sizes with the internal tree
// and a memory sink, publishing partial tiles at random sizes, and checks the
// tiles, roots and proofs against the reference.
func TestPropertyTreeProofs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var n uint64
		if rapid.IntRange(0, 14).Draw(t, "large") == 0 {
			// Across the level-2 boundary (65,536 leaves).
			n = rapid.Uint64Range(65_000, 70_000).Draw(t, "n")
		} else {
			n = rapid.Uint64Range(1, 5000).Draw(t, "n")
		}
		cuts := rapid.SliceOfN(rapid.Uint64Range(1, n), 0, 6).Draw(t, "published")
		cuts = append(cuts, n)
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		extra := rapid.IntRange(0, 40).Draw(t, "extraBytes")

		m := newMemLedger()
		tr := newTree(m)
		ref := newRefModel()
		roots := map[uint64]Hash{}
		if r, _ := tr.root(); r != ref.root() {
			t.Fatalf("empty root %x, want %x", r, ref.root())
		}
		for _, c := range cuts {
			for uint64(len(ref.entries)) < c {
				e := propEntry(len(ref.entries), extra)
				ref.append(e)
				if err := tr.append(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := tr.flushPartial(); err != nil {
				t.Fatal(err)
			}
			got, err := tr.root()
			if err != nil {
				t.Fatal(err)
			}
			if want := ref.root(); got != want {
				t.Fatalf("root at size %d is %x, reference %x", c, got, want)
			}
			roots[c] = got
			checkTilesAt(t, m, ref, c)
		}
		if want := uint64((n - 1) / 1000); tr.epoch != want {
			t.Fatalf("tree epoch %d, want %d", tr.epoch, want)
		}
		p := NewProver(m, rapid.SampledFrom([]int{1, 3, 0}).Draw(t, "cacheTiles"))
		checkProofs(t, p, ref, roots, cuts, 8)

		// For a size no checkpoint was published at, the prover may fail
		// (the partial tiles it needs were never written) but must never
		// return a proof that does not verify.
		s := rapid.Uint64Range(1, n).Draw(t, "unpublishedSize")
		idx := rapid.Uint64Range(0, s-1).Draw(t, "unpublishedIndex")
		if prf, err := p.Inclusion(context.Background(), idx, s); err == nil {
			if err := VerifyInclusion(idx, s, Hash(ref.leaves[idx]), prf, ref.rootAt(s)); err != nil {
				t.Fatalf("prover returned a bad inclusion proof for unpublished size %d: %v", s, err)
			}
		}
		if _, err := p.Inclusion(context.Background(), n, n); err == nil {
			t.Fatalf("inclusion proof for index %d in a tree of size %d did not fail", n, n)
		}
	})
}

// TestPropertyLogProofs writes a real ledger with Open and AppendBatch (short
// checkpoint and sync intervals, small segments, so that partial tiles are
// superseded and deleted while it runs), then checks proofs for every
// published checkpoint size against the reference.
func TestPropertyLogProofs(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	ctx := context.Background()
	l, err := Open(ctx, dir, Options{Origin: testOrigin, Signer: k.signer, CheckpointInterval: time.Millisecond,
		SyncInterval: 15 * time.Millisecond, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 11))
	ref := newRefModel()
	roots := map[uint64]Hash{}
	signed := map[uint64][]byte{}
	const total = 5000
	for len(ref.entries) < total {
		n := 1 + r.IntN(300)
		if r.IntN(4) == 0 {
			n = 1 + r.IntN(3)
		}
		n = min(n, total-len(ref.entries))
		es := make([]Entry, n)
		for i := range es {
			j := len(ref.entries) + i
			es[i] = Entry{Type: Type(1 + j%7), Epoch: uint64(j / 1000), Time: time.UnixMilli(1_700_000_000_000 + int64(j)),
				Payload: append([]byte(fmt.Sprintf("log entry %d/", j)), bytes.Repeat([]byte{byte(j)}, r.IntN(100))...)}
		}
		first, err := l.AppendBatch(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(len(ref.entries)) {
			t.Fatalf("batch acknowledged at %d, want %d", first, len(ref.entries))
		}
		for _, e := range es {
			b, _ := e.MarshalBinary()
			ref.append(b)
		}
		sn, cp, err := l.WaitPublished(ctx, uint64(len(ref.entries)))
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != uint64(len(ref.entries)) {
			t.Fatalf("published size %d, appended %d (single appender)", cp.Size, len(ref.entries))
		}
		if cp.Root != ref.root() {
			t.Fatalf("checkpoint root at %d differs from the reference", cp.Size)
		}
		roots[cp.Size], signed[cp.Size] = cp.Root, sn
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var published []uint64
	for s := range roots {
		published = append(published, s)
	}
	slices.Sort(published)

	// Every checkpoint the log published is signed by its key and is
	// consistent with the final ledger.
	vs := note.VerifierList(k.verifier)
	for _, s := range []uint64{published[0], published[len(published)/2], published[len(published)-1]} {
		if _, _, err := OpenCheckpoint(signed[s], testOrigin, vs); err != nil {
			t.Fatalf("checkpoint at %d: %v", s, err)
		}
		rep, err := Verify(ctx, DirFetcher(dir), VerifyOptions{Origin: testOrigin, Verifiers: vs, Previous: signed[s]})
		if err != nil {
			t.Fatalf("verify with previous checkpoint %d: %v", s, err)
		}
		if rep.PreviousSize != s || rep.Entries != total {
			t.Fatalf("verify report %+v", rep)
		}
	}
	p := NewProver(DirFetcher(dir), 0)
	rapid.Check(t, func(t *rapid.T) {
		checkProofs(t, p, ref, roots, published, 4)
	})
}

// TestVerifyCheckpointOlderThanTiles: C2SP lets a log delete a partial tile
// or bundle once the full one exists, and a client holding an older
// checkpoint then reads the full one and uses its prefix. Verify must accept
// a ledger whose checkpoint was read before the ledger grew past it (a live
// ledger, or a mirror serving an older checkpoint).
func TestVerifyCheckpointOlderThanTiles(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	ctx := context.Background()
	appendN := func(n, from int) {
		es := make([]Entry, n)
		for i := range es {
			es[i] = testEntry(from+i, 1)
		}
		if _, err := l.AppendBatch(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	appendN(100, 0)
	old, _, err := l.WaitPublished(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	appendN(300, 100) // fills bundle 0 and tile 0/000; Close's sync point deletes their partials
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := DirFetcher(dir).Fetch(ctx, EntriesPath(0, 100)); err == nil {
		t.Fatal("partial bundle 000.p/100 still exists; the test needs it superseded")
	}
	f := servedCheckpoint{DirFetcher(dir), old}
	// Proofs at the old size work from the full tiles ...
	if _, err := NewProver(f, 0).Inclusion(ctx, 5, 100); err != nil {
		t.Fatalf("inclusion proof at the older size: %v", err)
	}
	// ... and so must the whole-ledger check.
	if _, err := Verify(ctx, f, VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)}); err != nil {
		t.Fatalf("verify at an older checkpoint whose partial bundle was superseded: %v", err)
	}
}

// servedCheckpoint serves a fixed checkpoint over the files of a ledger.
type servedCheckpoint struct {
	Fetcher
	checkpoint []byte
}

func (s servedCheckpoint) Fetch(ctx context.Context, path string) ([]byte, error) {
	if path == CheckpointPath {
		return s.checkpoint, nil
	}
	return s.Fetcher.Fetch(ctx, path)
}

func TestPropertyHashes(t *testing.T) {
	if emptyRoot != Hash(rfc6962.DefaultHasher.EmptyRoot()) {
		t.Fatal("empty root differs from RFC 6962")
	}
	rapid.Check(t, func(t *rapid.T) {
		// Lengths on both sides of the 512-byte stack buffer in leafHash.
		n := rapid.OneOf(rapid.IntRange(0, 600), rapid.IntRange(505, 520), rapid.IntRange(0, 70_000)).Draw(t, "len")
		seed := rapid.Uint64().Draw(t, "seed")
		b := make([]byte, n)
		rr := rand.New(rand.NewPCG(seed, 1))
		for i := range b {
			b[i] = byte(rr.Uint32())
		}
		if got, want := leafHash(b), rfc6962.DefaultHasher.HashLeaf(b); !bytes.Equal(got[:], want) {
			t.Fatalf("leafHash of %d bytes: %x, want %x", n, got, want)
		}
		if got := LeafHash(b); got != leafHash(b) {
			t.Fatal("LeafHash differs from leafHash")
		}
		var l, r Hash
		copy(l[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "left"))
		copy(r[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "right"))
		if got, want := nodeHash(&l, &r), rfc6962.DefaultHasher.HashChildren(l[:], r[:]); !bytes.Equal(got[:], want) {
			t.Fatalf("nodeHash: %x, want %x", got, want)
		}
	})
}

func TestPropertyEntryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := Entry{
			Type:  Type(rapid.ByteRange(1, 255).Draw(t, "type")),
			Epoch: rapid.Uint64().Draw(t, "epoch"),
			// Any time MarshalBinary accepts must decode again: a ledger
			// must never hold an entry that its own Verify rejects.
			Time:    time.UnixMilli(rapid.Int64Range(0, 1<<63-1).Draw(t, "ms")).Add(time.Duration(rapid.IntRange(0, 999_999).Draw(t, "ns"))),
			Payload: rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "payload"),
		}
		if rapid.IntRange(0, 20).Draw(t, "big") == 0 {
			e.Payload = bytes.Repeat([]byte{0xa5}, MaxPayloadSize-rapid.IntRange(0, 3).Draw(t, "short"))
		}
		if e.Type == TypeWithheld && len(e.Payload) != 32 {
			// A stub carries exactly a leaf hash: the encoder refuses
			// anything else, as the decoder does.
			if _, err := e.MarshalBinary(); err == nil {
				t.Fatalf("marshalled a withheld stub with a %d-byte payload", len(e.Payload))
			}
			return
		}
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal %v: %v", e.Time, err)
		}
		if len(b) != e.Size() || len(b) > MaxEntrySize {
			t.Fatalf("encoding of %d bytes, Size %d", len(b), e.Size())
		}
		d, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("DecodeEntry rejects an entry MarshalBinary produced (time %d ms): %v", e.Time.UnixMilli(), err)
		}
		if d.Type != e.Type || d.Epoch != e.Epoch || d.Time.UnixMilli() != e.Time.UnixMilli() || !bytes.Equal(d.Payload, e.Payload) {
			t.Fatalf("decoded %+v, encoded %+v", d, e)
		}
		if d.Time.Location() != time.UTC {
			t.Fatal("decoded time is not UTC")
		}
		b2, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		if entryEpoch(b) != e.Epoch {
			t.Fatal("entryEpoch differs")
		}
	})
	// Too large a payload, the zero type and negative times are refused.
	for _, e := range []Entry{
		{Type: 1, Payload: make([]byte, MaxPayloadSize+1)},
		{Type: 0},
		{Type: 1, Time: time.UnixMilli(-1)},
	} {
		if _, err := e.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary accepted %v/%d bytes/%v", e.Type, len(e.Payload), e.Time)
		}
	}
}

func TestPropertyCheckpointRoundTrip(t *testing.T) {
	line := rapid.StringMatching(`[!-~][ -~]{0,40}`)
	rapid.Check(t, func(t *rapid.T) {
		c := Checkpoint{
			Origin: line.Draw(t, "origin"),
			Size:   rapid.Uint64().Draw(t, "size"),
			Epoch:  rapid.Uint64().Draw(t, "epoch"),
		}
		copy(c.Root[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "root"))
		for _, x := range rapid.SliceOfN(line, 0, 3).Draw(t, "extra") {
			if !strings.HasPrefix(x, epochPrefix) {
				c.Extra = append(c.Extra, x)
			}
		}
		text := c.Marshal()
		got, err := ParseCheckpoint(text)
		if err != nil {
			t.Fatalf("parse of marshalled checkpoint %q: %v", text, err)
		}
		if got.Origin != c.Origin || got.Size != c.Size || got.Root != c.Root || got.Epoch != c.Epoch || !slices.Equal(got.Extra, c.Extra) {
			t.Fatalf("parsed %+v, marshalled %+v", got, c)
		}
		if !bytes.Equal(got.Marshal(), text) {
			t.Fatal("re-marshal differs")
		}
		// Signed and opened again.
		seed := sha256.Sum256([]byte(c.Origin))
		if !isKeyName(c.Origin) {
			return
		}
		s, vkey, err := NewLogSigner(c.Origin, ed25519.NewKeyFromSeed(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := SignCheckpoint(c, s)
		if err != nil {
			t.Fatal(err)
		}
		oc, _, err := OpenCheckpoint(signed, c.Origin, note.VerifierList(v))
		if err != nil || !bytes.Equal(oc.Marshal(), text) {
			t.Fatalf("open signed checkpoint: %v", err)
		}
	})
}

// TestParseCheckpointMarshalExact: a checkpoint text that ParseCheckpoint
// accepts must come back byte for byte from Marshal, or a parsed and
// re-marshalled checkpoint no longer matches its signature.
func TestParseCheckpointMarshalExact(t *testing.T) {
	root := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, text := range []string{
		"example.com/log\n5\n" + root + "\nepoch 3\n",
		"example.com/log\n5\n" + root + "\nepoch 3\nextension\n",
		// A plain C2SP checkpoint without Chancery's epoch line.
		"example.com/log\n5\n" + root + "\n",
		// The epoch line after another extension line.
		"example.com/log\n5\n" + root + "\nextension\nepoch 3\n",
	} {
		c, err := ParseCheckpoint([]byte(text))
		if err != nil {
			continue // refusing is fine; accepting and changing is not
		}
		if got := string(c.Marshal()); got != text {
			t.Errorf("ParseCheckpoint accepted %q but Marshal gives %q", text, got)
		}
	}
}

func TestPropertyTilePaths(t *testing.T) {
	for _, c := range []struct {
		level, index uint64
		width        int
		want         string
	}{
		{0, 1234067, 0, "tile/0/x001/x234/067"},
		{0, 5, 0, "tile/0/005"},
		{1, 0, 0, "tile/1/000"},
		{2, 1000, 0, "tile/2/x001/000"},
		{0, 999, 256, "tile/0/999"},
		{3, 5, 17, "tile/3/005.p/17"},
		{63, 1<<64 - 1, 255, "tile/63/x018/x446/x744/x073/x709/x551/615.p/255"},
	} {
		if got := TilePath(c.level, c.index, c.width); got != c.want {
			t.Errorf("TilePath(%d, %d, %d) = %q, want %q", c.level, c.index, c.width, got, c.want)
		}
	}
	if got := EntriesPath(1234067, 7); got != "tile/entries/x001/x234/067.p/7" {
		t.Errorf("EntriesPath = %q", got)
	}
	for _, bad := range []string{
		"tile/0/5", "tile/0/x000/005", "tile/00/005", "tile/64/000", "tile/-1/000", "tile/0/005.p/0",
		"tile/0/005.p/256", "tile/0/005.p/07", "tile/0/005.p/+7", "tile/0/x1/005", "tile/0/001/002",
		"tile/0/x001", "tile/0/", "tile/0", "tile/entries/", "tiles/0/000", "/tile/0/000", "tile/0/000/",
		"tile/0/x018/x446/x744/x073/x709/x551/616", "tile/0/0a0", "tile/0/000.p/", "tile/x/000", "tile/0/000.p/5/",
	} {
		if l, i, w, err := ParseTilePath(bad); err == nil {
			t.Errorf("ParseTilePath(%q) = %d, %d, %d; want an error", bad, l, i, w)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		level := rapid.Uint64Range(0, 63).Draw(t, "level")
		index := rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(0, 5000)).Draw(t, "index")
		width := rapid.IntRange(0, TileWidth).Draw(t, "width")
		wantW := width
		if width == TileWidth {
			wantW = 0
		}
		p := TilePath(level, index, width)
		l, i, w, err := ParseTilePath(p)
		if err != nil || l != int(level) || i != index || w != wantW {
			t.Fatalf("ParseTilePath(%q) = %d, %d, %d, %v", p, l, i, w, err)
		}
		// Independent formatting: groups of three digits, x on all but the last.
		digits := fmt.Sprint(index)
		for len(digits)%3 != 0 {
			digits = "0" + digits
		}
		var groups []string
		for j := 0; j < len(digits); j += 3 {
			groups = append(groups, digits[j:j+3])
		}
		for j := range groups[:len(groups)-1] {
			groups[j] = "x" + groups[j]
		}
		want := strings.Join(groups, "/")
		if wantW > 0 {
			want += fmt.Sprintf(".p/%d", wantW)
		}
		if p != fmt.Sprintf("tile/%d/%s", level, want) {
			t.Fatalf("TilePath(%d, %d, %d) = %q, want tile/%d/%s", level, index, width, p, level, want)
		}
		ep := EntriesPath(index, width)
		if ep != "tile/entries/"+want {
			t.Fatalf("EntriesPath = %q", ep)
		}
		if l, i, w, err := ParseTilePath(ep); err != nil || l != -1 || i != index || w != wantW {
			t.Fatalf("ParseTilePath(%q) = %d, %d, %d, %v", ep, l, i, w, err)
		}
		size := rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(0, 1<<20)).Draw(t, "size")
		lv := rapid.Uint64Range(0, 9).Draw(t, "widthLevel")
		if got, want := partialWidth(lv, size), expectedWidth(lv, size); got != want {
			t.Fatalf("partialWidth(%d, %d) = %d, want %d", lv, size, got, want)
		}
		// tileWidthAt agrees with partialWidth for the rightmost tile.
		if n := size >> (TileHeight * lv); n > 0 {
			last := (n - 1) / TileWidth
			got := tileWidthAt(lv, last, size)
			want := partialWidth(lv, size)
			if want == 0 {
				want = TileWidth
			}
			if got != want {
				t.Fatalf("tileWidthAt(%d, %d, %d) = %d, want %d", lv, last, size, got, want)
			}
			if tileWidthAt(lv, last+1, size) != 0 {
				t.Fatal("tileWidthAt past the end is not 0")
			}
		}
	})
}

// TestVerifyErrorLeaksNoGoroutines: Verify reads entry bundles ahead of the
// hashing; when it stops at an error, the readers must stop too, or every
// failed verification (a site checking a damaged peer again and again)
// leaks goroutines and the bundles they hold.
func TestVerifyErrorLeaksNoGoroutines(t *testing.T) {
	m := newMemLedger()
	tr := newTree(m)
	const n = 64 * TileWidth
	for i := 0; i < n; i++ {
		if err := tr.append(propEntry(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.flushPartial(); err != nil {
		t.Fatal(err)
	}
	root, _ := tr.root()
	k := newTestKey(t, testOrigin)
	signed, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: n, Root: root, Epoch: tr.epoch}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	m.tile(CheckpointPath, signed, false)
	if _, err := Verify(context.Background(), m, VerifyOptions{}); err != nil {
		t.Fatalf("verify of the intact ledger: %v", err)
	}
	// Damage the first bundle: Verify fails at entry 0.
	b0, _ := m.Fetch(context.Background(), EntriesPath(0, 0))
	bad := bytes.Clone(b0)
	bad[2] = 99 // entry version
	m.tile(EntriesPath(0, 0), bad, true)
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		if _, err := Verify(context.Background(), m, VerifyOptions{}); err == nil {
			t.Fatal("verify of a damaged bundle passed")
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before five failed verifications, %d after:\n%s", before, g, buf[:runtime.Stack(buf, true)])
	}
}
