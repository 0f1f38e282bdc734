package state

import (
	"crypto/rand"
	"encoding/hex"
)

// DemoOrigin begins the ledger origin of every Demo Republic. Each
// founding adds its own random founding id (NewOrigin), because the
// origin is what tells one log from another: an auditor remembers the
// last checkpoint it verified per origin, and two foundings under one
// origin would look to it like one log that forked.
const DemoOrigin = "ledger.demo-republic.example"

// NewOrigin returns a fresh log origin for a founding: prefix, "/", and a
// founding id of 16 hex digits from crypto/rand, for example
// "ledger.demo-republic.example/3f9a1c0d2b7e4a65". The origin cannot be
// derived from the charter's hash, since the charter names it (and its
// checkpoint keys carry it); a random id is as unique, and known before
// the keys are made.
func NewOrigin(prefix string) string {
	var id [8]byte
	rand.Read(id[:]) // never fails (crypto/rand)
	return prefix + "/" + hex.EncodeToString(id[:])
}
