package store

import "github.com/chancery-gov/chancery/internal/padme"

// ChunkLocation is where a test may find a stored chunk, so tamper tests
// know exactly which blobs a changed byte affects.
type ChunkLocation struct {
	Pack        string
	Off, Length int64
}

// ChunkAt exposes a chunk's durable range to the external tests.
func (s *Store) ChunkAt(id ID) (ChunkLocation, bool) {
	pack, l, pend, ok := s.idx.lookup(id)
	if !ok || pend != nil {
		return ChunkLocation{}, false
	}
	return ChunkLocation{Pack: PackName(pack), Off: int64(l.off), Length: int64(l.length)}, true
}

// EncodeIndexOf re-encodes what ParseIndex returned, for round-trip checks.
func EncodeIndexOf(data []byte) ([]byte, error) {
	g, err := parseIndex(data)
	if err != nil {
		return nil, err
	}
	return encodeIndex(g), nil
}

// BuildPack makes a pack from sealed chunks, for the pack fuzzer's seeds.
func BuildPack(ids []ID, chunks [][]byte) []byte {
	var b packBuilder
	for i := range ids {
		b.add(ids[i], chunks[i])
	}
	b.finish()
	return b.data
}

// IndexPacks lists the pack of every group in an index object, in order,
// so tests can see that a pack is described once.
func IndexPacks(data []byte) ([]PackID, error) {
	g, err := parseIndex(data)
	if err != nil {
		return nil, err
	}
	out := make([]PackID, len(g))
	for i := range g {
		out[i] = g[i].pack
	}
	return out, nil
}

// PackTailEntries parses a pack and returns (id, off, length) triples.
func PackTailEntries(data []byte) ([][3]int64, []ID, error) {
	es, err := parsePackTail(data, int64(len(data)))
	if err != nil {
		return nil, nil, err
	}
	var out [][3]int64
	var ids []ID
	for _, e := range es {
		out = append(out, [3]int64{0, int64(e.off), int64(e.length)})
		ids = append(ids, e.id)
	}
	return out, ids, nil
}

// Padme is the Padmé rounding the store applies to payloads.
func Padme(n int) int { return padme.Len(n) }
