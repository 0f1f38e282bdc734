package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
)

// maxCheckProblems caps the report so a wholesale corruption does not
// produce a million-line error.
const maxCheckProblems = 100

// Check reads everything in the backend and verifies it, in the spirit of
// bbolt's tx check: every pack hashes to its name, its header parses and
// covers its data exactly, every chunk opens under its id and re-hashes to
// it, every index object hashes to its name and agrees with the packs, and
// every indexed chunk is in an existing pack. Problems found at Open are
// included. It assumes every chunk in the store was sealed by sl (one Store
// per key domain), because a chunk sealed under another key is
// indistinguishable from a forged one.
func (s *Store) Check(ctx context.Context, sl Sealer) error {
	if err := s.Flush(ctx); err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	problems := append([]error(nil), s.openProblems...)
	report := func(err error) {
		if len(problems) < maxCheckProblems {
			problems = append(problems, err)
		}
	}
	packs := map[PackID][]packEntry{}
	var names []string
	if err := s.be.List(ctx, "data/", func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return fmt.Errorf("store: check: list packs: %w", err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, ok := parseObjectName("data", name)
		if !ok {
			continue // reported at Open
		}
		entries, err := s.checkPack(ctx, sl, id, name)
		if err != nil {
			report(err)
			continue
		}
		packs[id] = entries
	}

	var idxNames []string
	if err := s.be.List(ctx, "index/", func(name string, _ int64) error {
		idxNames = append(idxNames, name)
		return nil
	}); err != nil {
		return fmt.Errorf("store: check: list index objects: %w", err)
	}
	for _, name := range idxNames {
		groups, err := s.readIndexObject(ctx, name)
		if err != nil {
			report(err)
			continue
		}
		for _, g := range groups {
			have, ok := packs[g.pack]
			if !ok {
				report(fmt.Errorf("store: index object %s names pack %s, which is missing or damaged", name, PackName(g.pack)))
				continue
			}
			byID := make(map[ID]packEntry, len(have))
			for _, e := range have {
				byID[e.id] = e
			}
			for _, e := range g.entries {
				if byID[e.id] != e {
					report(fmt.Errorf("store: index object %s: blob %x in pack %s at %d+%d disagrees with the pack header", name, e.id, PackName(g.pack), e.off, e.length))
				}
			}
		}
	}

	s.idx.mu.RLock()
	for id, l := range s.idx.byID {
		p := s.idx.packs[l.pack]
		if _, ok := packs[p]; !ok {
			report(fmt.Errorf("store: blob %x: indexed in pack %s, which is missing or damaged", id, PackName(p)))
		}
	}
	s.idx.mu.RUnlock()
	if len(problems) >= maxCheckProblems {
		problems = append(problems, errors.New("store: check: further problems not listed"))
	}
	return errors.Join(problems...)
}

// checkPack verifies one pack. A pack that fails its hash is still
// examined chunk by chunk (using its own header, or the index if the header
// is gone) so the report names the blobs that are actually damaged.
func (s *Store) checkPack(ctx context.Context, sl Sealer, id PackID, name string) ([]packEntry, error) {
	data, err := loadAll(ctx, s.be, name, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("store: check: read pack %s: %w", name, err)
	}
	var errs []error
	if sha256.Sum256(data) != id {
		errs = append(errs, fmt.Errorf("store: check: pack %s: content does not match its name", name))
	}
	entries, err := parsePackTail(data, int64(len(data)))
	if err != nil {
		errs = append(errs, fmt.Errorf("store: check: pack %s: %w", name, err))
		entries = s.indexedEntries(id)
	}
	for _, e := range entries {
		if e.length > maxSealedLen || int64(e.off)+int64(e.length) > int64(len(data)) {
			errs = append(errs, fmt.Errorf("store: check: blob %x in pack %s: range %d+%d outside the pack's %d bytes", e.id, name, e.off, e.length, len(data)))
			continue
		}
		if _, err := s.openChunk(sl, e.id, data[e.off:e.off+e.length], "pack "+name); err != nil {
			errs = append(errs, fmt.Errorf("store: check: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}

// indexedEntries lists what the in-memory index places in pack id.
func (s *Store) indexedEntries(id PackID) []packEntry {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	n, ok := s.idx.packNum[id]
	if !ok {
		return nil
	}
	var out []packEntry
	for cid, l := range s.idx.byID {
		if l.pack == n {
			out = append(out, packEntry{id: cid, off: l.off, length: l.length})
		}
	}
	return out
}
