package extract

// WritePDF lets the tests embed an altered extract, which PDF refuses to.
var WritePDF = writePDF

// QRMatrix exposes the encoder for the comparison with gozxing's.
var QRMatrix = qrMatrix
