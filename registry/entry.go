package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/chancery-gov/chancery/store"
)

// RecordEntry is the payload of a ledger entry of type record: one version
// of one record, as every site stores it. Nothing in it identifies a person
// to a host: the record id and indexed values appear only as keyed MACs,
// the body only sealed. Encoding (docs/formats.md):
//
//	u8 format (=2) | u8 kind | u16 len ‖ registry | 32 blind id | u64 version |
//	32 commitment | u8 n ‖ n × 32 blinded index values |
//	u32 m ‖ m × 32 chunk ids, strictly ascending | u32 len ‖ sealed body
//
// The attachments themselves — names, exact sizes, and the order of their
// chunks (store.Ref) — are inside the sealed body. What stays in clear is
// the set of chunk ids the version's attachments use, without order,
// repetition, sizes or a split into attachments: the keyed ids a host
// already sees in its packs' headers, which a keyless site needs to ship
// the packs a record needs and to refuse a record whose chunks it lacks
// (replica, bundle).
type RecordEntry struct {
	Kind       Kind
	Registry   string
	BlindID    [32]byte
	Version    uint64
	Commitment [32]byte   // seal.CommitRecord of the plaintext body: a drill checks a decrypted sample against it
	Index      [][32]byte // blinded (field, value) pairs of the indexed fields
	Chunks     []store.ID // the chunks of every attachment, as a set: ascending, each once (ChunkSet)
	Sealed     []byte     // the sealed body (seal.RegistryKeys.Seal)
}

// Kind says whether a version puts a record or deletes it.
type Kind uint8

// Record entry kinds.
const (
	KindPut       Kind = 1
	KindTombstone Kind = 2
)

// recordEntryFormat is the first byte of a record entry. Format 1 carried
// each attachment's store reference (exact size, chunk ids in order) in
// clear; it is refused with ErrOldEntryFormat.
const recordEntryFormat = 2

// ErrOldEntryFormat means a record entry of format 1, whose attachment
// references (exact sizes and chunk lists) were in clear. It is refused,
// not read: a state written before format 2 must be loaded again
// (`chancery import`) by this release.
var ErrOldEntryFormat = errors.New("record entry of format 1 (attachment sizes and chunk lists in clear), which this Chancery no longer reads: load the state again with chancery import (docs/formats.md)")

// ChunkSet is the set of chunk ids refs use, as a record entry carries it:
// sorted ascending, each id once.
func ChunkSet(refs []store.Ref) []store.ID {
	var ids []store.ID
	for _, r := range refs {
		ids = append(ids, r.Chunks...)
	}
	slices.SortFunc(ids, func(a, b store.ID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(ids)
}

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
	for i := 1; i < len(e.Chunks); i++ {
		if bytes.Compare(e.Chunks[i-1][:], e.Chunks[i][:]) >= 0 {
			return nil, fmt.Errorf("record entry: chunk ids not a set in ascending order at %d", i)
		}
	}
	n := 2 + 2 + len(e.Registry) + 32 + 8 + 32 + 1 + 32*len(e.Index) + 4 + 32*len(e.Chunks) + 4 + len(e.Sealed)
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
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Chunks)))
	for i := range e.Chunks {
		b = append(b, e.Chunks[i][:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Sealed)))
	return append(b, e.Sealed...), nil
}

var errShort = errors.New("truncated")

// UnmarshalRecordEntry decodes a record entry payload. Slices alias b.
func UnmarshalRecordEntry(b []byte) (*RecordEntry, error) {
	e := new(RecordEntry)
	if err := e.unmarshal(b); err != nil {
		return nil, err
	}
	return e, nil
}

// unmarshal is UnmarshalRecordEntry into e, reusing its slices and, when
// the registry is the same, its registry's name: a reader of a million
// entries decodes each into the same RecordEntry without allocating.
func (e *RecordEntry) unmarshal(b []byte) error {
	var v recordView
	if err := v.parse(b); err != nil {
		return err
	}
	if e.Registry != string(v.registry) { // compared without a copy
		e.Registry = string(v.registry)
	}
	e.Kind, e.BlindID, e.Version, e.Commitment, e.Sealed = v.kind, v.blindID, v.version, [32]byte(v.commitment), v.sealed
	e.Index, e.Chunks = e.Index[:0], e.Chunks[:0]
	for i := 0; i < len(v.index); i += 32 {
		e.Index = append(e.Index, [32]byte(v.index[i:i+32]))
	}
	for i := 0; i < len(v.chunks); i += 32 {
		e.Chunks = append(e.Chunks, store.ID(v.chunks[i:i+32]))
	}
	return nil
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
	chunks     []byte // the chunk ids, 32 bytes each, checked ascending
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
		if f == 1 {
			return ErrOldEntryFormat
		}
		return fmt.Errorf("record entry: format %d, this Chancery reads %d", f, recordEntryFormat)
	}
	v.kind = Kind(d.u8())
	v.registry = d.bytes(int(d.u16()))
	v.blindID = [32]byte(d.bytes(32))
	v.version = d.u64()
	v.commitment = d.bytes(32)
	v.index = d.bytes(32 * int(d.u8()))
	v.chunks = nil
	if n := d.u32(); n > 0 && d.err == nil {
		if uint64(n)*32 > uint64(len(d.b)) {
			d.err = errShort
		} else {
			v.chunks = d.bytes(32 * int(n))
			for i := 32; i < len(v.chunks); i += 32 {
				if bytes.Compare(v.chunks[i-32:i], v.chunks[i:i+32]) >= 0 {
					d.err = fmt.Errorf("chunk ids not a set in ascending order at %d", i/32)
					break
				}
			}
		}
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
