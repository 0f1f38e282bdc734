package store

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/restic/chunker"
)

// PolynomialFromSeed derives the chunker polynomial deterministically from
// secret key material (for example a key the seal package derives from the
// guest's root key for this purpose). Every site of a guest derives the same
// polynomial, so chunk boundaries, and therefore dedup, agree everywhere;
// and since the seed is secret, a host cannot predict boundaries to
// fingerprint known documents by their chunk sizes.
func PolynomialFromSeed(seed []byte) (chunker.Pol, error) {
	if len(seed) < 16 {
		return 0, fmt.Errorf("store: polynomial seed of %d bytes; want at least 16", len(seed))
	}
	p, err := chunker.DerivePolynomial(&seedStream{seed: seed})
	if err != nil {
		return 0, fmt.Errorf("store: derive polynomial: %w", err)
	}
	return p, nil
}

// seedStream is SHA-256 in counter mode over the seed: an endless,
// deterministic byte stream for DerivePolynomial's rejection sampling.
type seedStream struct {
	seed []byte
	ctr  uint64
	buf  []byte
}

func (r *seedStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			h := sha256.New()
			h.Write([]byte("chancery/store/chunker-polynomial/v1\x00"))
			h.Write(binary.BigEndian.AppendUint64(nil, r.ctr))
			h.Write(r.seed)
			r.buf = h.Sum(nil)
			r.ctr++
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}
