package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
)

// Keyless replication. The writer finds the packs that hold a ledger
// entry's chunks (Locate), ships those objects under their names
// (PackName); the receiving site checks each on arrival (CheckObject),
// saves it to its backend, adopts it (AdoptPack), flushes, and confirms
// that every chunk id the entry references is present (Has). None of this
// needs a key: pack names are content hashes and pack headers hold only
// keyed ids and lengths. See docs/store.md, "Keyless replicas".

// Has reports whether chunk id is in a durable pack: one uploaded by this
// Store, adopted, or found at Open. Like Locate, it does not count a chunk
// whose pack has not been uploaded yet (Flush first), because a replica
// acknowledging a record must mean the bytes are on its backend, not in
// someone's memory.
func (s *Store) Has(id ID) bool {
	_, ok := s.Locate(id)
	return ok
}

// Locate returns the pack that durably holds chunk id. A chunk that is
// only in a pack still being filled or uploaded (Put returned, no Flush
// since) is not located: the replicator ships pack objects, and that pack
// has no object yet, so Flush first. When a chunk is in several packs (a
// crash between a pack upload and its index object, then a retry), the
// first one indexed is returned; any of them would do.
func (s *Store) Locate(id ID) (PackID, bool) {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	l, ok := s.idx.byID[id]
	if !ok {
		return PackID{}, false
	}
	return s.idx.packs[l.pack], true
}

// PackInfo is a durable pack and the size of its object.
type PackInfo struct {
	ID   PackID
	Size int64
}

// Packs lists the durable packs this Store has indexed (uploaded, adopted
// or found at Open), sorted by id so that two sites can compare lists by a
// merge. It is what a writer offers a site that is catching up.
//
// It comes from the index rather than from Backend.List on purpose: the
// index holds only packs whose header was verified (and, if adopted, whose
// whole content was), and not packs that Open set aside as damaged; and it
// costs no request to an object store holding millions of objects. The
// sizes are derived from the pack headers, so they are exact for the
// object each header came from. A pack saved to the backend but not yet
// adopted is not listed until AdoptPack or the next Open.
func (s *Store) Packs() []PackInfo {
	s.idx.mu.RLock()
	out := make([]PackInfo, len(s.idx.packs))
	for i, p := range s.idx.packs {
		out[i] = PackInfo{ID: p, Size: s.idx.sizes[i]}
	}
	s.idx.mu.RUnlock()
	slices.SortFunc(out, func(a, b PackInfo) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// AdoptPack indexes the pack object name, which someone else (the
// replicator) saved to this Store's backend. The whole object is read
// once and verified from those same bytes: its SHA-256 against its name,
// then its trailer and header (checksum, entries tiling the data exactly).
// Its chunks are then durable for Has and Locate, and the next Flush
// writes an index object covering it. Chunks are not opened, since no key
// is at hand; Get and Check still authenticate every chunk.
//
// Adopting a pack the index already knows is a no-op, so a replicator may
// retry a batch. A missing, damaged or misnamed object is an error naming
// it, and the index is unchanged. The object must fit in memory: packs are
// PackSize (16 MiB by default) plus one chunk, and anything above the
// format's limit is refused before it is read.
func (s *Store) AdoptPack(ctx context.Context, name string) error {
	id, ok := ParsePackName(name)
	if !ok {
		return fmt.Errorf("store: adopt %q: not a pack name", name)
	}
	if s.isClosed() {
		return fmt.Errorf("store: adopt pack %s: closed", name)
	}
	if s.knowsPack(id) {
		return nil
	}
	size, err := s.be.Stat(ctx, name)
	if err != nil {
		return fmt.Errorf("store: adopt pack %s: %w", name, err)
	}
	// A hostile or broken peer must not make us allocate without bound.
	if size > maxPackSize {
		return fmt.Errorf("store: adopt pack %s: %d bytes, above the %d-byte pack limit", name, size, maxPackSize)
	}
	if size < packTrailerLen {
		return fmt.Errorf("store: adopt pack %s: %d bytes, too short for a trailer", name, size)
	}
	// One read for both checks: parsing a header fetched separately would
	// let a backend that changes the object between the reads get a header
	// indexed that is not the one the hash vouched for.
	data, err := loadAll(ctx, s.be, name, 0, size)
	if err != nil {
		return fmt.Errorf("store: adopt pack %s: read: %w", name, err)
	}
	entries, err := checkPack(id, data)
	if err != nil {
		return fmt.Errorf("store: adopt pack %s: %w", name, err)
	}
	s.idx.adopt(packEntries{pack: id, entries: entries})
	return nil
}

// checkPack verifies a whole pack against its id: hash, trailer, header.
func checkPack(id PackID, data []byte) ([]packEntry, error) {
	if len(data) > maxPackSize {
		return nil, fmt.Errorf("%d bytes, above the %d-byte pack limit", len(data), maxPackSize)
	}
	if len(data) < packTrailerLen {
		return nil, fmt.Errorf("%d bytes, too short for a trailer", len(data))
	}
	if sha256.Sum256(data) != id {
		return nil, errors.New("content does not match its name")
	}
	entries, err := parsePackTail(data, int64(len(data)))
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		// No writer uploads an empty pack, and an index object cannot
		// describe one (parseIndex refuses empty groups).
		return nil, errors.New("holds no chunks")
	}
	return entries, nil
}

// ErrBadPack is returned by SavePack for bytes that are not the pack
// their name promises; nothing is stored.
var ErrBadPack = errors.New("not a valid pack")

// SavePack is AdoptPack for a pack the caller holds in memory, as a
// replica receives it: it checks the bytes (hash against the name,
// trailer, header) before it stores anything, saves them, and indexes
// them, hashing the pack once instead of once to check and once again to
// adopt. A pack already known is not saved again.
func (s *Store) SavePack(ctx context.Context, name string, data []byte) error {
	id, ok := ParsePackName(name)
	if !ok {
		return fmt.Errorf("store: save %q: not a pack name", name)
	}
	if s.isClosed() {
		return fmt.Errorf("store: save pack %s: closed", name)
	}
	if s.knowsPack(id) {
		return nil
	}
	entries, err := checkPack(id, data)
	if err != nil {
		return fmt.Errorf("store: save pack %s: %w: %v", name, ErrBadPack, err)
	}
	if err := s.be.Save(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("store: save pack %s: %w", name, err)
	}
	s.idx.adopt(packEntries{pack: id, entries: entries})
	return nil
}

func (s *Store) knowsPack(id PackID) bool {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	_, ok := s.idx.packNum[id]
	return ok
}

func (s *Store) isClosed() bool {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.closed
}
