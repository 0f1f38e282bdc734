package ledger

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A full disk is a fault the ledger waits out rather than dies of. Before,
// a tile that could not be written stopped checkpoints until a restart,
// while appends went on being acknowledged into the write-ahead log, and
// a write-ahead log segment that could not be preallocated stopped the
// log for good. Now:
//
//   - a tile the disk has no room for is kept in memory (pendingTiles)
//     and written again before the next checkpoint, which is published
//     only once every tile under it is on disk;
//   - while tiles are pending, appends are refused with ErrNoSpace (a
//     site answers 507), so nothing is acknowledged that the ledger cannot
//     publish, and Health says why;
//   - the integrator retries on its own, with backoff, and the ledger is
//     healthy again as soon as a checkpoint is written;
//   - a commit whose segment could not be preallocated fails only the
//     appends in it (not acknowledged, not in the log), not the log.
//
// Any other I/O error is still fatal, as it must be: after a failed
// fsync, what the disk holds is unknown.

// ErrNoSpace marks an append refused, or a checkpoint not yet published,
// because the ledger's filesystem is full. It clears by itself once space
// returns; errors.Is(err, ErrNoSpace) tells it apart.
var ErrNoSpace = errors.New("disk full")

// isNoSpace reports whether err is the filesystem running out of room
// (or of the owner's quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// noSpace wraps a full-disk error so that it is ErrNoSpace to errors.Is
// and keeps the path the OS error names.
func (l *Log) noSpace(err error) error {
	return fmt.Errorf("%w: ledger %s: %w", ErrNoSpace, l.dir, err)
}

// Health is nil while the ledger commits and publishes; otherwise it says
// why not: the disk is full (ErrNoSpace: it recovers by itself), or a
// failure that needs a restart.
func (l *Log) Health() error {
	l.mu.Lock()
	failed, tilesFull, walFull := l.failed, l.tilesFull, l.walFull
	l.mu.Unlock()
	if failed != nil {
		return failed
	}
	if walFull != nil && !l.roomForSegment() {
		return walFull
	}
	l.pub.Lock()
	ierr := l.ierr
	l.pub.Unlock()
	if ierr != nil {
		return fmt.Errorf("ledger %s: checkpoints stopped: %w", l.dir, ierr)
	}
	return tilesFull
}

// roomForSegment reports whether the filesystem has room for a new
// write-ahead log segment now: a commit that found none is then expected
// to succeed, and a site need not wait for a write to say it is ready.
func (l *Log) roomForSegment() bool {
	var st unix.Statfs_t
	if unix.Statfs(filepath.Join(l.dir, walDir), &st) != nil {
		return false
	}
	return int64(st.Bavail)*int64(st.Bsize) >= l.opts.SegmentSize
}

// setNoSpace records (or, with nil, clears) that tiles are waiting for
// room; appends are refused meanwhile.
func (l *Log) setNoSpace(err error) {
	l.mu.Lock()
	was := l.tilesFull
	l.tilesFull = err
	l.mu.Unlock()
	switch {
	case was == nil && err != nil:
		l.opts.Logger.Error("ledger disk full: appends refused and checkpoints held until space returns", "dir", l.dir, "err", err)
	case was != nil && err == nil:
		l.opts.Logger.Warn("ledger disk has room again: checkpoints and appends resume", "dir", l.dir)
	}
}

// keepTile holds a tile the disk had no room for, to be written before
// the next checkpoint. The bytes are copied: the tree reuses its buffers.
func (l *Log) keepTile(rel string, data []byte) {
	if l.pendingTiles == nil {
		l.pendingTiles = map[string][]byte{}
	}
	l.pendingTiles[rel] = append([]byte(nil), data...)
}

// writePending writes the tiles kept for lack of room.
func (l *Log) writePending() error {
	for rel, data := range l.pendingTiles {
		if err := l.writeTile(rel, data); err != nil {
			return err
		}
		delete(l.pendingTiles, rel)
	}
	return nil
}

// waitForSpace retries publishing, with backoff, until a checkpoint is
// written (true) or the log closes, or fails otherwise (false: the
// integrator stops, and the write-ahead log keeps what was committed for
// the next open to replay).
func (l *Log) waitForSpace(err error) bool {
	l.setNoSpace(l.noSpace(err))
	backoff := 50 * time.Millisecond
	for {
		if l.isClosing() {
			l.integrationFailed(l.noSpace(err))
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
		if err = l.publish(); err == nil {
			l.setNoSpace(nil)
			return true
		}
		if !isNoSpace(err) {
			l.integrationFailed(err)
			return false
		}
	}
}

// withCarry adds to job the files and superseded tiles of a sync point
// that found the disk full (syncCarry): a sync point fsyncs only the
// files written since the one before, so those of a postponed one must
// go with the next, or its marker would claim tiles never made durable.
func (l *Log) withCarry(job syncJob) syncJob {
	c := l.syncCarry
	if len(c.files) == 0 && len(c.obsolete) == 0 {
		return job
	}
	job.files = append(slices.Clone(c.files), job.files...)
	job.obsolete = append(slices.Clone(c.obsolete), job.obsolete...)
	l.syncCarry = syncJob{}
	return job
}
