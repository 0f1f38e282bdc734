// Package replica ships a guest's ledger and blobs from the writer to the
// embassy sites, and has each site check what arrives and sign for what it
// holds.
//
// The writer runs one Shipper per site (a Replicator holds them all). A
// shipper asks the site where it stands (State), then sends batches of
// entries in order, each with the writer's signed checkpoint: before a
// batch, the packs its records reference, and in place of each entry of a
// registry the charter does not place at that site, a withheld stub
// (ledger.Withhold) that carries only its leaf hash. The site's Receiver
// accepts a batch only after checking it against what it already holds:
// the writer's signature for the checkpoint's epoch (Writers), every entry
// decoding and belonging to a registry placed there, every referenced
// chunk present in a pack whose bytes hash to its name, and the leaves
// producing the signed tree (ledger.Log.AppendMirrored). It makes the batch
// durable, then answers with a receipt: the checkpoint cosigned by the
// site (C2SP tlog-cosignature). The writer's Tracker keeps every site's
// latest receipt: the recovery point per site in entries and seconds, and
// what quorum-mode writes wait for.
//
// A shipper never has more than one batch in flight to a site, so a slow
// site holds back only itself (backpressure), and after any error it
// resumes from the site's own state, so nothing is sent twice and nothing
// is skipped. Because every byte is checked at the receiver, a site that
// is behind may equally catch up from another site (PeerSource): a peer
// that alters what it serves is refused, not believed. An offline bundle
// (package bundle) carries the same batches (BatchBuilder) on a disk, into
// the same Receiver.
//
// Nothing here holds a guest key: a site verifies with public keys and
// hashes only.
package replica
