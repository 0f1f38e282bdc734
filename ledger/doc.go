// Package ledger is Chancery's append-only, verifiable log: one per guest
// state, holding every record, order, charter version, notice, access and key
// event as a typed entry.
//
// The log speaks the public C2SP formats so that any auditor can check it with
// standard tools: RFC 6962 hashing, a tlog-checkpoint inside a signed note,
// the tlog-tiles layout on disk (servable by a plain static file server), and
// tlog-cosignature receipts.
//
// Durability comes from a write-ahead log with group commit: Append returns
// only once the entry is fsynced, and concurrent appenders share fsyncs.
// Tiles, entry bundles and the checkpoint follow a moment later and can always
// be rebuilt from the write-ahead log; on open a torn tail is detected,
// set aside and reported.
//
// Pure verification (entry decoding, checkpoint parsing, proofs, the whole-log
// check) needs no Log and does no I/O beyond a Fetcher, so an auditor can
// import it alone.
package ledger
