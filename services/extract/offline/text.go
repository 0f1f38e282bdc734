package offline

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
	"sync"
)

// MaxExtractSize bounds a decompressed extract: a QR code holds at most
// 2,953 bytes, and zlib must not be a way to make the verifier allocate
// without bound.
const MaxExtractSize = 64 << 10

// EncodeText returns the text a QR code holds: "CX1:" then the Base45 of
// the zlib-compressed COSE_Sign1, as the EU Digital COVID Certificate did
// with "HC1:".
func EncodeText(msg []byte) (string, error) {
	var e TextEncoder
	return e.EncodeText(msg)
}

// TextEncoder is EncodeText for many extracts: it reuses its zlib
// compressors, whose tables (a quarter of a megabyte at the best level)
// cost more to allocate and clear than compressing an extract does. Its
// zero value is ready; it is safe for concurrent use.
type TextEncoder struct{ pool sync.Pool }

// EncodeText is the package's EncodeText.
func (e *TextEncoder) EncodeText(msg []byte) (string, error) {
	var b bytes.Buffer
	w, _ := e.pool.Get().(*zlib.Writer)
	if w == nil {
		var err error
		if w, err = zlib.NewWriterLevel(&b, zlib.BestCompression); err != nil {
			return "", err
		}
	} else {
		w.Reset(&b)
	}
	if _, err := w.Write(msg); err != nil {
		return "", fmt.Errorf("compress extract: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("compress extract: %w", err)
	}
	e.pool.Put(w)
	text := TextPrefix + Base45Encode(b.Bytes())
	// Hand out only a text that reads back (Inflate is strict).
	if got, err := DecodeText(text); err != nil || !bytes.Equal(got, msg) {
		return "", fmt.Errorf("extract text: does not read back (%v)", err)
	}
	return text, nil
}

// DecodeText is the inverse of EncodeText. It refuses trailing data after
// the zlib stream, which would otherwise be a place to alter the text
// unnoticed.
func DecodeText(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, TextPrefix)
	if !ok {
		return nil, fmt.Errorf("extract text: does not start with %q", TextPrefix)
	}
	z, err := Base45Decode(rest)
	if err != nil {
		return nil, fmt.Errorf("extract text: %w", err)
	}
	msg, err := Inflate(z, ZlibBest)
	if err != nil {
		return nil, fmt.Errorf("extract text: %w", err)
	}
	return msg, nil
}
