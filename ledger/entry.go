package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Type says what an entry records. New types may be added; a decoder accepts
// any non-zero type so that an older auditor can still hash and count entries
// written by a newer writer, and reports the ones it does not know by number.
type Type uint8

// The entry types known to this version.
const (
	TypeRecord      Type = 1 // a sealed registry record version
	TypeOrder       Type = 2 // a governance order (activate, failback, drill, ...)
	TypeCharter     Type = 3 // a charter version
	TypeNotice      Type = 4 // a signed public notice
	TypeAccess      Type = 5 // a read of a record at an active site
	TypeKeyEvent    Type = 6 // key rotation, revocation, shredding
	TypeDrillReport Type = 7 // the signed report of a drill
	// TypeWithheld stands in, in a mirror, for an entry the site may not
	// hold (a registry the charter does not place there). Its payload is
	// the withheld entry's leaf hash, which is what the tree hashes in its
	// place, so the mirror's tiles and root are the writer's. A writer
	// never appends one.
	TypeWithheld Type = 8
	// TypeAct records that the state issued an act (a certified extract):
	// its payload is the SHA-256 of the act's COSE to-be-signed bytes and
	// nothing else, so a host learns only that an act was issued, while
	// the act's holder can prove its inclusion (services/extract/offline).
	// Type 10 is taken by procedure cases.
	TypeAct Type = 9
)

var typeNames = [...]string{
	TypeRecord:      "record",
	TypeOrder:       "order",
	TypeCharter:     "charter",
	TypeNotice:      "notice",
	TypeAccess:      "access",
	TypeKeyEvent:    "key-event",
	TypeDrillReport: "drill-report",
	TypeWithheld:    "withheld",
	TypeAct:         "act",
}

// String names the type, or gives its number for types this version does not know.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Known reports whether this version of Chancery knows the type.
func (t Type) Known() bool { return int(t) < len(typeNames) && typeNames[t] != "" }

// ParseType is the inverse of Type.String for known types.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n != "" && n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("unknown entry type %q", s)
}

const (
	// EntryVersion is the version byte of the entry encoding (docs/formats.md).
	EntryVersion = 1
	// EntryHeaderSize is the fixed size of the encoded header before the payload.
	EntryHeaderSize = 1 + 1 + 8 + 8
	// MaxEntrySize is the largest encoded entry: C2SP entry bundles prefix
	// each entry with a big-endian uint16 length. Larger payloads go to blobs.
	MaxEntrySize = 1<<16 - 1
	// MaxPayloadSize is the largest payload that fits in one entry.
	MaxPayloadSize = MaxEntrySize - EntryHeaderSize
)

// Entry is one typed ledger entry. Its encoding is what the Merkle tree
// hashes, so it is fixed and versioned:
//
//	version u8 (=1) | type u8 | epoch u64 BE | time u64 BE (Unix ms) | payload
type Entry struct {
	Type    Type
	Epoch   uint64
	Time    time.Time // kept to millisecond precision
	Payload []byte
}

// Errors returned by DecodeEntry and Entry.MarshalBinary.
var (
	ErrEntryTooLarge = errors.New("entry too large")
	ErrEntryShort    = errors.New("entry shorter than its header")
)

// Size is the length of the entry's encoding.
func (e Entry) Size() int { return EntryHeaderSize + len(e.Payload) }

// MarshalBinary encodes the entry.
func (e Entry) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, e.Size()))
}

// AppendBinary appends the entry's encoding to b.
func (e Entry) AppendBinary(b []byte) ([]byte, error) {
	if e.Type == 0 {
		return nil, errors.New("entry type: zero is not a type")
	}
	if e.Type == TypeWithheld && len(e.Payload) != 32 {
		return nil, fmt.Errorf("withheld entry: payload of %d bytes, a leaf hash is 32", len(e.Payload))
	}
	if len(e.Payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: payload of %d bytes, at most %d fit in an entry", ErrEntryTooLarge, len(e.Payload), MaxPayloadSize)
	}
	ms := e.Time.UnixMilli()
	if ms < 0 {
		return nil, fmt.Errorf("entry time %v is before 1970", e.Time)
	}
	b = append(b, EntryVersion, byte(e.Type))
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(ms))
	return append(b, e.Payload...), nil
}

// DecodeEntry decodes an entry. The payload aliases b.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) > MaxEntrySize {
		return Entry{}, fmt.Errorf("%w: %d bytes", ErrEntryTooLarge, len(b))
	}
	if len(b) < EntryHeaderSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, header is %d", ErrEntryShort, len(b), EntryHeaderSize)
	}
	if b[0] != EntryVersion {
		return Entry{}, fmt.Errorf("entry version %d: this Chancery reads version %d", b[0], EntryVersion)
	}
	if b[1] == 0 {
		return Entry{}, errors.New("entry type: zero is not a type")
	}
	if b[1] == byte(TypeWithheld) && len(b) != EntryHeaderSize+32 {
		return Entry{}, fmt.Errorf("withheld entry: payload of %d bytes, a leaf hash is 32", len(b)-EntryHeaderSize)
	}
	ms := binary.BigEndian.Uint64(b[10:18])
	if ms > math.MaxInt64 {
		return Entry{}, fmt.Errorf("entry time %d ms is out of range", ms)
	}
	return Entry{
		Type:    Type(b[1]),
		Epoch:   binary.BigEndian.Uint64(b[2:10]),
		Time:    time.UnixMilli(int64(ms)).UTC(),
		Payload: b[EntryHeaderSize:],
	}, nil
}

// entryEpoch reads the epoch of an encoded entry without decoding it.
func entryEpoch(b []byte) uint64 { return binary.BigEndian.Uint64(b[2:10]) }

// Withhold returns the stub that replaces an encoded entry in the mirror of
// a site that may not hold it: same epoch and time (so fencing and reads as
// of a time still work), and the entry's leaf hash as payload.
func Withhold(entry []byte) ([]byte, error) {
	e, err := DecodeEntry(entry)
	if err != nil {
		return nil, err
	}
	if e.Type == TypeWithheld {
		return entry, nil
	}
	h := leafHash(entry)
	return Entry{Type: TypeWithheld, Epoch: e.Epoch, Time: e.Time, Payload: h[:]}.MarshalBinary()
}

// EntryLeafHash is the hash the tree holds for an encoded entry: its RFC
// 6962 leaf hash, or for a withheld stub the leaf hash it carries.
func EntryLeafHash(entry []byte) Hash {
	if len(entry) == EntryHeaderSize+32 && entry[1] == byte(TypeWithheld) {
		return Hash(entry[EntryHeaderSize:])
	}
	return leafHash(entry)
}
