package store

import (
	"errors"

	"github.com/chancery-gov/chancery/internal/padme"
)

// Padded payloads. Without padding a sealed chunk is its plaintext plus a
// fixed overhead, so an incompressible chunk's exact length — and, chunk
// by chunk, a known document's — shows through the encryption. Padmé
// padding (internal/padme) rounds a length L up so that only its top
// floor(log2 log2 L)+1 bits remain: at most 12% more, about 3% for a 1 MiB
// chunk, and a length leaks O(log log L) bits instead of O(log L).
//
// A padded payload is
//
//	flag (chunkFlagRawPadded or chunkFlagZstdPadded) ‖ body length u32 ‖ body ‖ zeros
//
// of exactly padme(5 + body length) bytes, all inside the sealed envelope.
// Payloads of flags 0 and 1 (written before padding) still open: their
// flag says what they are, so they cannot be misread.
const (
	chunkFlagRawPadded  = 2
	chunkFlagZstdPadded = 3
	paddedHeaderLen     = 1 + 4
)

// appendPaddedHeader starts a padded payload of flag (chunkFlagRaw or
// chunkFlagZstd) in dst: the body is appended after it, then finishPadded
// completes it, so the body is never moved.
func appendPaddedHeader(dst []byte, flag byte) []byte {
	return append(dst, flag+chunkFlagRawPadded, 0, 0, 0, 0)
}

// finishPadded writes the body length into a payload begun with
// appendPaddedHeader and appends zeros up to its Padmé length.
func finishPadded(p []byte) []byte { return padme.Finish(p, 1) }

// unpadPayload returns the flag (0 or 1) and body of a payload, padded or
// not. A padded payload must have exactly its Padmé length and zero
// padding, so one payload has one encoding.
func unpadPayload(p []byte) (flag byte, body []byte, err error) {
	if len(p) == 0 {
		return 0, nil, errors.New("empty payload")
	}
	switch p[0] {
	case chunkFlagRaw, chunkFlagZstd:
		return p[0], p[1:], nil
	case chunkFlagRawPadded, chunkFlagZstdPadded:
	default:
		return 0, nil, errors.New("unknown payload flag")
	}
	if body, err = padme.Body(p, 1); err != nil {
		return 0, nil, err
	}
	return p[0] - chunkFlagRawPadded, body, nil
}
