package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// A pack is one backend object holding many sealed chunks, so that ten
// million chunks are thousands of objects, not ten million. Layout:
//
//	sealed chunk 0 | sealed chunk 1 | ... | header | trailer
//	header  = count × (id[32] | length uint32 BE)   offsets are cumulative from 0
//	trailer = count uint32 BE | SHA-256(header)[32] | "CHPACK01"
//
// The pack's name is data/<hex SHA-256 of the whole pack>, so any change to
// any byte is visible to Check without a key. The header is keyless on
// purpose: the index can be rebuilt from packs by a process that holds no
// key (Open takes none), and it reveals only keyed ids and sizes.
const (
	packMagic      = "CHPACK01"
	packTrailerLen = 4 + 32 + 8
	packEntryLen   = 32 + 4
	// maxPackSize keeps offsets in uint32 with room for one maximal chunk.
	maxPackSize = 1 << 30
	// maxSealedLen bounds one sealed chunk: the chunker's maximum with its
	// payload header, Padmé padding (at most 2^18 at MaxChunk), and far
	// more than any AEAD's nonce and tag. Parsers reject larger entries so
	// that forged metadata cannot make us allocate GiBs.
	maxSealedLen = MaxChunk + 1<<18 + 1<<16
)

// PackID names a pack: SHA-256 of its bytes.
type PackID = [32]byte

// PackName is the backend object name of pack p: "data/" and the hash in
// lower-case hex. A replicator ships exactly this object.
func PackName(p PackID) string { return "data/" + hex.EncodeToString(p[:]) }

// ParsePackName is the inverse of PackName. It accepts only the canonical
// spelling (lower-case hex), so that one pack has one name: an upper-case
// twin would hash to the same id but be a different object to a backend.
func ParsePackName(name string) (PackID, bool) { return parseObjectName("data", name) }

// parseObjectName turns "dir/<64 lower-case hex>" back into the hash it
// names.
func parseObjectName(dir, name string) (id [32]byte, ok bool) {
	if len(name) != len(dir)+1+64 || name[:len(dir)+1] != dir+"/" {
		return id, false
	}
	h := name[len(dir)+1:]
	n, err := hex.Decode(id[:], []byte(h))
	return id, err == nil && n == 32 && hex.EncodeToString(id[:]) == h
}

// CheckObject verifies bytes received for a store object before they are
// saved: for "data/<hex>" (a pack) and "index/<hex>" (an index object) the
// SHA-256 of data must be the hash the name spells. Any other name is an
// error, since a replica has no business storing it. It needs no key, so a
// site that holds none can refuse a damaged or substituted object on
// arrival. It checks only the name; AdoptPack also checks a pack's
// structure.
func CheckObject(name string, data []byte) error {
	want, ok := parseObjectName("data", name)
	if !ok {
		if want, ok = parseObjectName("index", name); !ok {
			return fmt.Errorf("store: object %q: not a pack or index object name", name)
		}
	}
	if sha256.Sum256(data) != want {
		return fmt.Errorf("store: object %s: content (%d bytes) does not hash to its name", name, len(data))
	}
	return nil
}

// packEntry locates one sealed chunk inside its pack.
type packEntry struct {
	id     ID
	off    uint32
	length uint32
}

// packBuilder accumulates sealed chunks in memory until the pack is full.
// Readers of not-yet-uploaded chunks (a Get right after a Put) copy out of
// data under mu, because finish appends the header to the same slice.
type packBuilder struct {
	data    []byte
	entries []packEntry
}

func (p *packBuilder) add(id ID, sealed []byte) packEntry {
	e := packEntry{id: id, off: uint32(len(p.data)), length: uint32(len(sealed))}
	p.data = append(p.data, sealed...)
	p.entries = append(p.entries, e)
	return e
}

// finish appends header and trailer and returns the pack's id.
func (p *packBuilder) finish() PackID {
	hstart := len(p.data)
	for _, e := range p.entries {
		p.data = append(p.data, e.id[:]...)
		p.data = binary.BigEndian.AppendUint32(p.data, e.length)
	}
	hsum := sha256.Sum256(p.data[hstart:])
	p.data = binary.BigEndian.AppendUint32(p.data, uint32(len(p.entries)))
	p.data = append(p.data, hsum[:]...)
	p.data = append(p.data, packMagic...)
	return sha256.Sum256(p.data)
}

// parsePackTrailer reads the fixed-size trailer and returns how many header
// bytes precede it.
func parsePackTrailer(trailer []byte, packSize int64) (count int, hsum [32]byte, err error) {
	if len(trailer) != packTrailerLen {
		return 0, hsum, fmt.Errorf("pack trailer is %d bytes, want %d", len(trailer), packTrailerLen)
	}
	if string(trailer[36:]) != packMagic {
		return 0, hsum, errors.New("pack trailer: bad magic")
	}
	c := binary.BigEndian.Uint32(trailer)
	if int64(c)*packEntryLen+packTrailerLen > packSize {
		return 0, hsum, fmt.Errorf("pack trailer: %d entries do not fit in %d bytes", c, packSize)
	}
	copy(hsum[:], trailer[4:36])
	return int(c), hsum, nil
}

// parsePackHeader checks the header against its hash and the pack's size
// and returns the entries with their offsets. Every byte before the header
// must belong to exactly one chunk; a gap or an overlap is an error.
func parsePackHeader(header []byte, hsum [32]byte, count int, packSize int64) ([]packEntry, error) {
	if len(header) != count*packEntryLen {
		return nil, fmt.Errorf("pack header is %d bytes, want %d", len(header), count*packEntryLen)
	}
	if sha256.Sum256(header) != hsum {
		return nil, errors.New("pack header: checksum mismatch")
	}
	dataEnd := packSize - int64(len(header)) - packTrailerLen
	entries := make([]packEntry, count)
	var off int64
	for i := range entries {
		b := header[i*packEntryLen:]
		copy(entries[i].id[:], b[:32])
		l := int64(binary.BigEndian.Uint32(b[32:]))
		if l == 0 || l > maxSealedLen || off+l > dataEnd {
			return nil, fmt.Errorf("pack header: entry %d (length %d at %d) outside the %d data bytes", i, l, off, dataEnd)
		}
		entries[i].off, entries[i].length = uint32(off), uint32(l)
		off += l
	}
	if off != dataEnd {
		return nil, fmt.Errorf("pack header: entries cover %d of %d data bytes", off, dataEnd)
	}
	return entries, nil
}

// parsePackTail parses header and trailer given the last bytes of a pack
// (at least the whole header and trailer). It is what the fuzzer drives.
func parsePackTail(tail []byte, packSize int64) ([]packEntry, error) {
	if int64(len(tail)) > packSize || len(tail) < packTrailerLen {
		return nil, fmt.Errorf("pack tail of %d bytes for a %d-byte pack", len(tail), packSize)
	}
	count, hsum, err := parsePackTrailer(tail[len(tail)-packTrailerLen:], packSize)
	if err != nil {
		return nil, err
	}
	hlen := count * packEntryLen
	if hlen > len(tail)-packTrailerLen {
		return nil, fmt.Errorf("pack tail of %d bytes cannot hold a %d-byte header", len(tail), hlen)
	}
	return parsePackHeader(tail[len(tail)-packTrailerLen-hlen:len(tail)-packTrailerLen], hsum, count, packSize)
}
