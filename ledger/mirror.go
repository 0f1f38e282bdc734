package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// A mirror is a site's copy of a writer's ledger. It holds the same tree,
// tile for tile, and publishes the writer's own signed checkpoints, so an
// auditor reading a mirror checks exactly what it would check at the
// writer. What differs is how entries arrive: AppendMirrored takes a batch
// only if the entries, appended to the tree the mirror already holds,
// produce the root the writer signed. Because the mirror holds the whole
// tree, that check is stronger than a consistency proof: it re-derives the
// new root from every leaf.

// receivedName is the file, beside the write-ahead log, holding the newest
// writer checkpoint whose entries are durable here. It is written after
// the entries, so it never claims more than the log holds.
const receivedName = "received"

// ErrNotMirror is returned by AppendMirrored on a writer's own ledger.
var ErrNotMirror = errors.New("ledger is not a mirror")

// ErrMirrorGap is returned when a batch does not start where the mirror
// ends: the sender must resume from the mirror's size.
var ErrMirrorGap = errors.New("batch does not start at the mirror's size")

type mirrorState struct {
	mu    sync.Mutex     // serialises check-and-enqueue of batches
	rng   *compact.Range // tree over every accepted entry, durable or queued
	epoch uint64         // highest epoch accepted

	// notes maps a tree size to the writer's checkpoint for it, waiting
	// for the integrator to reach that size. Guarded by Log.pub.
	notes map[uint64]mirrorNote

	saveMu sync.Mutex
	saved  uint64 // size of the checkpoint in the received file
}

type mirrorNote struct {
	signed []byte
	cp     Checkpoint
}

func cloneRange(r *compact.Range) (*compact.Range, error) {
	hs := r.Hashes()
	cp := make([][]byte, len(hs))
	for i, h := range hs {
		cp[i] = append([]byte(nil), h...)
	}
	return rangeFactory().NewRange(r.Begin(), r.End(), cp)
}

// recoverMirror runs at the end of recovery, once the tree holds every
// durable entry: it finds the newest received checkpoint and sets up the
// range new batches are checked against.
func (l *Log) recoverMirror() error {
	rng, err := cloneRange(l.tree.rng)
	if err != nil {
		return err
	}
	l.mirror.rng, l.mirror.epoch = rng, l.tree.epoch
	l.mirror.notes = map[uint64]mirrorNote{}
	b, err := os.ReadFile(filepath.Join(l.dir, walDir, receivedName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read received checkpoint: %w", err)
	}
	cp, err := ParseSignedCheckpoint(b)
	if err != nil {
		return fmt.Errorf("received checkpoint: %w", err)
	}
	size := l.tree.size()
	switch {
	case cp.Size > size:
		return fmt.Errorf("received checkpoint has size %d but the durable log holds %d entries", cp.Size, size)
	case cp.Size == size:
		root, err := l.tree.root()
		if err != nil {
			return err
		}
		if root != cp.Root {
			return fmt.Errorf("the durable log at size %d has root %x, but the received checkpoint says %x", size, root, cp.Root)
		}
		l.mirror.notes[size] = mirrorNote{b, cp}
	default:
		// A crash between making a batch durable and recording its
		// checkpoint: keep serving the older checkpoint; the writer
		// resumes from Size and the next batch brings a new one.
		l.pub.Lock()
		l.latest, l.latestCp = b, cp
		l.pub.Unlock()
	}
	l.mirror.saved = cp.Size
	return nil
}

// publishMirrored publishes the writer's checkpoint for the tree's current
// size, if one has arrived; otherwise the last one stays published.
func (l *Log) publishMirrored() error {
	size := l.tree.size()
	l.pub.Lock()
	n, ok := l.mirror.notes[size]
	if !ok {
		for s := range l.mirror.notes {
			if s <= size {
				delete(l.mirror.notes, s)
			}
		}
	}
	l.pub.Unlock()
	if !ok {
		return nil
	}
	// The note is dropped only once written: a checkpoint the disk had no
	// room for is written again when publish is retried.
	if err := l.writeTile(CheckpointPath, n.signed); err != nil {
		return fmt.Errorf("write checkpoint at size %d: %w", size, err)
	}
	l.pub.Lock()
	for s := range l.mirror.notes {
		if s <= size {
			delete(l.mirror.notes, s)
		}
	}
	l.latest, l.latestCp = n.signed, n.cp
	l.published.Broadcast()
	l.pub.Unlock()
	return nil
}

// MirrorSize is the size of the tree the mirror has accepted: durable
// entries and those still being committed. A sender resumes from it.
//
// For a writer's own ledger it is Size: a site that became the writer
// still reports where replication to it would resume.
func (l *Log) MirrorSize() uint64 {
	if !l.opts.Mirror {
		return l.Size()
	}
	l.mirror.mu.Lock()
	defer l.mirror.mu.Unlock()
	return l.mirror.rng.End()
}

// IsMirror reports whether the ledger was opened as a mirror.
func (l *Log) IsMirror() bool { return l.opts.Mirror }

// AppendMirrored appends a batch of encoded entries received from a
// writer (or from another mirror of it), with the writer's signed
// checkpoint. The caller has checked the checkpoint's signature (which key
// may sign for which epoch is the caller's policy); AppendMirrored checks
// everything else before it takes a byte: the batch starts at the mirror's
// size, every entry decodes, epochs never go backwards, and the leaves
// produce the checkpoint's tree.
//
// When the batch ends at the checkpoint's size, its root must be the
// checkpoint's root, and the checkpoint is published once its tiles are
// written. A batch may also end short of the checkpoint, so that a long
// catch-up travels in bounded pieces: then proof must be the consistency
// proof from the batch's end to the checkpoint, and nothing new is
// published until a later batch reaches a checkpoint's size.
//
// It returns once the entries are durable. Batches may be appended
// concurrently; each is checked against the tree left by those before it.
func (l *Log) AppendMirrored(ctx context.Context, entries [][]byte, signed []byte, proof []Hash) (Checkpoint, error) {
	if !l.opts.Mirror {
		return Checkpoint{}, ErrNotMirror
	}
	cp, err := ParseSignedCheckpoint(signed)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("mirror: checkpoint: %w", err)
	}
	if cp.Origin != l.opts.Origin {
		return Checkpoint{}, fmt.Errorf("mirror: checkpoint is for origin %q, this ledger is %q", cp.Origin, l.opts.Origin)
	}
	m := &l.mirror
	m.mu.Lock()
	base := m.rng.End()
	end := base + uint64(len(entries))
	if cp.Size < end || (cp.Size > end && len(entries) == 0) {
		m.mu.Unlock()
		return Checkpoint{}, fmt.Errorf("%w: mirror holds %d entries, the batch brings %d, the checkpoint is of size %d", ErrMirrorGap, base, len(entries), cp.Size)
	}
	rng, err := cloneRange(m.rng)
	if err != nil {
		m.mu.Unlock()
		return Checkpoint{}, err
	}
	epoch := m.epoch
	for i, e := range entries {
		idx := base + uint64(i)
		d, err := DecodeEntry(e)
		if err != nil {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("mirror: entry %d: %w", idx, err)
		}
		if d.Epoch < epoch {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("%w: entry %d has epoch %d, the mirror is at epoch %d", ErrStaleEpoch, idx, d.Epoch, epoch)
		}
		epoch = d.Epoch
		h := EntryLeafHash(e)
		if err := rng.Append(h[:], nil); err != nil {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("mirror: entry %d: %w", idx, err)
		}
	}
	root, err := rangeRoot(rng)
	if err != nil {
		m.mu.Unlock()
		return Checkpoint{}, err
	}
	if cp.Size == end {
		if root != cp.Root {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("mirror: entries %d–%d and the tree before them give root %x, the writer's checkpoint of size %d says %x",
				base, int64(end)-1, root, cp.Size, cp.Root)
		}
		if cp.Size > 0 && cp.Epoch != epoch {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("mirror: checkpoint of size %d is of epoch %d, its newest entry of epoch %d", cp.Size, cp.Epoch, epoch)
		}
	} else {
		if err := VerifyConsistency(end, cp.Size, proof, root, cp.Root); err != nil {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("mirror: entries %d–%d are not a prefix of the writer's checkpoint of size %d: %w", base, end-1, cp.Size, err)
		}
		if cp.Epoch < epoch {
			m.mu.Unlock()
			return Checkpoint{}, fmt.Errorf("mirror: checkpoint of size %d is of epoch %d, older than entry epoch %d", cp.Size, cp.Epoch, epoch)
		}
	}
	if len(entries) == 0 {
		// The same tree, maybe signed anew: nothing to store.
		m.mu.Unlock()
		return cp, nil
	}
	complete := cp.Size == end
	if complete {
		l.pub.Lock()
		m.notes[cp.Size] = mirrorNote{signed: append([]byte(nil), signed...), cp: cp}
		l.pub.Unlock()
	}
	bt, pos, err := l.enqueue(entries...)
	if err != nil {
		if complete {
			l.pub.Lock()
			delete(m.notes, cp.Size)
			l.pub.Unlock()
		}
		m.mu.Unlock()
		return Checkpoint{}, fmt.Errorf("mirror: entries %d–%d: %w", base, end-1, err)
	}
	m.rng, m.epoch = rng, epoch
	m.mu.Unlock()
	if _, err := l.wait(ctx, bt, pos); err != nil {
		return Checkpoint{}, fmt.Errorf("mirror: entries %d–%d: %w", base, end-1, err)
	}
	if complete {
		if err := l.saveReceived(cp.Size, signed); err != nil {
			return Checkpoint{}, err
		}
	}
	return cp, nil
}

// saveReceived records the newest checkpoint whose entries are durable, so
// that a restart publishes it again.
func (l *Log) saveReceived(size uint64, signed []byte) error {
	m := &l.mirror
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	if size <= m.saved {
		return nil
	}
	if err := writeFileSync(filepath.Join(l.dir, walDir, receivedName), signed); err != nil {
		return fmt.Errorf("mirror: record checkpoint of size %d: %w", size, err)
	}
	m.saved = size
	return nil
}

// edgeState is a tree size whose right edge (partial tiles and bundle) is
// on disk, with the compact range that commits to it.
type edgeState struct {
	size   uint64
	hashes [][]byte
}

// CheckRightEdge reads the stored right edge of the tree (the rightmost
// partial entry bundle and tiles, the ones every later append extends)
// and checks it against the tree held in memory: the level-0 tile against
// the compact range, each entry against its leaf hash. A mirror calls it
// before it accepts a batch or cosigns a checkpoint, so that it never
// vouches for, or builds on, a bundle that has been damaged on disk since
// it was written. Damage is a *DamageError naming the file and entry; a
// file of the edge that is missing is damage too.
func (l *Log) CheckRightEdge() error {
	l.pub.Lock()
	edge := l.flushed
	l.pub.Unlock()
	if edge.size == 0 {
		return nil
	}
	if d, err := edgeDamage(l.dir, edge); err != nil {
		return err
	} else if d != nil {
		return fmt.Errorf("ledger %s right edge at size %d: %w", l.dir, edge.size, d)
	}
	return nil
}
