package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	var replayed uint64
	l.replaying = true
	end, lastOff, torn, err := walScan(walPath, segs, func(first uint64, entries [][]byte) error {
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
	if end < synced {
		return fmt.Errorf("write-ahead log ends at index %d, before the sync point %d", end, synced)
	}
	if old != nil && old.Size > end {
		return fmt.Errorf("the published checkpoint has size %d but the durable log holds %d entries: acknowledged entries are missing", old.Size, end)
	}
	if torn != nil {
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
// the rightmost incomplete tiles and entry bundle back from disk.
func (l *Log) restoreTree(size, epoch uint64, hashes [][]byte) error {
	rng, err := rangeFactory().NewRange(0, size, hashes)
	if err != nil {
		return err
	}
	t := l.tree
	t.rng, t.epoch = rng, epoch
	read := func(full, partial string, n int, elem int) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(full)))
		if errors.Is(err, fs.ErrNotExist) {
			b, err = os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(partial)))
		}
		if err != nil {
			return nil, err
		}
		if elem > 0 {
			if len(b) < n*elem {
				return nil, fmt.Errorf("%s holds %d bytes, need %d", partial, len(b), n*elem)
			}
			return b[:n*elem], nil
		}
		return b, nil
	}
	for level := uint64(0); size>>(TileHeight*level) > 0; level++ {
		t.tiles = append(t.tiles, make([]Hash, 0, TileWidth))
		w := partialWidth(level, size)
		if w == 0 {
			continue
		}
		idx := (size >> (TileHeight * level)) / TileWidth
		b, err := read(TilePath(level, idx, 0), TilePath(level, idx, w), w, 32)
		if err != nil {
			return err
		}
		hs, err := bytesHashes(b)
		if err != nil {
			return err
		}
		t.tiles[level] = append(t.tiles[level], hs...)
	}
	if w := int(size % TileWidth); w > 0 {
		b, err := read(EntriesPath(size/TileWidth, 0), EntriesPath(size/TileWidth, w), 0, 0)
		if err != nil {
			return err
		}
		es, err := splitBundle(b)
		if err != nil {
			return err
		}
		if len(es) < w {
			return fmt.Errorf("entry bundle %d holds %d entries, need %d", size/TileWidth, len(es), w)
		}
		for _, e := range es[:w] {
			t.bundle = appendBundleEntry(t.bundle, e)
		}
	}
	return nil
}
