package store

import (
	"github.com/chancery-gov/chancery/internal/padme"

	"bytes"
	"testing"
)

func TestPadme(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, 0}, {1, 1}, {2, 2}, {9, 10}, {100, 104}, {1000, 1024},
		{1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<15}, {MaxChunk + 5, MaxChunk + 1<<18},
	} {
		if got := padme.Len(tc.n); got != tc.want {
			t.Errorf("padme.Len(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	for n := 2; n < 1<<21; n += 1 + n/97 {
		p := padme.Len(n)
		if p < n || float64(p-n) > 0.12*float64(n) || padme.Len(p) != p {
			t.Fatalf("padme.Len(%d) = %d: not a bounded, idempotent rounding up", n, p)
		}
	}
}

// TestPaddedPayload: a payload is padded to its Padmé length inside the
// seal, and unpadding is strict; payloads written before padding (flags 0
// and 1) still open as what their flag says.
func TestPaddedPayload(t *testing.T) {
	body := bytes.Repeat([]byte{0xab}, 1000)
	p := finishPadded(append(appendPaddedHeader(nil, chunkFlagZstd), body...))
	if len(p) != padme.Len(paddedHeaderLen+len(body)) || p[0] != chunkFlagZstdPadded {
		t.Fatalf("padded to %d bytes with flag %d", len(p), p[0])
	}
	flag, got, err := unpadPayload(p)
	if err != nil || flag != chunkFlagZstd || !bytes.Equal(got, body) {
		t.Fatalf("unpad: flag %d, %d bytes, %v", flag, len(got), err)
	}
	// A reused buffer with stale bytes past the body pads with zeros too.
	stale := bytes.Repeat([]byte{0xff}, 4096)
	q := finishPadded(append(appendPaddedHeader(stale[:0], chunkFlagZstd), body...))
	if !bytes.Equal(q, p) {
		t.Fatal("padding in a reused buffer differs")
	}
	bad := bytes.Clone(p)
	bad[len(bad)-1] = 1
	if _, _, err := unpadPayload(bad); err == nil {
		t.Error("non-zero padding accepted")
	}
	if _, _, err := unpadPayload(p[:len(p)-1]); err == nil {
		t.Error("payload shorter than its Padmé length accepted")
	}
	if _, _, err := unpadPayload([]byte{9, 0}); err == nil {
		t.Error("unknown flag accepted")
	}
	flag, got, err = unpadPayload(append([]byte{chunkFlagRaw}, body...))
	if err != nil || flag != chunkFlagRaw || !bytes.Equal(got, body) {
		t.Errorf("unpadded payload of before: %v", err)
	}
}
