// Package padme pads a length-prefixed payload to its Padmé length
// (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
// Communication with PURBs", PETS 2019): a length L is rounded up so that
// only its top floor(log2 log2 L)+1 bits remain, at most 12% more (about
// 3% at 1 MiB), and a sealed length leaks O(log log L) bits of the
// plaintext's length instead of O(log L). Blob chunks (store) and record
// bodies (seal) are padded with it, inside their AEAD, so the padding is
// authenticated too.
//
// A padded payload is
//
//	header (at bytes, the caller's) ‖ body length u32 ‖ body ‖ zeros
//
// of exactly Len(at + 4 + body length) bytes. One body has one encoding:
// Body refuses any other length and any non-zero padding.
package padme

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// Len is the Padmé length of a payload of n bytes.
func Len(n int) int {
	if n < 2 {
		return n
	}
	e := bits.Len(uint(n)) - 1 // floor(log2 n)
	s := bits.Len(uint(e))     // floor(log2 e) + 1
	mask := 1<<(e-s) - 1
	return (n + mask) &^ mask
}

// Finish completes a payload whose body follows a 4-byte length field at
// p[at:at+4] (reserved by the caller, who appended the body after it):
// it writes the body length and appends zeros up to the Padmé length of
// the whole, reusing p's capacity when there is room, so the body is
// never moved.
func Finish(p []byte, at int) []byte {
	body := len(p) - at - 4
	binary.BigEndian.PutUint32(p[at:at+4], uint32(body))
	total := Len(len(p))
	if cap(p) >= total {
		p = p[:total]
		clear(p[at+4+body:])
		return p
	}
	return append(p, make([]byte, total-len(p))...)
}

// Body returns the body of a payload made by Finish with the same at. It
// aliases p.
func Body(p []byte, at int) ([]byte, error) {
	if len(p) < at+4 {
		return nil, errors.New("padded payload shorter than its header")
	}
	n := int(binary.BigEndian.Uint32(p[at : at+4]))
	if n > len(p)-at-4 || Len(at+4+n) != len(p) {
		return nil, errors.New("padded payload of the wrong length")
	}
	for _, b := range p[at+4+n:] {
		if b != 0 {
			return nil, errors.New("padding is not zero")
		}
	}
	return p[at+4 : at+4+n], nil
}
