package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ID names a chunk: the Sealer's keyed hash of its plaintext. Because the
// hash is keyed, an id says nothing about content to whoever holds no key.
type ID = [32]byte

// Ref is what a caller keeps to read an attachment back: its length and
// the ids of its chunks in order. A Ref reveals no content but it is only
// meaningful together with the Sealer's keys.
type Ref struct {
	Size   int64
	Chunks []ID
}

// refMagic starts every encoded Ref; the trailing byte is the version.
var refMagic = [5]byte{'C', 'H', 'R', 'F', 1}

const refHeaderLen = len(refMagic) + 8 + 4

// MarshalBinary encodes the Ref as
// "CHRF" 0x01 | size uint64 BE | count uint32 BE | count × id[32].
// Fixed-width fields make the encoding canonical: one Ref, one byte string,
// so Hash is well defined.
func (r Ref) MarshalBinary() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r.encode(), nil
}

func (r Ref) encode() []byte {
	out := make([]byte, refHeaderLen, refHeaderLen+32*len(r.Chunks))
	copy(out, refMagic[:])
	binary.BigEndian.PutUint64(out[5:], uint64(r.Size))
	binary.BigEndian.PutUint32(out[13:], uint32(len(r.Chunks)))
	for _, id := range r.Chunks {
		out = append(out, id[:]...)
	}
	return out
}

// UnmarshalBinary is strict: wrong magic or version, a length that does not
// match the count exactly, or a size that no chunking could have produced
// is an error, so two different byte strings never decode to one Ref.
func (r *Ref) UnmarshalBinary(data []byte) error {
	if len(data) < refHeaderLen {
		return fmt.Errorf("store: ref: %d bytes, shorter than the %d-byte header", len(data), refHeaderLen)
	}
	if [5]byte(data[:5]) != refMagic {
		return errors.New("store: ref: bad magic or version")
	}
	size := binary.BigEndian.Uint64(data[5:])
	count := binary.BigEndian.Uint32(data[13:])
	if uint64(len(data)-refHeaderLen) != uint64(count)*32 {
		return fmt.Errorf("store: ref: %d chunk ids declared but %d bytes follow", count, len(data)-refHeaderLen)
	}
	out := Ref{Size: int64(size), Chunks: make([]ID, count)}
	if size > 1<<62 {
		return fmt.Errorf("store: ref: size %d out of range", size)
	}
	for i := range out.Chunks {
		copy(out.Chunks[i][:], data[refHeaderLen+32*i:])
	}
	if err := out.validate(); err != nil {
		return err
	}
	if count == 0 {
		out.Chunks = nil
	}
	*r = out
	return nil
}

// validate checks that Size is consistent with the chunk count: every
// chunk holds at least one byte and at most the chunker's maximum.
func (r Ref) validate() error {
	n := int64(len(r.Chunks))
	switch {
	case r.Size < 0:
		return fmt.Errorf("store: ref: negative size %d", r.Size)
	case n > 1<<32-1:
		return fmt.Errorf("store: ref: %d chunks, too many", n)
	case r.Size < n:
		return fmt.Errorf("store: ref: size %d too small for %d chunks", r.Size, n)
	case r.Size > n*MaxChunk:
		return fmt.Errorf("store: ref: size %d too large for %d chunks", r.Size, n)
	}
	return nil
}

// Hash returns SHA-256 over a domain tag and the canonical encoding, for
// callers (the ledger) that reference an attachment by hash. It hashes
// even a Ref that MarshalBinary would reject, so it never fails; such a Ref
// cannot be read back anyway.
func (r Ref) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte("chancery/store/ref/v1\x00"))
	h.Write(r.encode())
	return [32]byte(h.Sum(nil))
}
