package ledger

import (
	"context"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Prover builds inclusion and consistency proofs from a ledger's tiles.
//
// A proof needs, in each tile on its path, one node at each of the tile's
// eight inner levels. Those near the top of a tile cover many hashes and
// would cost up to 127 hash operations each, so the prover keeps, for every
// tile it has seen, the nodes at inner levels 3 to 8: 63 hashes, 2 KiB per
// tile, about 80 MiB for a ten-million-entry ledger. Nodes at levels 0 to 2
// are rebuilt from the tile itself in at most three hash operations each.
// The tiles themselves (8 KiB each) are kept for the most recently used
// maxTiles; a proof whose level-0 tile is not among them reads it, one file
// per proof.
type Prover struct {
	f Fetcher

	mu    sync.RWMutex
	upper lru[*tileUpper]
	tiles lru[[]Hash]
}

// lru is a bounded map that evicts in insertion order: proofs for random
// leaves have no locality that a stricter policy would exploit.
type lru[V any] struct {
	max  int
	m    map[tileKey]V
	ring []tileKey
	next int
}

func newLRU[V any](max int) lru[V] { return lru[V]{max: max, m: map[tileKey]V{}} }

func (c *lru[V]) get(k tileKey) (V, bool) { v, ok := c.m[k]; return v, ok }

func (c *lru[V]) put(k tileKey, v V) {
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.ring) < c.max {
		c.ring = append(c.ring, k)
	} else {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = k
		c.next = (c.next + 1) % c.max
	}
	c.m[k] = v
}

type tileKey struct {
	level uint64
	index uint64
	width int
}

// upperLevel is the lowest inner level a tileUpper keeps.
const upperLevel = 3

// tileUpper holds the complete nodes of one tile at inner levels
// upperLevel and above: level r has width>>r nodes, one level after the
// other.
type tileUpper struct {
	width int
	nodes []Hash
}

// NewProver returns a prover reading from f that keeps up to maxTiles
// tiles (0 means 4,096: 32 MiB) and the upper nodes of up to 65,536 tiles
// (128 MiB at most; enough for sixteen million entries).
func NewProver(f Fetcher, maxTiles int) *Prover {
	if maxTiles <= 0 {
		maxTiles = 4096
	}
	return &Prover{f: f, upper: newLRU[*tileUpper](1 << 16), tiles: newLRU[[]Hash](maxTiles)}
}

// Inclusion returns the RFC 6962 inclusion proof of leaf index in the tree
// of the given size.
func (p *Prover) Inclusion(ctx context.Context, index, size uint64) ([]Hash, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof for index %d: %w", index, err)
	}
	return p.build(ctx, nodes, size)
}

// Consistency returns the RFC 6962 consistency proof between two sizes.
func (p *Prover) Consistency(ctx context.Context, size1, size2 uint64) ([]Hash, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d→%d: %w", size1, size2, err)
	}
	return p.build(ctx, nodes, size2)
}

// LeafHash returns the leaf hash at index in a tree of the given size.
func (p *Prover) LeafHash(ctx context.Context, index, size uint64) (Hash, error) {
	var raw rawTiles
	return p.nodeWith(ctx, compact.NewNodeID(0, index), size, &raw)
}

func (p *Prover) build(ctx context.Context, nodes proof.Nodes, size uint64) ([]Hash, error) {
	hs := make([][]byte, len(nodes.IDs))
	var raw rawTiles
	for i, id := range nodes.IDs {
		h, err := p.nodeWith(ctx, id, size, &raw)
		if err != nil {
			return nil, err
		}
		hs[i] = h[:]
	}
	rehashed, err := nodes.Rehash(hs, func(l, r []byte) []byte {
		h := nodeHash((*Hash)(l), (*Hash)(r))
		return h[:]
	})
	if err != nil {
		return nil, err
	}
	out := make([]Hash, len(rehashed))
	for i, h := range rehashed {
		out[i] = Hash(h)
	}
	return out, nil
}

// rawTiles remembers the tiles one proof has read: a proof's low nodes
// mostly come from the same one or two tiles.
type rawTiles struct {
	keys  [4]tileKey
	tiles [4][]Hash
	n     int
}

// nodeWith returns the hash of a complete subtree node from the tile
// holding it: a node at tree level L lies in the tile at level L/8, L%8
// levels above the tile's stored hashes.
func (p *Prover) nodeWith(ctx context.Context, id compact.NodeID, size uint64, raw *rawTiles) (Hash, error) {
	level := uint64(id.Level) / TileHeight
	r := id.Level % TileHeight
	first := id.Index << r // index of the node's leftmost descendant at the tile's level
	tidx := first / TileWidth
	w := tileWidthAt(level, tidx, size)
	pos := int(first%TileWidth) >> r
	if (pos+1)<<r > w {
		return Hash{}, fmt.Errorf("node %d/%d is not complete in a tree of size %d", id.Level, id.Index, size)
	}
	key := tileKey{level, tidx, w}
	if r >= upperLevel {
		up, err := p.upperOf(ctx, key, size, raw)
		if err != nil {
			return Hash{}, err
		}
		off := 0
		for k := uint(upperLevel); k < r; k++ {
			off += up.width >> k
		}
		return up.nodes[off+pos], nil
	}
	hs, err := p.raw(ctx, key, size, raw)
	if err != nil {
		return Hash{}, err
	}
	return subtreeHash(hs[pos<<r : (pos+1)<<r]), nil
}

// subtreeHash is the root of a perfect subtree over hs (a power of two).
func subtreeHash(hs []Hash) Hash {
	if len(hs) == 1 {
		return hs[0]
	}
	half := len(hs) / 2
	l, r := subtreeHash(hs[:half]), subtreeHash(hs[half:])
	return nodeHash(&l, &r)
}

// raw returns a tile's hashes: from this proof's tiles, the prover's, or
// the ledger.
func (p *Prover) raw(ctx context.Context, key tileKey, size uint64, raw *rawTiles) ([]Hash, error) {
	for i := 0; i < min(raw.n, len(raw.keys)); i++ {
		if raw.keys[i] == key {
			return raw.tiles[i], nil
		}
	}
	p.mu.RLock()
	hs, ok := p.tiles.get(key)
	p.mu.RUnlock()
	if !ok {
		b, _, _, err := fetchTile(ctx, p.f, int(key.level), key.index, size)
		if err != nil {
			return nil, fmt.Errorf("read tile %d/%d: %w", key.level, key.index, err)
		}
		if len(b) < key.width*32 {
			return nil, fmt.Errorf("tile %d/%d holds %d bytes, need %d", key.level, key.index, len(b), key.width*32)
		}
		if hs, err = bytesHashes(b[:key.width*32]); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.tiles.put(key, hs)
		p.mu.Unlock()
	}
	slot := raw.n % len(raw.keys)
	raw.keys[slot], raw.tiles[slot] = key, hs
	raw.n++
	return hs, nil
}

// upper returns a tile's upper nodes, computing and remembering them on
// first use.
func (p *Prover) upperOf(ctx context.Context, key tileKey, size uint64, raw *rawTiles) (*tileUpper, error) {
	p.mu.RLock()
	up, ok := p.upper.get(key)
	if !ok && key.width < TileWidth {
		// A full tile holds every partial one as its prefix.
		up, ok = p.upper.get(tileKey{key.level, key.index, TileWidth})
	}
	p.mu.RUnlock()
	if ok {
		return up, nil
	}
	hs, err := p.raw(ctx, key, size, raw)
	if err != nil {
		return nil, err
	}
	up = &tileUpper{width: key.width, nodes: upperNodes(hs)}
	p.mu.Lock()
	p.upper.put(key, up)
	p.mu.Unlock()
	return up, nil
}

// upperNodes computes the complete nodes above a tile's hashes and keeps
// those at inner level upperLevel and above.
func upperNodes(base []Hash) []Hash {
	lvl := base
	var out []Hash
	for r := 1; len(lvl) > 1; r++ {
		next := make([]Hash, len(lvl)/2)
		for i := range next {
			next[i] = nodeHash(&lvl[2*i], &lvl[2*i+1])
		}
		if r >= upperLevel {
			out = append(out, next...)
		}
		lvl = next
	}
	return out
}

// VerifyInclusion checks an inclusion proof of a leaf hash against a root.
func VerifyInclusion(index, size uint64, leaf Hash, prf []Hash, root Hash) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf[:], hashSlices(prf), root[:])
}

// VerifyConsistency checks a consistency proof between two roots.
func VerifyConsistency(size1, size2 uint64, prf []Hash, root1, root2 Hash) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, hashSlices(prf), root1[:], root2[:])
}

func hashSlices(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
