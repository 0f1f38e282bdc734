package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// Re-sealing a store in place, for a site outer key rotation
// (docs/seal.md § Site key rotation). It comes in two halves so that the
// caller can switch keys between them, and each half can be run again
// after a crash:
//
//  1. ResealPacks writes, beside every pack still under the old key, a
//     copy with every chunk re-sealed under the new one. Nothing is
//     removed or overwritten: a crash leaves old packs whole and new
//     packs whole (Backend.Save is atomic), and running it again skips the
//     packs already under the new key.
//  2. The caller switches (records the new key, retires the old one).
//  3. DropPacks writes one index object for the packs under the new key,
//     removes every other index object, then the packs under the old key.
//
// Both work on the Backend directly and must not run while a Store is open
// on it: an open Store's index would still point into the packs removed.
// isNew tells, from a pack's first sealed chunk, whether the pack is under
// the new key (it tries to open it); every chunk of a pack is under the
// same key, since packs are only ever written whole.

// ResealStats count what a re-seal half did.
type ResealStats struct {
	Packs  int   // packs written (ResealPacks) or removed (DropPacks)
	Chunks int   // chunks re-sealed
	Bytes  int64 // bytes of the packs read and re-sealed
	Kept   int   // packs already under the new key
}

// ResealPacks is the first half: every pack of be that isNew rejects, and
// whose chunks are not all in packs isNew accepts already (a run cut short
// by a crash), is checked as a whole (hash, trailer, header), rewrapped
// through fn and its copy saved under its own name. A damaged pack stops
// it with an error naming the pack, before the caller switches keys: a
// rotation never leaves behind a pack it could not carry over.
func ResealPacks(ctx context.Context, be Backend, isNew func(id ID, sealed []byte) bool, fn func(id ID, sealed []byte) ([]byte, error)) (ResealStats, error) {
	var st ResealStats
	fresh, old, err := classifyPacks(ctx, be, isNew)
	if err != nil {
		return st, fmt.Errorf("store: reseal: %w", err)
	}
	st.Kept = len(fresh)
	carried := map[ID]bool{}
	for _, g := range fresh {
		for _, e := range g.entries {
			carried[e.id] = true
		}
	}
	for _, p := range old {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if !slices.ContainsFunc(p.entries, func(e packEntry) bool { return !carried[e.id] }) {
			continue // copied before a crash
		}
		if p.size > maxPackSize {
			return st, fmt.Errorf("store: reseal pack %s: %d bytes, above the %d-byte pack limit", p.name, p.size, maxPackSize)
		}
		data, err := loadAll(ctx, be, p.name, 0, p.size)
		if err != nil {
			return st, fmt.Errorf("store: reseal pack %s: read: %w", p.name, err)
		}
		entries, err := checkPack(p.id, data)
		if err != nil {
			return st, fmt.Errorf("store: reseal pack %s: %w", p.name, err)
		}
		nid, out, err := rewrapEntries(p.id, data, entries, fn)
		if err != nil {
			return st, fmt.Errorf("store: reseal: %w", err)
		}
		if err := be.Save(ctx, PackName(nid), bytes.NewReader(out), int64(len(out))); err != nil {
			return st, fmt.Errorf("store: reseal pack %s: save its copy %s: %w", p.name, PackName(nid), err)
		}
		st.Packs++
		st.Chunks += len(entries)
		st.Bytes += int64(len(data))
	}
	return st, nil
}

// DropPacks is the last half, after the switch: it writes one index object
// describing every pack isNew accepts, removes every other index object
// (they may name packs about to go), then removes the packs isNew rejects.
// In that order a crash never leaves an index object naming a removed pack
// without the newer index beside it, and running it again finishes. A pack
// whose header cannot be read stops it with an error naming the pack, and
// nothing is removed.
func DropPacks(ctx context.Context, be Backend, isNew func(id ID, sealed []byte) bool) (ResealStats, error) {
	var st ResealStats
	fresh, old, err := classifyPacks(ctx, be, isNew)
	if err != nil {
		return st, fmt.Errorf("store: drop old packs: %w", err)
	}
	st.Kept = len(fresh)
	var newIndex string
	if len(fresh) > 0 {
		name, data := indexObject(fresh)
		if err := be.Save(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			return st, fmt.Errorf("store: drop old packs: save index object %s: %w", name, err)
		}
		newIndex = name
	}
	var stale []string
	if err := be.List(ctx, "index/", func(name string, _ int64) error {
		if name != newIndex {
			stale = append(stale, name)
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("store: drop old packs: list index objects: %w", err)
	}
	for _, p := range old {
		stale = append(stale, p.name)
	}
	for _, name := range stale {
		if err := be.Remove(ctx, name); err != nil {
			return st, fmt.Errorf("store: drop old packs: remove %s: %w", name, err)
		}
	}
	st.Packs = len(old)
	return st, nil
}

// oldPack is a pack under the old key, with its header's entries.
type oldPack struct {
	listedPack
	entries []packEntry
}

// classifyPacks sorts the packs of be by key, from each pack's header and
// first chunk (three range reads a pack).
func classifyPacks(ctx context.Context, be Backend, isNew func(id ID, sealed []byte) bool) (fresh []packEntries, old []oldPack, err error) {
	packs, err := listPacks(ctx, be)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		entries, err := readPackHeader(ctx, be, p.name, p.size)
		if err != nil {
			return nil, nil, err
		}
		if len(entries) == 0 {
			return nil, nil, fmt.Errorf("pack %s holds no chunks", p.name)
		}
		first := entries[0]
		sealed, err := loadAll(ctx, be, p.name, int64(first.off), int64(first.length))
		if err != nil {
			return nil, nil, fmt.Errorf("pack %s: read its first chunk: %w", p.name, err)
		}
		if isNew(first.id, sealed) {
			fresh = append(fresh, packEntries{pack: p.id, entries: entries})
		} else {
			old = append(old, oldPack{p, entries})
		}
	}
	return fresh, old, nil
}

// CountChunks counts the chunk entries of every pack in be, from the pack
// headers (two range reads a pack): how many values were sealed into the
// store, duplicates included.
func CountChunks(ctx context.Context, be Backend) (uint64, error) {
	packs, err := listPacks(ctx, be)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, p := range packs {
		entries, err := readPackHeader(ctx, be, p.name, p.size)
		if err != nil {
			return n, fmt.Errorf("store: count chunks: %w", err)
		}
		n += uint64(len(entries))
	}
	return n, nil
}

type listedPack struct {
	id   PackID
	name string
	size int64
}

// listPacks lists the pack objects of be; objects under data/ that are not
// pack names are left alone (Open reports them).
func listPacks(ctx context.Context, be Backend) ([]listedPack, error) {
	var out []listedPack
	err := be.List(ctx, "data/", func(name string, size int64) error {
		if id, ok := ParsePackName(name); ok {
			out = append(out, listedPack{id, name, size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list packs: %w", err)
	}
	return out, nil
}
