// Package seal holds a guest state's key hierarchy and every envelope made
// with it: the root key R and its custody among custodians, the keys derived
// from R for each registry (record sealing, blinded identifiers, plaintext
// commitments, blob chunks), and the per-site outer layer that lets one
// site's copy be crypto-shredded.
//
// The hierarchy (docs/seal.md gives every byte, docs/threat-model.md the
// reasoning):
//
//	s  random Ristretto255 scalar; split among custodians (Shamir, hash commitments)
//	R  = HKDF-SHA256(s)                          32-byte root key material
//	   ├─ data key   (guest, registry, generation)  AES-256-GCM records
//	   ├─ MAC keys   (guest, registry)               blinded ids, index values, commitments
//	   ├─ blob keys  (guest, registry[, generation]) chunk ids, chunk AEAD
//	   └─ site KEK   (guest, site)                   wraps a random per-site key
//
// Everything is derived with HKDF-SHA256 from R under info strings that name
// the purpose, the guest and the registry or site, so a key for one purpose,
// registry or guest says nothing about any other. Site keys are the one
// exception: they are random, so that destroying every wrapped copy destroys
// them for ever; R cannot bring them back.
//
// The package does no network I/O and knows nothing of sites, the ledger or
// the store: it is the leaf that those packages call.
package seal
