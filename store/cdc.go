package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Chunk sizes. A chunk is cut where the rolling hash says so, but never
// before MinChunk bytes nor after MaxChunk; cuts average about AvgChunk.
const (
	MinChunk = 512 << 10
	AvgChunk = 1 << 20
	MaxChunk = 8 << 20
)

// Chunking is a secret content-defined chunking function: a gear table
// derived from key material (FastCDC-style, with normalised chunking).
//
// Every site of a guest derives the same table from the same seed, so chunk
// boundaries, and therefore deduplication, agree everywhere; since the
// seed is secret, a host cannot predict boundaries to fingerprint a known
// document by its chunk sizes.
//
// Chancery first used github.com/restic/chunker (a Rabin fingerprint). On
// this project's 2-core machine it ran at 600 MB/s against 2.8 GB/s for
// this gear hash, and took a third of the ingest's CPU
// (docs/benchmarks.md); the gear hash also skips the first MinChunk bytes
// of each chunk, which cannot hold a cut.
type Chunking struct {
	gear [256]uint64
}

// The masks take the hash's high bits, which depend on the last 64 bytes
// read. Before AvgChunk two more bits must be zero than after it, which
// pulls cuts towards the average (FastCDC's normalisation, level 2).
const (
	maskSmall = uint64(1<<22-1) << (64 - 22)
	maskLarge = uint64(1<<18-1) << (64 - 18)
)

// ChunkingFromSeed derives a chunking function from at least 16 bytes of
// secret key material (for example seal's Keyring.ChunkerSeed).
func ChunkingFromSeed(seed []byte) (*Chunking, error) {
	if len(seed) < 16 {
		return nil, fmt.Errorf("store: chunking seed of %d bytes; want at least 16", len(seed))
	}
	c := &Chunking{}
	var block [32]byte
	for i := 0; i < len(c.gear); i += 4 {
		// SHA-256 in counter mode over the seed: deterministic, and no
		// table entry reveals another or the seed.
		h := sha256.New()
		h.Write([]byte("chancery/store/gear-table/v1\x00"))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(i/4)))
		h.Write(seed)
		h.Sum(block[:0])
		for j := 0; j < 4; j++ {
			c.gear[i+j] = binary.BigEndian.Uint64(block[8*j:])
		}
	}
	clear(block[:])
	return c, nil
}

// Wipe zeroes the gear table, which is key material: with it a host could
// predict chunk boundaries. The Chunking must not be used afterwards
// (zero gears would cut every chunk at MinChunk).
func (c *Chunking) Wipe() {
	if c != nil {
		clear(c.gear[:])
	}
}

// scan continues looking for the first chunk's boundary in b from position
// i (at least MinChunk) with rolling hash h, as left by the previous scan
// of a shorter prefix of b. It returns the boundary, or, without one, the
// position and hash to resume from once more of b has been read. MaxChunk
// is always a boundary.
func (c *Chunking) scan(b []byte, i int, h uint64) (cut int, found bool, next int, hNext uint64) {
	end := min(len(b), MaxChunk)
	for ; i < min(end, AvgChunk); i++ {
		h = h<<1 + c.gear[b[i]]
		if h&maskSmall == 0 {
			return i + 1, true, 0, 0
		}
	}
	for ; i < end; i++ {
		h = h<<1 + c.gear[b[i]]
		if h&maskLarge == 0 {
			return i + 1, true, 0, 0
		}
	}
	if end == MaxChunk {
		return MaxChunk, true, 0, 0
	}
	return 0, false, i, h
}

// splitter reads a stream and returns it chunk by chunk.
type splitter struct {
	c       *Chunking
	r       io.Reader
	pending []byte // read past the last cut
	eof     bool
}

// readBlock is how much a splitter reads at a time: bytes past a cut are
// carried to the next chunk, so a small block keeps that copy small.
const readBlock = 256 << 10

func (c *Chunking) newSplitter(r io.Reader) *splitter { return &splitter{c: c, r: r} }

// next fills buf (capacity at least MaxChunk) with the next chunk and
// returns it, or io.EOF at the end of the stream. A chunk's bounds depend
// only on the stream's bytes, never on how reads return them: the hash
// starts at MinChunk and resumes where the previous scan stopped.
func (s *splitter) next(buf []byte) ([]byte, error) {
	buf = buf[:cap(buf)]
	if len(buf) < MaxChunk {
		return nil, errors.New("store: chunk buffer smaller than MaxChunk")
	}
	n := copy(buf, s.pending)
	s.pending = s.pending[:0]
	pos, h := MinChunk, uint64(0)
	for {
		if n > MinChunk {
			cut, found, p, hh := s.c.scan(buf[:n], pos, h)
			if found {
				s.pending = append(s.pending, buf[cut:n]...)
				return buf[:cut], nil
			}
			pos, h = p, hh
		}
		if s.eof {
			if n == 0 {
				return nil, io.EOF
			}
			return buf[:n], nil // the stream's last chunk
		}
		m, err := io.ReadAtLeast(s.r, buf[n:min(n+readBlock, MaxChunk)], 1)
		n += m
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			s.eof = true
		case err != nil:
			return nil, err
		}
	}
}
