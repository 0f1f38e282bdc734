package store

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"pgregory.net/rapid"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func splitAll(t interface{ Fatal(...any) }, c *Chunking, r io.Reader) [][]byte {
	s := c.newSplitter(r)
	var out [][]byte
	for {
		buf := make([]byte, MaxChunk)
		ch, err := s.next(buf)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), ch...))
	}
}

// randomReader returns reads of random sizes, so chunk bounds are checked
// not to depend on how a stream arrives.
type randomReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	n := 1 + r.rng.IntN(min(len(p), 300<<10))
	return r.r.Read(p[:n])
}

// TestChunkingProperties: chunks reassemble the stream; every chunk but the
// last is within [MinChunk, MaxChunk]; bounds do not depend on read sizes;
// and a change near the start leaves later chunks alone (the property
// deduplication rests on).
func TestChunkingProperties(t *testing.T) {
	c, err := ChunkingFromSeed([]byte("a test seed of sixteen bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 12<<20).Draw(t, "size")
		data := randomBytes(rapid.Uint64().Draw(t, "seed"), n)
		chunks := splitAll(t, c, bytes.NewReader(data))
		if !bytes.Equal(bytes.Join(chunks, nil), data) {
			t.Fatal("chunks do not reassemble the stream")
		}
		for i, ch := range chunks {
			if len(ch) > MaxChunk || (i < len(chunks)-1 && len(ch) < MinChunk) {
				t.Fatalf("chunk %d of %d has %d bytes", i, len(chunks), len(ch))
			}
		}
		again := splitAll(t, c, &randomReader{bytes.NewReader(data), rand.New(rand.NewPCG(uint64(n), 1))})
		if len(again) != len(chunks) {
			t.Fatalf("%d chunks with whole reads, %d with random reads", len(chunks), len(again))
		}
		for i := range again {
			if !bytes.Equal(again[i], chunks[i]) {
				t.Fatalf("chunk %d differs with random reads", i)
			}
		}
	})
	// One byte read at a time gives the same bounds.
	data := randomBytes(3, 5<<20)
	want := splitAll(t, c, bytes.NewReader(data))
	got := splitAll(t, c, iotest.OneByteReader(bytes.NewReader(data)))
	if len(got) != len(want) {
		t.Fatalf("one-byte reads: %d chunks, want %d", len(got), len(want))
	}
}

func TestChunkingResynchronises(t *testing.T) {
	c, _ := ChunkingFromSeed([]byte("a test seed of sixteen bytes or more"))
	data := randomBytes(11, 24<<20)
	edited := append(append([]byte("a short insertion"), data[:100]...), data[100:]...)
	a := splitAll(t, c, bytes.NewReader(data))
	b := splitAll(t, c, bytes.NewReader(edited))
	shared := map[string]bool{}
	for _, ch := range a {
		shared[string(ch)] = true
	}
	same := 0
	for _, ch := range b {
		if shared[string(ch)] {
			same++
		}
	}
	if same < len(a)-2 {
		t.Fatalf("after an insertion at the start only %d of %d chunks are shared", same, len(a))
	}
	// Another seed cuts elsewhere: boundaries are secret.
	c2, _ := ChunkingFromSeed([]byte("another seed of sixteen bytes or more"))
	other := splitAll(t, c2, bytes.NewReader(data))
	if len(other) > 1 && len(a) > 1 && len(other[0]) == len(a[0]) && len(other[1]) == len(a[1]) {
		t.Fatal("two seeds cut the same stream at the same places")
	}
	if _, err := ChunkingFromSeed(make([]byte, 8)); err == nil {
		t.Fatal("an 8-byte seed was accepted")
	}
}

func BenchmarkChunking(b *testing.B) {
	c, _ := ChunkingFromSeed([]byte("a test seed of sixteen bytes or more"))
	data := randomBytes(5, 64<<20)
	buf := make([]byte, MaxChunk)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := c.newSplitter(bytes.NewReader(data))
		for {
			if _, err := s.next(buf); err != nil {
				break
			}
		}
	}
}

func TestChunkingWipe(t *testing.T) {
	c, err := ChunkingFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	c.Wipe()
	for i, g := range c.gear {
		if g != 0 {
			t.Fatalf("gear %d survives Wipe", i)
		}
	}
}
