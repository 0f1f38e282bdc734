package extract

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/makiuchi-d/gozxing"
	gzqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/yeqown/go-qrcode/v2"
)

// QR image geometry: 4 pixels a module and the 4-module quiet zone the
// QR standard asks for.
const (
	qrScale = 4
	qrQuiet = 4
)

// QRPNG renders the text of an extract (offline.EncodeText) as a QR code
// in alphanumeric mode, error correction level M, as a 1-bit PNG.
func QRPNG(text string) ([]byte, error) {
	q, err := qrcode.NewWith(text, qrcode.WithEncodingMode(qrcode.EncModeAlphanumeric), qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
	if err != nil {
		return nil, fmt.Errorf("QR code of %d characters: %w", len(text), err)
	}
	w := &pngWriter{}
	if err := q.Save(w); err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	return w.buf.Bytes(), nil
}

// pngWriter writes the QR matrix as a paletted PNG: the library's own
// writer draws through a general 2D graphics package, which costs more
// than the QR encoding itself.
type pngWriter struct{ buf bytes.Buffer }

func (p *pngWriter) Write(m qrcode.Matrix) error {
	n := m.Width() + 2*qrQuiet
	img := image.NewPaletted(image.Rect(0, 0, n*qrScale, n*qrScale), color.Palette{color.White, color.Black})
	m.Iterate(qrcode.IterDirection_ROW, func(x, y int, v qrcode.QRValue) {
		if !v.IsSet() {
			return
		}
		for dy := range qrScale {
			row := img.Pix[((y+qrQuiet)*qrScale+dy)*img.Stride:]
			for dx := range qrScale {
				row[(x+qrQuiet)*qrScale+dx] = 1
			}
		}
	})
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return enc.Encode(&p.buf, img)
}

func (p *pngWriter) Close() error { return nil }

// ReadQRPNG decodes the text of the QR code in a PNG (or any image the
// standard library decodes).
func ReadQRPNG(b []byte) (string, error) {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("QR image: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("QR image: %w", err)
	}
	res, err := gzqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		return "", fmt.Errorf("QR image: no QR code read: %w", err)
	}
	return res.GetText(), nil
}
