package extract_test

import (
	"math/rand/v2"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/encoder"

	"github.com/chancery-gov/chancery/services/extract"
)

// TestQRMatchesGozxing: our data codewords and Reed-Solomon coding give,
// module for module, the code gozxing's own encoder makes for the same
// text and mask, for lengths across versions 1 to 40 (one group of blocks
// and two, every count width).
func TestQRMatchesGozxing(t *testing.T) {
	const alpha = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 20, 47, 48, 100, 224, 225, 500, 1000, 1209, 1500, 2000, 3391} {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		text := string(b)
		ours, err := extract.QRMatrix(text)
		if err != nil {
			t.Fatalf("%d characters: %v", n, err)
		}
		// Our mask is the one of least penalty; ask gozxing for the same.
		mask := -1
		for m := range 8 {
			q, err := encoder.Encoder_encode(text, decoder.ErrorCorrectionLevel_M, map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_QR_MASK_PATTERN: m})
			if err != nil {
				t.Fatalf("gozxing, %d characters: %v", n, err)
			}
			if same(q.GetMatrix(), ours) {
				mask = m
			}
		}
		if mask < 0 {
			t.Fatalf("%d characters: no gozxing mask gives our code", n)
		}
	}
}

func same(a, b *encoder.ByteMatrix) bool {
	if a.GetWidth() != b.GetWidth() {
		return false
	}
	for y, row := range a.GetArray() {
		for x, v := range row {
			if b.Get(x, y) != v {
				return false
			}
		}
	}
	return true
}
