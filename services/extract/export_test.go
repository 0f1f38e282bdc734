package extract

// WritePDF lets the tests embed an altered extract, which PDF refuses to.
var WritePDF = writePDF
