// Package offline holds the formats of the state's certified extracts and
// their offline verification: the CBOR claims, the COSE_Sign1 statement
// signed with the state's "extract" key, the COSE receipt (an RFC 9162
// inclusion proof of the act's ledger entry, after
// draft-ietf-cose-merkle-tree-proofs-17) carrying the C2SP checkpoint
// cosigned by the sites, and the zlib + Base45 text a QR code holds.
//
// It does no I/O and imports only the charter and the ledger of this
// module, so that a border guard's or a bank's verifier can import it
// alone. Issuance, QR images and PDFs are in services/extract.
// docs/extracts.md gives the formats byte by byte.
package offline
