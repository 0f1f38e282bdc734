package store

import (
	"fmt"
	"slices"
)

// RewrapPack rebuilds a pack with every sealed chunk passed through fn,
// keeping chunk ids and order: how a writer adds a site's outer layer to
// the packs it ships there (or strips its own), so that one site's copy
// can be shredded without touching the others. It needs no key of its
// own. The input is checked as a whole pack first (hash against id,
// trailer, header); the result is a new pack, named by its own hash.
func RewrapPack(id PackID, data []byte, fn func(id ID, sealed []byte) ([]byte, error)) (PackID, []byte, error) {
	entries, err := checkPack(id, data)
	if err != nil {
		return PackID{}, nil, fmt.Errorf("store: rewrap pack %s: %w", PackName(id), err)
	}
	return rewrapEntries(id, data, entries, fn)
}

// rewrapEntries is RewrapPack for a pack already checked.
func rewrapEntries(id PackID, data []byte, entries []packEntry, fn func(id ID, sealed []byte) ([]byte, error)) (PackID, []byte, error) {
	var b packBuilder
	b.data = make([]byte, 0, len(data)+len(entries)*64)
	for _, e := range entries {
		out, err := fn(e.id, data[e.off:e.off+e.length])
		if err != nil {
			return PackID{}, nil, fmt.Errorf("store: rewrap pack %s chunk %x: %w", PackName(id), e.id[:8], err)
		}
		if len(out) == 0 || len(out) > maxSealedLen {
			return PackID{}, nil, fmt.Errorf("store: rewrap pack %s chunk %x: %d bytes", PackName(id), e.id[:8], len(out))
		}
		b.add(e.id, out)
	}
	nid := b.finish()
	return nid, slices.Clip(b.data), nil
}
