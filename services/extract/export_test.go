package extract

import "github.com/makiuchi-d/gozxing/qrcode/encoder"

// WritePDF lets the tests embed an altered extract, which PDF refuses to.
var WritePDF = writePDF

// QRMatrix exposes the encoder for the comparison with gozxing's: a
// fresh encoder, so each call makes its version's layout.
func QRMatrix(text string) (*encoder.ByteMatrix, error) {
	var q QREncoder
	return q.qrMatrix(text)
}

// Matrix is QRMatrix with the encoder's layouts reused.
func (q *QREncoder) Matrix(text string) (*encoder.ByteMatrix, error) { return q.qrMatrix(text) }
