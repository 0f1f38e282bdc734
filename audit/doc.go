// Package audit is what an independent auditor runs against a guest's
// ledger and attachment store, without the daemon: whole-ledger
// verification remembered per log origin, the audit of the drill reports
// a ledger records, the resolution of which sites signed a checkpoint,
// and the scrub of a site's blob store against the ledger (Scrub: every
// object's hash, every referenced chunk present, and with the registry's
// keys its MAC), which a site can also run on a schedule.
//
// It reads a ledger through a ledger.Fetcher (a directory, or a site's
// URL with the TLS key the charter pins) and checks it against a charter
// chain (charter.ReadChain). It imports the pure halves (ledger, charter,
// continuity, store) and never the site package, so that `chancery
// verify` and `chancery drill report` trust only what they check. The
// command line only parses flags, makes one call here and formats the
// result.
package audit
