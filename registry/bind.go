package registry

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/chancery-gov/chancery/seal"
)

// boundLabel starts the digest of an entry's clear fields.
const boundLabel = "chancery/registry/v2 record-bound"

// AD is the additional data the entry's sealed body is bound to: guest,
// registry, blind id, version, the epoch of the ledger entry that holds it,
// and a digest of every other field the entry carries in clear:
//
//	Bound = SHA-256("chancery/registry/v2 record-bound" 0x00 ‖ kind u8
//	        ‖ n u8 ‖ n × 32 blinded index values
//	        ‖ m u32 ‖ m × 32 chunk ids)
//
// So a host cannot turn a put into a tombstone, change the index values a
// version is found under, or change the chunk set it ships and checks for
// the version while leaving the sealed body intact: Open fails with
// seal.ErrAuth. The attachment references themselves (names, sizes, chunk
// order, Ref.Hash) are inside the sealed body, authenticated by the seal;
// on open the chunk set they use must be the entry's (checkChunks).
func (e *RecordEntry) AD(guest string, epoch uint64) seal.RecordAD {
	// The digest's input is built on the stack (it grows to the heap only
	// past a few index values) and hashed in one call: a restore computes
	// a million of these.
	var stack [256]byte
	b := append(stack[:0], boundLabel...)
	b = append(b, 0, byte(e.Kind), byte(len(e.Index)))
	for i := range e.Index {
		b = append(b, e.Index[i][:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Chunks)))
	for i := range e.Chunks {
		b = append(b, e.Chunks[i][:]...)
	}
	return seal.RecordAD{Guest: guest, Registry: e.Registry, BlindID: e.BlindID, Version: e.Version, Epoch: epoch, Bound: sha256.Sum256(b)}
}
