package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// RecordEntry is the payload of a ledger entry of type record: one version
// of one record, as every site stores it. Nothing in it identifies a person
// to a host: the record id and indexed values appear only as keyed MACs,
// the body only sealed. Encoding (docs/formats.md):
//
//	u8 format (=1) | u8 kind | u16 len ‖ registry | 32 blind id | u64 version |
//	32 commitment | u8 n ‖ n × 32 blinded index values |
//	u16 m ‖ m × (u16 len ‖ 32 blind name ‖ store ref bytes) | u32 len ‖ sealed body
type RecordEntry struct {
	Kind        Kind
	Registry    string
	BlindID     [32]byte
	Version     uint64
	Commitment  [32]byte   // seal.CommitRecord of the plaintext body: a drill checks a decrypted sample against it
	Index       [][32]byte // blinded (field, value) pairs of the indexed fields
	Attachments []AttachmentRef
	Sealed      []byte // the sealed body (seal.RegistryKeys.Seal)
}

// AttachmentRef is an attachment as the ledger names it: a blinded name and
// the encoded store reference of its chunks.
type AttachmentRef struct {
	BlindName [32]byte
	Ref       []byte
}

// Kind says whether a version puts a record or deletes it.
type Kind uint8

// Record entry kinds.
const (
	KindPut       Kind = 1
	KindTombstone Kind = 2
)

const recordEntryFormat = 1

// MarshalBinary encodes the entry.
func (e *RecordEntry) MarshalBinary() ([]byte, error) {
	if e.Kind != KindPut && e.Kind != KindTombstone {
		return nil, fmt.Errorf("record entry: kind %d", e.Kind)
	}
	if len(e.Registry) == 0 || len(e.Registry) > 255 {
		return nil, fmt.Errorf("record entry: registry name of %d bytes", len(e.Registry))
	}
	if len(e.Index) > 255 {
		return nil, fmt.Errorf("record entry: %d index values, at most 255", len(e.Index))
	}
	if len(e.Attachments) > 1<<16-1 {
		return nil, fmt.Errorf("record entry: %d attachments", len(e.Attachments))
	}
	n := 2 + 2 + len(e.Registry) + 32 + 8 + 32 + 1 + 32*len(e.Index) + 2 + 4 + len(e.Sealed)
	for _, a := range e.Attachments {
		n += 2 + 32 + len(a.Ref)
	}
	b := make([]byte, 0, n)
	b = append(b, recordEntryFormat, byte(e.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Registry)))
	b = append(b, e.Registry...)
	b = append(b, e.BlindID[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Version)
	b = append(b, e.Commitment[:]...)
	b = append(b, byte(len(e.Index)))
	for _, v := range e.Index {
		b = append(b, v[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Attachments)))
	for i, a := range e.Attachments {
		if len(a.Ref) > 1<<16-1-32 {
			return nil, fmt.Errorf("record entry: attachment %d reference of %d bytes", i, len(a.Ref))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(32+len(a.Ref)))
		b = append(b, a.BlindName[:]...)
		b = append(b, a.Ref...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Sealed)))
	return append(b, e.Sealed...), nil
}

var errShort = errors.New("truncated")

// UnmarshalRecordEntry decodes a record entry payload. Slices alias b.
func UnmarshalRecordEntry(b []byte) (*RecordEntry, error) {
	var v recordView
	if err := v.parse(b); err != nil {
		return nil, err
	}
	e := &RecordEntry{Kind: v.kind, Registry: string(v.registry), BlindID: v.blindID, Version: v.version, Commitment: [32]byte(v.commitment), Sealed: v.sealed}
	for i := 0; i < len(v.index); i += 32 {
		e.Index = append(e.Index, [32]byte(v.index[i:i+32]))
	}
	for a := v.atts; len(a) > 0; {
		l := int(binary.BigEndian.Uint16(a))
		e.Attachments = append(e.Attachments, AttachmentRef{BlindName: [32]byte(a[2 : 2+32]), Ref: a[2+32 : 2+l : 2+l]})
		a = a[2+l:]
	}
	return e, nil
}

// recordView is a checked record entry whose variable parts alias the
// payload: rebuilding the index decodes a million of them, and needs only
// their blind ids, versions and index values.
type recordView struct {
	kind       Kind
	registry   []byte
	blindID    [32]byte
	version    uint64
	commitment []byte
	index      []byte // the blinded index values, 32 bytes each
	atts       []byte // the attachment references as encoded, each checked
	sealed     []byte
}

// parse checks a record entry payload as UnmarshalRecordEntry does, with
// the same errors, without allocating.
func (v *recordView) parse(b []byte) error {
	d := decoder{b: b}
	if f := d.u8(); f != recordEntryFormat {
		if d.err != nil {
			return fmt.Errorf("record entry: %w", d.err)
		}
		return fmt.Errorf("record entry: format %d, this Chancery reads %d", f, recordEntryFormat)
	}
	v.kind = Kind(d.u8())
	v.registry = d.bytes(int(d.u16()))
	v.blindID = [32]byte(d.bytes(32))
	v.version = d.u64()
	v.commitment = d.bytes(32)
	v.index = d.bytes(32 * int(d.u8()))
	v.atts = nil
	if n := int(d.u16()); n > 0 && d.err == nil {
		start := d.b
		for ; n > 0 && d.err == nil; n-- {
			l := int(d.u16())
			if l < 32 && d.err == nil {
				d.err = errors.New("attachment reference shorter than its blind name")
				break
			}
			d.bytes(l)
		}
		v.atts = start[:len(start)-len(d.b)]
	}
	v.sealed = d.bytes(int(d.u32()))
	if d.err != nil {
		return fmt.Errorf("record entry: %w", d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("record entry: %d trailing bytes", len(d.b))
	}
	if v.kind != KindPut && v.kind != KindTombstone {
		return fmt.Errorf("record entry: kind %d", v.kind)
	}
	if len(v.registry) == 0 {
		return errors.New("record entry: empty registry name")
	}
	if v.version == 0 {
		return errors.New("record entry: version 0")
	}
	return nil
}

// decoder reads big-endian fields, remembering the first short read.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err == nil && n > len(d.b) {
		d.err = errShort
	}
	if d.err != nil {
		// Enough zeros for the fixed-size reads that follow; never the
		// length a corrupt field claims.
		return make([]byte, min(n, 64))
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8   { return d.bytes(1)[0] }
func (d *decoder) u16() uint16 { return binary.BigEndian.Uint16(d.bytes(2)) }
func (d *decoder) u32() uint32 { return binary.BigEndian.Uint32(d.bytes(4)) }
func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.bytes(8)) }
