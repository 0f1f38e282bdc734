package ledger

import (
	"context"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Prover builds inclusion and consistency proofs from a ledger's tiles. It
// keeps the inner nodes of recently used tiles, so that a proof costs a few
// lookups rather than re-hashing a tile per level.
type Prover struct {
	f   Fetcher
	max int

	mu    sync.Mutex
	cache map[tileKey]*tileNodes
	clock []tileKey // insertion order, for eviction
}

type tileKey struct {
	level uint64
	index uint64
	width int
}

// tileNodes holds every complete node inside one tile: level r has
// width>>r nodes, stored one level after the other.
type tileNodes struct {
	width int
	nodes []Hash
}

// NewProver returns a prover reading from f that caches up to maxTiles
// tiles (0 means 4096, about 64 MiB).
func NewProver(f Fetcher, maxTiles int) *Prover {
	if maxTiles <= 0 {
		maxTiles = 4096
	}
	return &Prover{f: f, max: maxTiles, cache: map[tileKey]*tileNodes{}}
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
	return p.node(ctx, compact.NewNodeID(0, index), size)
}

func (p *Prover) build(ctx context.Context, nodes proof.Nodes, size uint64) ([]Hash, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := p.node(ctx, id, size)
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

// node returns the hash of a complete subtree node from the tile holding
// it: a node at tree level L lies in the tile at level L/8, L%8 levels above
// the tile's stored hashes.
func (p *Prover) node(ctx context.Context, id compact.NodeID, size uint64) (Hash, error) {
	level := uint64(id.Level) / TileHeight
	r := id.Level % TileHeight
	first := id.Index << r // index of the node's leftmost descendant at the tile's level
	tidx := first / TileWidth
	w := tileWidthAt(level, tidx, size)
	pos := int(first%TileWidth) >> r
	if (pos+1)<<r > w {
		return Hash{}, fmt.Errorf("node %d/%d is not complete in a tree of size %d", id.Level, id.Index, size)
	}
	tn, err := p.tile(ctx, level, tidx, w, size)
	if err != nil {
		return Hash{}, err
	}
	off := 0
	for k := uint(0); k < r; k++ {
		off += tn.width >> k
	}
	return tn.nodes[off+pos], nil
}

func (p *Prover) tile(ctx context.Context, level, idx uint64, width int, size uint64) (*tileNodes, error) {
	key := tileKey{level, idx, width}
	p.mu.Lock()
	tn, ok := p.cache[key]
	if !ok && width < TileWidth {
		// A full tile holds every partial one as its prefix.
		if full, ok2 := p.cache[tileKey{level, idx, TileWidth}]; ok2 {
			p.mu.Unlock()
			return full, nil
		}
	}
	p.mu.Unlock()
	if ok {
		return tn, nil
	}
	b, _, _, err := fetchTile(ctx, p.f, int(level), idx, size)
	if err != nil {
		return nil, fmt.Errorf("read tile %d/%d: %w", level, idx, err)
	}
	if len(b) < width*32 {
		return nil, fmt.Errorf("tile %d/%d holds %d bytes, need %d", level, idx, len(b), width*32)
	}
	hs, err := bytesHashes(b[:width*32])
	if err != nil {
		return nil, err
	}
	tn = &tileNodes{width: width, nodes: innerNodes(hs)}
	p.mu.Lock()
	if _, ok := p.cache[key]; !ok {
		if len(p.clock) >= p.max {
			delete(p.cache, p.clock[0])
			p.clock = p.clock[1:]
		}
		p.cache[key] = tn
		p.clock = append(p.clock, key)
	}
	p.mu.Unlock()
	return tn, nil
}

// innerNodes computes every complete node above a tile's hashes.
func innerNodes(base []Hash) []Hash {
	out := make([]Hash, 0, 2*len(base))
	out = append(out, base...)
	lvl := out
	for len(lvl) > 1 {
		start := len(out)
		for i := 0; i+1 < len(lvl); i += 2 {
			out = append(out, nodeHash(&lvl[i], &lvl[i+1]))
		}
		lvl = out[start:]
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
