package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// recover rebuilds the in-memory tree from the last sync point and the
// write-ahead log, rewriting any tiles a crash may have lost, and checks the
// published checkpoint against what is durable.
func (l *Log) recover(ctx context.Context) error {
	walPath := filepath.Join(l.dir, walDir)
	l.tree = newTree(l)
	var synced uint64
	if b, err := os.ReadFile(filepath.Join(walPath, markerName)); err == nil {
		size, epoch, hashes, err := decodeMarker(b)
		if err != nil {
			return err
		}
		if err := l.restoreTree(size, epoch, hashes); err != nil {
			return fmt.Errorf("restore tree at sync point %d: %w", size, err)
		}
		synced = size
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read sync marker: %w", err)
	}
	l.syncedSize = synced

	var old *Checkpoint
	var oldSigned []byte
	if b, err := os.ReadFile(filepath.Join(l.dir, CheckpointPath)); err == nil {
		cp, err := ParseSignedCheckpoint(b)
		if err != nil {
			return fmt.Errorf("published checkpoint: %w", err)
		}
		if cp.Origin != l.opts.Origin {
			return fmt.Errorf("published checkpoint is for origin %q, not %q", cp.Origin, l.opts.Origin)
		}
		old, oldSigned = &cp, b
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	checkOld := func() error {
		if old == nil || old.Size != l.tree.size() {
			return nil
		}
		root, err := l.tree.root()
		if err != nil {
			return err
		}
		if root != old.Root {
			return fmt.Errorf("the durable log at size %d has root %x, but the published checkpoint says %x", old.Size, root, old.Root)
		}
		return nil
	}
	if err := checkOld(); err != nil {
		return err
	}

	segs, err := listSegments(walPath)
	if err != nil {
		return err
	}
	if len(segs) == 0 && synced > 0 {
		return fmt.Errorf("write-ahead log is empty but the sync point is at %d", synced)
	}
	if len(segs) > 0 && segs[0].first > synced {
		return fmt.Errorf("write-ahead log starts at index %d, after the sync point %d: entries are missing", segs[0].first, synced)
	}
	// A first pass only reads: replay writes tiles, and damage must be
	// found before anything on disk changes. The second read comes from
	// the page cache, and the checksums run at memory speed.
	if _, _, _, err := walScan(walPath, segs, nil); err != nil {
		return err
	}
	var replayed uint64
	l.replaying = true
	end, lastOff, bad, err := walScan(walPath, segs, func(first uint64, entries [][]byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, e := range entries {
			idx := first + uint64(i)
			if idx < synced {
				continue
			}
			if len(e) < EntryHeaderSize {
				return fmt.Errorf("write-ahead log entry %d: %w", idx, ErrEntryShort)
			}
			if err := l.tree.append(e); err != nil {
				return err
			}
			replayed++
		}
		return checkOld()
	})
	l.replaying = false
	if err != nil {
		return err
	}
	// Nothing has been written yet: a bad last frame is set aside only
	// once it is known to hold nothing that was acknowledged.
	var missing error
	switch {
	case end < synced:
		missing = fmt.Errorf("write-ahead log ends at index %d, before the sync point %d", end, synced)
	case old != nil && old.Size > end:
		missing = fmt.Errorf("the published checkpoint has size %d but the durable log holds %d entries: acknowledged entries are missing", old.Size, end)
	}
	if missing != nil {
		if bad != nil {
			// Entries below the sync point or the checkpoint were
			// acknowledged: their frame is damaged, not torn.
			return &DamageError{File: bad.path, Offset: bad.off, Index: bad.index, Err: fmt.Errorf("%w: %w", bad.err, missing)}
		}
		return missing
	}
	var torn *TornTail
	if bad != nil {
		if torn, err = setAsideTail(bad.path, bad.off); err != nil {
			return err
		}
		l.opts.Logger.Warn("ledger: torn write-ahead log tail set aside (a crash interrupted an unacknowledged commit)",
			"segment", torn.Segment, "offset", torn.Offset, "bytes", torn.Bytes, "saved_as", torn.SavedAs)
	}
	l.recovery = Recovery{Size: end, Replayed: replayed, SyncedSize: synced, Torn: torn}
	l.next, l.durable = end, end
	l.epoch = l.tree.epoch
	l.segments = segs
	l.wal = &walWriter{dir: walPath, segSize: l.opts.SegmentSize, skipSync: l.opts.skipWALSync}
	if len(segs) > 0 {
		if err := l.wal.resume(segs[len(segs)-1].path, lastOff); err != nil {
			return err
		}
	}
	if l.opts.Mirror {
		if err := l.recoverMirror(); err != nil {
			return err
		}
	}
	if !l.opts.Mirror && l.tree.epoch < l.opts.FromEpoch {
		// Every entry is of an epoch this signer does not write.
		if err := l.tree.flushPartial(); err != nil {
			return err
		}
		if old != nil {
			l.pub.Lock()
			l.latest, l.latestCp = oldSigned, *old
			l.pub.Unlock()
		}
		return nil
	}
	return l.publish()
}

// restoreTree sets the tree to the state recorded at a sync point, reading
// the rightmost incomplete tiles and entry bundle back from disk. The
// entries carried over from the bundle are extended by every later append
// and copied into the next full bundle, so they are checked first: the
// level-0 tile against the sync marker, each entry against its leaf hash
// in that tile. Damage is a *DamageError naming the file and index.
func (l *Log) restoreTree(size, epoch uint64, hashes [][]byte) error {
	rng, err := rangeFactory().NewRange(0, size, hashes)
	if err != nil {
		return err
	}
	t := l.tree
	t.rng, t.epoch = rng, epoch
	edge, err := readRightEdge(l.dir, size, hashes)
	if err != nil {
		return err
	}
	for level, hs := range edge.tiles {
		t.tiles = append(t.tiles, make([]Hash, 0, TileWidth))
		t.tiles[level] = append(t.tiles[level], hs...)
	}
	for _, e := range edge.entries {
		t.bundle = appendBundleEntry(t.bundle, e)
	}
	return nil
}

// rightEdge is the rightmost incomplete tile at each level and the
// entries of the rightmost incomplete bundle, of a tree of some size.
type rightEdge struct {
	tiles      [][]Hash
	entries    [][]byte
	bundlePath string // the bundle file read, relative to the ledger
}

// readRightEdge reads the right edge of the tree of the given size from
// the ledger in dir, whose compact range is hashes, and checks it: the
// level-0 tile must give the range's nodes below a full tile, and each
// entry of the bundle must hash to its leaf in that tile.
func readRightEdge(dir string, size uint64, hashes [][]byte) (*rightEdge, error) {
	// The partial of this size first: the sync point that wrote the
	// marker fsynced it. The full tile's name may have been made durable
	// by a directory fsync before its data was (log.go, syncPoint), so it
	// is read only when the partial was superseded and removed.
	read := func(full, partial string, n int, elem int) ([]byte, string, error) {
		rel := partial
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(partial)))
		if errors.Is(err, fs.ErrNotExist) {
			rel = full
			b, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(full)))
		}
		if err != nil {
			return nil, rel, err
		}
		if elem > 0 {
			if len(b) < n*elem {
				return nil, rel, fmt.Errorf("%s holds %d bytes, need %d", rel, len(b), n*elem)
			}
			return b[:n*elem], rel, nil
		}
		return b, rel, nil
	}
	edge := &rightEdge{}
	var tilePath string
	for level := uint64(0); size>>(TileHeight*level) > 0; level++ {
		edge.tiles = append(edge.tiles, nil)
		w := partialWidth(level, size)
		if w == 0 {
			continue
		}
		idx := (size >> (TileHeight * level)) / TileWidth
		b, rel, err := read(TilePath(level, idx, 0), TilePath(level, idx, w), w, 32)
		if err != nil {
			return nil, err
		}
		hs, err := bytesHashes(b)
		if err != nil {
			return nil, err
		}
		edge.tiles[level] = hs
		if level == 0 {
			tilePath = rel
		}
	}
	w := int(size % TileWidth)
	if w == 0 {
		return edge, nil
	}
	first := size - uint64(w)
	// The level-0 tile's hashes must give the compact range's nodes for
	// [first, size): the tail of the range the sync marker recorded.
	r := rangeFactory().NewEmptyRange(first)
	for _, h := range edge.tiles[0] {
		if err := r.Append(h[:], nil); err != nil {
			return nil, err
		}
	}
	tail := r.Hashes()
	if len(tail) > len(hashes) || !slices.EqualFunc(tail, hashes[len(hashes)-len(tail):], bytes.Equal) {
		return nil, &DamageError{File: filepath.Join(dir, filepath.FromSlash(tilePath)), Offset: -1, Index: first,
			Err: fmt.Errorf("level-0 tile does not match the tree recorded at size %d", size)}
	}
	b, rel, err := read(EntriesPath(first/TileWidth, 0), EntriesPath(first/TileWidth, w), 0, 0)
	if err != nil {
		return nil, err
	}
	edge.bundlePath = rel
	path := filepath.Join(dir, filepath.FromSlash(rel))
	es, err := splitBundle(b)
	if err != nil || len(es) < w {
		// Find the first entry that is not whole and hashed right.
		return nil, bundleDamage(path, b, first, edge.tiles[0])
	}
	for i, e := range es[:w] {
		if EntryLeafHash(e) != edge.tiles[0][i] {
			return nil, bundleDamage(path, b, first, edge.tiles[0])
		}
	}
	edge.entries = es[:w]
	return edge, nil
}

// bundleDamage names the first entry of bundle b (whose first entry has
// index first) that is not whole or does not hash to its leaf in leaves.
func bundleDamage(path string, b []byte, first uint64, leaves []Hash) *DamageError {
	off := 0
	for i, leaf := range leaves {
		idx := first + uint64(i)
		if len(b)-off < 2 {
			return &DamageError{File: path, Offset: int64(off), Index: idx, Err: errors.New("entry bundle ends before this entry")}
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		if len(b)-off-2 < n {
			return &DamageError{File: path, Offset: int64(off), Index: idx, Err: errors.New("entry runs past the end of the bundle (its length is damaged)")}
		}
		if EntryLeafHash(b[off+2:off+2+n]) != leaf {
			return &DamageError{File: path, Offset: int64(off), Index: idx, Err: errors.New("entry does not hash to its leaf in the level-0 tile")}
		}
		off += 2 + n
	}
	return &DamageError{File: path, Offset: -1, Index: first, Err: errors.New("entry bundle does not split into entries")}
}
