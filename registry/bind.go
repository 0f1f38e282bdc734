package registry

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/chancery-gov/chancery/seal"
)

// boundLabel starts the digest of an entry's clear fields.
const boundLabel = "chancery/registry/v1 record-bound"

// AD is the additional data the entry's sealed body is bound to: guest,
// registry, blind id, version, the epoch of the ledger entry that holds it,
// and a digest of every other field the entry carries in clear:
//
//	Bound = SHA-256("chancery/registry/v1 record-bound" 0x00 ‖ kind u8
//	        ‖ n u8 ‖ n × 32 blinded index values
//	        ‖ m u16 ‖ m × (32 blind name ‖ u32 len ‖ store ref bytes))
//
// So a host cannot turn a put into a tombstone, change the index values a
// version is found under, or point it at other attachment chunks (the ref
// bytes fix Ref.Hash, the size and every chunk id) while leaving the sealed
// body intact: Open fails with seal.ErrAuth.
func (e *RecordEntry) AD(guest string, epoch uint64) seal.RecordAD {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte(boundLabel))
	h.Write([]byte{0, byte(e.Kind), byte(len(e.Index))})
	for i := range e.Index {
		h.Write(e.Index[i][:])
	}
	h.Write(binary.BigEndian.AppendUint16(b[:0], uint16(len(e.Attachments))))
	for _, a := range e.Attachments {
		h.Write(a.BlindName[:])
		h.Write(binary.BigEndian.AppendUint32(b[:0], uint32(len(a.Ref))))
		h.Write(a.Ref)
	}
	ad := seal.RecordAD{Guest: guest, Registry: e.Registry, BlindID: e.BlindID, Version: e.Version, Epoch: epoch}
	h.Sum(ad.Bound[:0])
	return ad
}
