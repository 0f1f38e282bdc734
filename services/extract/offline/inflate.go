package offline

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
)

// Zlib headers (RFC 1950: CMF, FLG) as Go's compress/zlib writes them; FLG
// carries a two-bit level hint a decoder ignores, so a reader that must
// refuse every altered byte pins the whole header.
var (
	ZlibBest  = [2]byte{0x78, 0xda} // zlib.BestCompression: the QR text
	ZlibSpeed = [2]byte{0x78, 0x01} // zlib.BestSpeed: what fpdf embeds
)

// Inflate decompresses a zlib stream of at most MaxExtractSize bytes and
// refuses every spelling of it but one: the header must be header, nothing
// may follow the checksum, and the padding bits a deflate decoder skips
// (after the final block's last code, or before the empty stored block
// Go's writer closes with) must be zero. Without that, one byte of a QR
// text could change and the extract still verify: harmless, since the
// content is the same, but a verifier that is to say "altered" for every
// altered byte must see it.
func Inflate(z []byte, header [2]byte) ([]byte, error) {
	if len(z) < 2+1+4 || z[0] != header[0] || z[1] != header[1] {
		return nil, fmt.Errorf("zlib: header is not %x", header[:])
	}
	out, err := inflate(z)
	if err != nil {
		return nil, err
	}
	// The byte holding the padding: just before the checksum, or before
	// a trailing empty stored block (00 00 ff ff).
	last := len(z) - 5
	if len(z) >= 2+5+4 && bytes.Equal(z[len(z)-8:len(z)-4], []byte{0, 0, 0xff, 0xff}) {
		last = len(z) - 9
	}
	if last >= 2 {
		// Clear the high bits from the top down: while only padding is
		// cleared the stream still inflates, and a nonzero padding bit
		// then shows as an identical output; the first clear that breaks
		// the stream has reached a bit the decoder reads, and every
		// lower one would too.
		b := z[last]
		alt := bytes.Clone(z)
		for k := 7; k >= 0; k-- {
			c := b & (1<<k - 1)
			if c == b {
				continue
			}
			alt[last] = c
			o, err := inflate(alt)
			if err != nil || !bytes.Equal(o, out) {
				break
			}
			return nil, fmt.Errorf("zlib: padding bits of byte %d are not zero", last)
		}
	}
	return out, nil
}

func inflate(z []byte) ([]byte, error) {
	br := bytes.NewReader(z)
	r, err := zlib.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxExtractSize+1))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if len(out) > MaxExtractSize {
		return nil, fmt.Errorf("zlib: more than %d bytes decompressed", MaxExtractSize)
	}
	if err := r.Close(); err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if br.Len() != 0 {
		return nil, errors.New("zlib: data after the stream")
	}
	return out, nil
}
