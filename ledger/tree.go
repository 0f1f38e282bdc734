package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// tileSink receives the tiles and entry bundles a tree produces, by their
// C2SP path. A Log writes them to disk; Verify compares them with what a
// ledger serves.
type tileSink interface {
	tile(path string, data []byte, full bool) error
}

// tree builds the tiled Merkle tree incrementally: a compact range for the
// root, plus the rightmost incomplete tile at each tile level and the
// rightmost incomplete entry bundle. Everything to its left is already
// emitted as full tiles and never changes.
type tree struct {
	rng    *compact.Range
	tiles  [][]Hash // per tile level, hashes of the rightmost incomplete tile
	bundle []byte   // encoded rightmost incomplete entry bundle
	epoch  uint64   // highest epoch of any entry
	sink   tileSink
	err    error // first sink error, reported by append
}

func rangeFactory() *compact.RangeFactory {
	return &compact.RangeFactory{Hash: func(l, r []byte) []byte {
		h := nodeHash((*Hash)(l), (*Hash)(r))
		return h[:]
	}}
}

func newTree(sink tileSink) *tree {
	return &tree{rng: rangeFactory().NewEmptyRange(0), sink: sink}
}

func (t *tree) size() uint64 { return t.rng.End() }

// append adds one encoded entry.
func (t *tree) append(entry []byte) error {
	return t.appendLeaf(EntryLeafHash(entry), entry)
}

// appendLeaf adds an entry whose leaf hash is h. Verify passes the leaf
// hash a tile holds for an entry it found damaged, and whatever it could
// read of the entry (possibly nothing), so the check of the rest goes on.
func (t *tree) appendLeaf(h Hash, entry []byte) error {
	if len(entry) >= EntryHeaderSize {
		if e := entryEpoch(entry); e > t.epoch {
			t.epoch = e
		}
	}
	t.bundle = appendBundleEntry(t.bundle, entry)
	idx := t.rng.End()
	if idx%TileWidth == TileWidth-1 {
		if err := t.sink.tile(EntriesPath(idx/TileWidth, 0), t.bundle, true); err != nil {
			return fmt.Errorf("entry bundle %d: %w", idx/TileWidth, err)
		}
		t.bundle = t.bundle[:0]
	}
	if err := t.rng.Append(h[:], t.visit); err != nil {
		return fmt.Errorf("append leaf %d: %w", idx, err)
	}
	if t.err != nil {
		err := t.err
		t.err = nil
		return err
	}
	return nil
}

// visit collects the nodes that belong in tiles: those at tree levels that
// are multiples of the tile height.
func (t *tree) visit(id compact.NodeID, hash []byte) {
	if id.Level%TileHeight != 0 {
		return
	}
	level := int(id.Level / TileHeight)
	for len(t.tiles) <= level {
		t.tiles = append(t.tiles, make([]Hash, 0, TileWidth))
	}
	tl := append(t.tiles[level], Hash(hash))
	if uint64(len(tl)-1) != id.Index%TileWidth && t.err == nil {
		t.err = fmt.Errorf("tile level %d: node %d arrived out of order", level, id.Index)
	}
	if len(tl) == TileWidth {
		if err := t.sink.tile(TilePath(uint64(level), id.Index/TileWidth, 0), hashesBytes(tl), true); err != nil && t.err == nil {
			t.err = fmt.Errorf("tile %d/%d: %w", level, id.Index/TileWidth, err)
		}
		tl = tl[:0]
	}
	t.tiles[level] = tl
}

// flushPartial emits the partial tiles and entry bundle for the current size.
func (t *tree) flushPartial() error {
	size := t.size()
	if w := int(size % TileWidth); w > 0 {
		if err := t.sink.tile(EntriesPath(size/TileWidth, w), t.bundle, false); err != nil {
			return fmt.Errorf("partial entry bundle %d: %w", size/TileWidth, err)
		}
	}
	for level, tl := range t.tiles {
		if len(tl) == 0 {
			continue
		}
		idx := (size >> (TileHeight * uint(level))) / TileWidth
		if err := t.sink.tile(TilePath(uint64(level), idx, len(tl)), hashesBytes(tl), false); err != nil {
			return fmt.Errorf("partial tile %d/%d: %w", level, idx, err)
		}
	}
	return nil
}

func (t *tree) root() (Hash, error) { return rangeRoot(t.rng) }

// rangeRoot is the root of a compact range that starts at 0: the empty
// tree's for an empty one, for which the range itself gives no hash.
func rangeRoot(rng *compact.Range) (Hash, error) {
	if rng.End() == 0 {
		return emptyRoot, nil
	}
	r, err := rng.GetRootHash(nil)
	if err != nil {
		return Hash{}, err
	}
	return Hash(r), nil
}

func hashesBytes(hs []Hash) []byte {
	b := make([]byte, 0, len(hs)*32)
	for i := range hs {
		b = append(b, hs[i][:]...)
	}
	return b
}

func bytesHashes(b []byte) ([]Hash, error) {
	if len(b)%32 != 0 {
		return nil, fmt.Errorf("tile of %d bytes is not a whole number of hashes", len(b))
	}
	hs := make([]Hash, len(b)/32)
	for i := range hs {
		copy(hs[i][:], b[i*32:])
	}
	return hs, nil
}

// splitBundle splits an entry bundle into its entries.
func splitBundle(b []byte) ([][]byte, error) { return splitBundleInto(nil, b) }

// splitBundleInto splits b as splitBundle does, appending to out: a scan
// of a million entries reuses one slice instead of growing one per bundle.
func splitBundleInto(out [][]byte, b []byte) ([][]byte, error) {
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("entry bundle: truncated length at byte %d", off)
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < l {
			return nil, fmt.Errorf("entry bundle: entry %d runs past the end", len(out))
		}
		out = append(out, b[off:off+l:off+l])
		off += l
	}
	return out, nil
}

func appendBundleEntry(b, entry []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(entry)))
	return append(b, entry...)
}
