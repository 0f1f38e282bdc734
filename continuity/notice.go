package continuity

import "time"

// Notice is the wire form of a guest's public notices, served by every
// site (GET /guests/{guest}/notices) and read by auditors and citizens
// without the daemon.

// Notice is one public notice in the feed.
type Notice struct {
	Index   uint64    `json:"ledger_index"`
	Time    time.Time `json:"time"`
	Epoch   uint64    `json:"epoch"`
	Payload []byte    `json:"payload"` // as the writer recorded it (signed notices are JSON)
}
