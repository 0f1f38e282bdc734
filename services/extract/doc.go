// Package extract issues the state's certified extracts: it signs the
// claims with the state's extract key, records the act in the ledger,
// proves its inclusion against a checkpoint the sites cosigned, and
// renders the result as the text of a QR code, a QR PNG, a PDF and an
// SD-JWT VC. Verification is in services/extract/offline, which a
// verifier imports alone; this package adds reading extracts back out of
// PNG and PDF files, and the online check for a later record version.
package extract
