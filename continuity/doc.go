// Package continuity holds the governance of a guest state's sites when
// home is lost: typed orders that officials sign offline, their
// verification against the charter, the epochs those orders open, and the
// unseal session in which custodians rebuild the root key at the activated
// site.
//
// The verification half (Order, SignedOrder, ParseSignedOrder, Verify,
// Check, Tally, Epochs) is pure: no clock, no files, no network. Time is an
// argument and what the verifier knows of the ledger is a State, so an
// auditor can import it alone and replay every order of a ledger with the
// charter in force. docs/orders.md gives the byte layout and the rules.
//
// The unseal session holds secrets: a one-time age identity and the shares
// custodians seal to it. It reads the clock (for its time to live) and
// nothing else; it never writes anything.
package continuity
