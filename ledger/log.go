package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

// Options configure a Log.
type Options struct {
	// Origin is the log's origin line and the name of its checkpoint key.
	Origin string
	// Signer signs checkpoints. It is required unless Mirror is set: a
	// ledger never publishes an unsigned checkpoint.
	Signer note.Signer
	// Mirror opens the ledger as a site's copy of another writer's log:
	// entries arrive only through AppendMirrored, each batch checked to
	// produce exactly the tree of the writer's signed checkpoint, and that
	// checkpoint (not one of our own) is what the mirror publishes.
	Mirror bool
	// CheckpointInterval is the least time between two published
	// checkpoints (default 25ms). Entries are durable before that; the
	// interval only bounds how much tile and signing work each round does.
	CheckpointInterval time.Duration
	// SyncInterval is the most time between sync points, at which tiles
	// are made durable and the write-ahead log behind them is trimmed
	// (default 10s).
	SyncInterval time.Duration
	// GroupCommitWait bounds how long the committer waits, after a commit,
	// for the appenders it just acknowledged to queue their next entries, so
	// that they share the next fsync instead of splitting into two
	// alternating half-size groups (default 500µs; negative disables). It
	// never delays a lone appender: the wait ends as soon as as many
	// appenders are queued as the last commit acknowledged.
	GroupCommitWait time.Duration
	// SegmentSize is the size of a write-ahead log segment (default 64 MiB).
	SegmentSize int64
	// FromEpoch is, for a writer, the first epoch its Signer signs
	// checkpoints of (0: any). A mirror reopened as the writer of a new
	// epoch holds the previous writers' epochs, whose checkpoints only
	// they sign: Open then publishes none of its own over them (it keeps
	// the one it found), and the first entry of the new epoch publishes.
	FromEpoch uint64
	// Logger receives recovery reports and errors (default: discard).
	Logger *slog.Logger

	// skipWALSync leaves out the write-ahead log's fdatasync: set only
	// by the power-loss test, to show that it catches the missing sync.
	skipWALSync bool
}

func (o *Options) defaults() error {
	if o.Origin == "" || !isKeyName(o.Origin) {
		return fmt.Errorf("ledger origin %q: must be non-empty, without spaces or '+'", o.Origin)
	}
	if o.Mirror {
		if o.Signer != nil {
			return errors.New("ledger: a mirror publishes the writer's checkpoints and takes no signer")
		}
	} else if o.Signer == nil {
		return errors.New("ledger: a checkpoint signer is required")
	} else if o.Signer.Name() != o.Origin {
		return fmt.Errorf("ledger: checkpoint key is named %q, origin is %q", o.Signer.Name(), o.Origin)
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 25 * time.Millisecond
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 10 * time.Second
	}
	if o.GroupCommitWait == 0 {
		o.GroupCommitWait = 500 * time.Microsecond
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Errors returned by Append.
var (
	ErrClosed = errors.New("ledger closed")
	// ErrStaleEpoch is returned for an entry of an epoch older than one the
	// log already holds: the fencing that keeps two writers apart.
	ErrStaleEpoch = errors.New("entry epoch older than the ledger's")
	// ErrMirror is returned by Append on a mirror: its entries come only
	// from the writer, through AppendMirrored.
	ErrMirror = errors.New("ledger is a mirror: entries come only from the writer")
	// ErrLocked is returned by Open when another process has the ledger open.
	ErrLocked = errors.New("ledger is locked")
)

// Recovery reports what Open found.
type Recovery struct {
	Size       uint64    // entries in the durable log
	Replayed   uint64    // entries replayed from the write-ahead log into tiles
	SyncedSize uint64    // size at the last sync point
	Torn       *TornTail // a torn tail set aside, if any
}

// Log is a guest's ledger. Append is safe for concurrent use.
type Log struct {
	dir  string
	opts Options

	mu       sync.Mutex
	cond     *sync.Cond // signals the committer: queue non-empty or closing
	queue    *batch     // entries waiting for the next commit
	full     []*batch   // older batches closed at MaxFrameBytes, committed first
	next     uint64     // index the next committed entry gets
	epoch    uint64     // highest epoch accepted
	closing  bool
	want     int           // appenders the committer waits for before the next commit
	waiting  bool          // the committer is waiting for want appenders
	kick     chan struct{} // wakes a waiting committer
	failed   error         // sticky: a failed commit stops the log
	segments []segment

	wal *walWriter

	// A full disk (health.go), under mu.
	tilesFull error // tiles wait for room: appends refused until they are written
	walFull   error // the last commit found no room; cleared by the next one

	// committed entries handed to the integrator
	imu       sync.Mutex
	icond     *sync.Cond
	committed [][]byte
	durable   uint64 // entries durable in the write-ahead log
	drained   bool   // the committer has exited: nothing more will come

	tree       *tree
	pub        sync.Mutex // guards latest
	latest     []byte     // latest signed checkpoint
	latestCp   Checkpoint
	flushed    edgeState  // the tree whose right edge is on disk; on pub
	published  *sync.Cond // on pub
	lastSync   time.Time
	syncedSize uint64   // tree size last handed to the syncer
	obsolete   []string // partial tile directories to delete at the next sync point
	unsynced   []string // full tiles and bundles written since the last sync point was handed over
	syncs      chan syncJob
	madeDirs   map[string]bool
	// lastPartial is, per partial tile directory ("tile/0/024.p"), the
	// partial last written in it: a partial's bytes are fixed by its path,
	// so it is never written twice (rewriting it would put a new, unsynced
	// file under a name a sync point is making durable). Integrator only.
	lastPartial map[string]string
	// cpMu is held across the checkpoint's rename, and by a sync point
	// across its fsync of the checkpoint and of the ledger directory, so
	// that the name that fsync makes durable is that of a synced file.
	cpMu      sync.Mutex
	replaying bool // recovery is replaying the write-ahead log into tiles

	mirror mirrorState

	// pendingTiles are tiles the disk had no room for, by path, written
	// before the next checkpoint (health.go). Integrator only.
	pendingTiles map[string][]byte
	// syncCarry is a sync point the disk had no room for, carried into
	// the next (health.go); the syncer's, then the integrator's once the
	// syncer has stopped.
	syncCarry syncJob

	lock *os.File // holds the exclusive lock on the directory

	recovery Recovery
	stats    struct {
		commits, entries, syncNanos atomic.Int64
	}
	done sync.WaitGroup
	ierr error // integrator's sticky error
}

type batch struct {
	entries [][]byte
	bytes   int // framed size of entries
	callers int // appenders waiting on this batch
	first   uint64
	err     error
	done    chan struct{}
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Open opens the ledger in dir, creating it if needed, recovers it from
// its write-ahead log and starts the committer and integrator.
func Open(ctx context.Context, dir string, opts Options) (*Log, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, queue: newBatch(), madeDirs: map[string]bool{}, lastPartial: map[string]string{}, kick: make(chan struct{}, 1)}
	l.cond = sync.NewCond(&l.mu)
	l.icond = sync.NewCond(&l.imu)
	l.published = sync.NewCond(&l.pub)
	// Durably: a new ledger's acknowledged entries live in wal/ until the
	// first sync point, and a power cut that lost the directory names
	// would lose them all (found by the power-loss test).
	if err := fsutil.MkdirAll(filepath.Join(dir, walDir), 0o700); err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", dir, err)
	}
	// Two processes appending to one write-ahead log would interleave
	// frames and break the tree: the second opener is refused.
	lock, err := os.OpenFile(filepath.Join(dir, walDir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open ledger %s: %w: another process holds it (a running site?)", dir, ErrLocked)
	}
	l.lock = lock
	if err := l.recover(ctx); err != nil {
		l.unlock()
		return nil, fmt.Errorf("open ledger %s: %w", dir, err)
	}
	l.lastSync = time.Now()
	l.syncs = make(chan syncJob)
	l.done.Add(2)
	go l.commitLoop()
	go l.integrateLoop()
	return l, nil
}

// Recovery returns what Open found and repaired.
func (l *Log) Recovery() Recovery { return l.recovery }

// Dir is the ledger directory: the C2SP tlog-tiles prefix.
func (l *Log) Dir() string { return l.dir }

// Origin is the log's origin.
func (l *Log) Origin() string { return l.opts.Origin }

// Append adds an entry and returns its index once it is durable.
func (l *Log) Append(ctx context.Context, e Entry) (uint64, error) {
	if err := l.writable(e); err != nil {
		return 0, err
	}
	b, err := e.MarshalBinary()
	if err != nil {
		return 0, err
	}
	bt, pos, err := l.enqueue(b)
	if err != nil {
		return 0, err
	}
	return l.wait(ctx, bt, pos)
}

// AppendBatch adds entries as one contiguous run and returns the index of
// the first once all are durable.
func (l *Log) AppendBatch(ctx context.Context, es []Entry) (uint64, error) {
	if len(es) == 0 {
		return 0, errors.New("append batch: no entries")
	}
	bs := make([][]byte, len(es))
	for i, e := range es {
		if err := l.writable(e); err != nil {
			return 0, fmt.Errorf("append batch entry %d: %w", i, err)
		}
		b, err := e.MarshalBinary()
		if err != nil {
			return 0, fmt.Errorf("append batch entry %d: %w", i, err)
		}
		bs[i] = b
	}
	bt, pos, err := l.enqueue(bs...)
	if err != nil {
		return 0, err
	}
	return l.wait(ctx, bt, pos)
}

// writable refuses what only a mirror's replication may add.
func (l *Log) writable(e Entry) error {
	if l.opts.Mirror {
		return ErrMirror
	}
	if e.Type == TypeWithheld {
		return errors.New("append: a withheld stub exists only in mirrors")
	}
	return nil
}

// MaxFrameBytes bounds one write-ahead log frame. Recovery looks this far
// past the last frame for the remains of a torn one, so it need not read
// the rest of a preallocated segment.
const MaxFrameBytes = 16 << 20

func (l *Log) enqueue(entries ...[]byte) (*batch, int, error) {
	n := 0
	for _, b := range entries {
		n += 2 + len(b)
	}
	if n > MaxFrameBytes {
		return nil, 0, fmt.Errorf("append batch of %d bytes: at most %d fit in one commit", n, MaxFrameBytes)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return nil, 0, l.failed
	}
	if l.closing {
		return nil, 0, ErrClosed
	}
	if l.tilesFull != nil {
		return nil, 0, l.tilesFull
	}
	hi := l.epoch
	for i, b := range entries {
		e := entryEpoch(b)
		if e < hi {
			return nil, 0, fmt.Errorf("%w: entry %d has epoch %d, ledger is at epoch %d", ErrStaleEpoch, i, e, hi)
		}
		hi = e
	}
	l.epoch = hi
	bt := l.queue
	if len(bt.entries) > 0 && bt.bytes+n > MaxFrameBytes {
		l.full = append(l.full, bt)
		l.queue = newBatch()
		bt = l.queue
	}
	pos := len(bt.entries)
	bt.entries = append(bt.entries, entries...)
	bt.bytes += n
	bt.callers++
	if pos == 0 {
		l.cond.Signal()
	}
	if l.waiting && bt.callers >= l.want {
		l.waiting = false
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return bt, pos, nil
}

func (l *Log) wait(ctx context.Context, bt *batch, pos int) (uint64, error) {
	select {
	case <-bt.done:
		if bt.err != nil {
			return 0, bt.err
		}
		return bt.first + uint64(pos), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("append: %w (the entry may still be committed)", ctx.Err())
	}
}

// commitLoop takes whatever is queued, writes it as one frame and fsyncs:
// while it waits on the disk, new appends queue up for the next frame. This
// is the group commit that makes durable appends cheap.
func (l *Log) commitLoop() {
	defer l.done.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		l.mu.Lock()
		for len(l.queue.entries) == 0 && len(l.full) == 0 && !l.closing {
			l.cond.Wait()
		}
		if len(l.full) == 0 && l.queue.callers < l.want && !l.closing && l.opts.GroupCommitWait > 0 {
			l.waiting = true
			l.mu.Unlock()
			timer.Reset(l.opts.GroupCommitWait)
			select {
			case <-l.kick:
				timer.Stop()
			case <-timer.C:
			}
			l.mu.Lock()
			l.waiting = false
			select { // drop a kick that raced with the timer
			case <-l.kick:
			default:
			}
		}
		var bt *batch
		switch {
		case len(l.full) > 0:
			bt, l.full = l.full[0], l.full[1:]
		case len(l.queue.entries) > 0:
			bt, l.queue = l.queue, newBatch()
		default: // closing and drained
			l.mu.Unlock()
		}
		if bt == nil {
			break
		}
		bt.first = l.next
		failed := l.failed
		l.mu.Unlock()

		err := failed
		if err == nil {
			err = l.commit(bt)
		}
		l.mu.Lock()
		if err != nil && isNoSpace(err) {
			// Nothing was acknowledged and the log is as it was: only
			// these appends fail, and the next commit tries again.
			bt.err = l.noSpace(err)
			if l.walFull == nil {
				l.opts.Logger.Error("ledger commit refused: disk full", "dir", l.dir, "err", err)
			}
			l.walFull = bt.err
		} else if err != nil {
			if l.failed == nil {
				l.failed = fmt.Errorf("ledger stopped after a failed commit: %w", err)
				l.opts.Logger.Error("ledger commit failed; no further appends are accepted", "dir", l.dir, "err", err)
			}
			bt.err = l.failed
		} else {
			l.next += uint64(len(bt.entries))
			l.walFull = nil
		}
		// The appenders about to be acknowledged will be back shortly;
		// with those already queued, that is the next group.
		l.want = bt.callers + l.queue.callers
		l.mu.Unlock()
		close(bt.done)
	}
	l.imu.Lock()
	l.drained = true
	l.icond.Signal()
	l.imu.Unlock()
}

func (l *Log) commit(bt *batch) error {
	start := time.Now()
	rolled, err := l.wal.commit(bt.first, bt.entries)
	if err != nil {
		return err
	}
	l.stats.commits.Add(1)
	l.stats.entries.Add(int64(len(bt.entries)))
	l.stats.syncNanos.Add(int64(time.Since(start)))
	if rolled != nil {
		l.mu.Lock()
		l.segments = append(l.segments, *rolled)
		l.mu.Unlock()
	}
	l.imu.Lock()
	l.committed = append(l.committed, bt.entries...)
	l.durable += uint64(len(bt.entries))
	l.icond.Signal()
	l.imu.Unlock()
	return nil
}

// integrateLoop folds committed entries into the tiles and publishes
// signed checkpoints, at most one per CheckpointInterval. Sync points run
// on their own goroutine: a sync waits on the disk for as long as it has
// dirty pages (a second on a busy disk), and checkpoints, which replication
// lag is measured by, must not wait behind it.
func (l *Log) integrateLoop() {
	defer l.done.Done()
	synced := make(chan struct{})
	go l.syncLoop(synced)
	stopSyncer := func() {
		if l.syncs != nil {
			close(l.syncs)
			<-synced
			l.syncs = nil
		}
	}
	defer stopSyncer()
	for {
		l.imu.Lock()
		for len(l.committed) == 0 && !l.drained {
			l.icond.Wait()
		}
		work, drained := l.committed, l.drained
		l.committed = nil
		l.imu.Unlock()
		if len(work) == 0 && drained {
			break
		}
		if l.integrationStopped() {
			return
		}
		start := time.Now()
		if err := l.integrate(work); err != nil {
			if !isNoSpace(err) || !l.waitForSpace(err) {
				if !isNoSpace(err) {
					l.integrationFailed(err)
				}
				return
			}
		}
		if time.Since(l.lastSync) >= l.opts.SyncInterval {
			l.offerSync()
		}
		if d := l.opts.CheckpointInterval - time.Since(start); d > 0 && !drained && !l.isClosing() {
			time.Sleep(d)
		}
	}
	// The last sync point runs here, after any in flight, so Close
	// returns with every tile durable.
	stopSyncer()
	job, ok := l.nextSync()
	if !ok && len(l.syncCarry.files) > 0 {
		// Nothing new, but a sync point the disk had no room for.
		job, ok = l.syncCarry, true
	} else if ok {
		job = l.withCarry(job)
	}
	if ok {
		if err := l.syncPoint(job); err != nil {
			l.integrationFailed(err)
		}
	}
}

// syncJob is a sync point as of one tree state, taken on the integrator
// after the tiles for that state were written.
type syncJob struct {
	size     uint64
	marker   []byte
	obsolete []string
	files    []string // the ledger's files the marker needs durable, relative
}

// nextSync takes the state for the next sync point, or reports that
// nothing changed since the last one.
func (l *Log) nextSync() (syncJob, bool) {
	l.lastSync = time.Now()
	size := l.tree.size()
	if size == l.syncedSize && len(l.obsolete) == 0 {
		return syncJob{}, false
	}
	// The marker needs the full tiles and bundles written since the last
	// sync point and the partial ones of this size: restoreTree reads
	// those. Other partials written meanwhile are superseded.
	files := slices.Clone(l.unsynced)
	if w := int(size % TileWidth); w > 0 {
		files = append(files, EntriesPath(size/TileWidth, w))
	}
	for level := uint64(0); size>>(TileHeight*level) > 0; level++ {
		if w := partialWidth(level, size); w > 0 {
			files = append(files, TilePath(level, (size>>(TileHeight*level))/TileWidth, w))
		}
	}
	return syncJob{size: size, marker: encodeMarker(size, l.tree.epoch, l.tree.rng.Hashes()), obsolete: l.obsolete, files: files}, true
}

// offerSync hands a sync point to the syncer if it is idle; if it is still
// busy with the last one, the next integration tries again.
func (l *Log) offerSync() {
	job, ok := l.nextSync()
	if !ok {
		return
	}
	select {
	case l.syncs <- job:
		l.syncedSize = job.size
		l.obsolete = nil
		l.unsynced = nil
	default:
	}
}

func (l *Log) syncLoop(done chan<- struct{}) {
	defer close(done)
	for job := range l.syncs {
		job = l.withCarry(job)
		if err := l.syncPoint(job); err != nil && isNoSpace(err) {
			// The marker stays where it was: the write-ahead log behind it
			// is kept, and the next sync point fsyncs this one's files too.
			l.syncCarry = job
			l.opts.Logger.Error("ledger sync point postponed: disk full", "dir", l.dir, "size", job.size, "err", err)
		} else if err != nil {
			l.integrationFailed(err)
			// Drain so the integrator never blocks; it stops at its next turn.
			for range l.syncs {
			}
			return
		}
	}
}

func (l *Log) integrationStopped() bool {
	l.pub.Lock()
	defer l.pub.Unlock()
	return l.ierr != nil
}

func (l *Log) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

func (l *Log) integrationFailed(err error) {
	l.opts.Logger.Error("ledger integration failed; checkpoints stop until restart", "dir", l.dir, "err", err)
	l.pub.Lock()
	l.ierr = err
	l.published.Broadcast()
	l.pub.Unlock()
}

// integrate adds entries to the tree, writes the tiles and publishes a
// checkpoint for the new size.
func (l *Log) integrate(work [][]byte) error {
	for _, e := range work {
		if err := l.tree.append(e); err != nil {
			return err
		}
	}
	return l.publish()
}

func (l *Log) publish() error {
	if err := l.tree.flushPartial(); err != nil {
		return err
	}
	if err := l.writePending(); err != nil {
		return err
	}
	// The range reuses its slice as it grows: keep a copy.
	edge := edgeState{size: l.tree.size(), hashes: slices.Clone(l.tree.rng.Hashes())}
	l.pub.Lock()
	l.flushed = edge
	l.pub.Unlock()
	if l.opts.Mirror {
		return l.publishMirrored()
	}
	root, err := l.tree.root()
	if err != nil {
		return err
	}
	cp := Checkpoint{Origin: l.opts.Origin, Size: l.tree.size(), Root: root, Epoch: l.tree.epoch}
	signed, err := SignCheckpoint(cp, l.opts.Signer)
	if err != nil {
		return err
	}
	if err := l.writeTile(CheckpointPath, signed); err != nil {
		return fmt.Errorf("write checkpoint at size %d: %w", cp.Size, err)
	}
	l.pub.Lock()
	l.latest, l.latestCp = signed, cp
	l.published.Broadcast()
	l.pub.Unlock()
	return nil
}

// tile implements tileSink: tiles are written by rename so a reader never
// sees half a file, but not fsynced; sync points make them durable together.
func (l *Log) tile(path string, data []byte, full bool) error {
	pdir := ""
	if full {
		// Partial versions of this tile are superseded once it is durable.
		l.obsolete = append(l.obsolete, path+".p")
		l.unsynced = append(l.unsynced, path)
		delete(l.lastPartial, path+".p")
	} else {
		// Tiles above level 0 keep one width across many checkpoints;
		// the bytes of a partial are fixed by its path.
		pdir = pathDir(path)
		if l.lastPartial[pdir] == path {
			return nil
		}
		// The first in this directory since Open: an earlier process may
		// have written it, and the durable sync marker may need it. An
		// unsynced copy renamed over it would be exposed, empty after a
		// power cut, by the directory fsync of the next sync point,
		// before the marker moves past it (found by the power-loss test).
		if old, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(path))); err == nil && bytes.Equal(old, data) {
			l.lastPartial[pdir] = path
			return nil
		}
	}
	err := l.writeTile(path, data)
	if err == nil && !full {
		l.lastPartial[pdir] = path
	}
	if err != nil && isNoSpace(err) && !l.replaying {
		// The tree has moved on in memory; the tile waits for room and
		// no checkpoint covers it until it is written (publish).
		l.keepTile(path, data)
		return nil
	}
	return err
}

func (l *Log) writeTile(rel string, data []byte) error {
	path := filepath.Join(l.dir, filepath.FromSlash(rel))
	dir := filepath.Dir(path)
	if !l.madeDirs[dir] {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		l.madeDirs[dir] = true
	}
	if l.replaying {
		// Recovery rebuilds the tiles past the sync point. Most are on
		// disk already, as the integrator wrote them before the log was
		// closed (a mirror reopened as the writer: all of them): one
		// that holds exactly these bytes is left as it is. Like a
		// rewritten one, it is made durable by the next sync point,
		// before the write-ahead log behind it is trimmed.
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return nil
		}
	}
	tmp := path + ".tmp"
	if err := writeBehind(tmp, data); err != nil {
		return err
	}
	if rel == CheckpointPath {
		l.cpMu.Lock()
		defer l.cpMu.Unlock()
	}
	return os.Rename(tmp, path)
}

// writeBehind writes a file and starts its write-back at once
// (sync_file_range, SYNC_FILE_RANGE_WRITE: it does not wait for it). The
// tiles then reach the disk a few at a time as they are written, instead
// of all together when a sync point fsyncs them or the kernel flushes
// dirty pages, which is when the write-ahead log's fdatasync, and every
// acknowledgement behind it, waits in the disk's queue behind them.
func writeBehind(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		// Only a hint: the sync point's fsync is what makes it durable.
		unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pathDir is the directory of a slash-separated path relative to the ledger.
func pathDir(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// syncPoint makes every tile written up to job's state durable, records
// that state in the sync marker, and drops what that makes redundant:
// write-ahead log segments wholly integrated and superseded partial tiles.
// It runs on the syncer while the integrator goes on writing newer tiles.
//
// It fsyncs the ledger's own files that the marker needs, then every
// directory on the way to them, not the whole filesystem: a syncfs wrote
// back every dirty page of the disk, the site's blobs and other guests'
// ledgers included, and the write-ahead log's fdatasync, which every
// acknowledgement waits for, queued behind it (docs/benchmarks.md).
//
// A directory fsync makes durable every name the directory holds at that
// moment, including those of files written after the job was taken and
// never fsynced: after a power cut such a file may come back empty. That
// is safe because of three rules, each found by the power-loss test
// (internal/lazyfs):
//   - recovery reads the right edge from the partial tiles of the
//     marker's size, which this sync point fsynced, before any full tile
//     of the same index, which may be such an empty newer file
//     (readRightEdge); everything past the marker is replayed from the
//     write-ahead log and rewritten where it differs;
//   - a partial tile is written once (Log.tile), so no name the marker
//     needs is renamed over by an unsynced file between its fsync and its
//     directory's;
//   - the checkpoint, renamed at every publish into the ledger directory,
//     is fsynced with that directory under cpMu, so recovery never finds
//     an empty one.
func (l *Log) syncPoint(job syncJob) error {
	if err := l.syncFiles(job.files); err != nil {
		return fmt.Errorf("sync point at size %d: %w", job.size, err)
	}
	if err := writeFileSync(filepath.Join(l.dir, walDir, markerName), job.marker); err != nil {
		return fmt.Errorf("sync point at size %d: %w", job.size, err)
	}

	l.mu.Lock()
	var drop []segment
	for len(l.segments) > 1 && l.segments[1].first <= job.size {
		drop = append(drop, l.segments[0])
		l.segments = l.segments[1:]
	}
	l.mu.Unlock()
	for _, s := range drop {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("trim write-ahead log: %w", err)
		}
	}
	for _, p := range job.obsolete {
		if err := os.RemoveAll(filepath.Join(l.dir, filepath.FromSlash(p))); err != nil {
			return fmt.Errorf("remove superseded partial tiles: %w", err)
		}
	}
	return nil
}

// Checkpoint returns the latest signed checkpoint and its parsed form.
func (l *Log) Checkpoint() ([]byte, Checkpoint) {
	l.pub.Lock()
	defer l.pub.Unlock()
	return l.latest, l.latestCp
}

// WaitPublished blocks until a checkpoint of at least size is published and
// returns it.
func (l *Log) WaitPublished(ctx context.Context, size uint64) ([]byte, Checkpoint, error) {
	stop := context.AfterFunc(ctx, func() {
		l.pub.Lock()
		l.published.Broadcast()
		l.pub.Unlock()
	})
	defer stop()
	l.pub.Lock()
	defer l.pub.Unlock()
	for l.latestCp.Size < size {
		if l.ierr != nil {
			return nil, Checkpoint{}, l.ierr
		}
		if err := ctx.Err(); err != nil {
			return nil, Checkpoint{}, err
		}
		l.published.Wait()
	}
	return l.latest, l.latestCp, nil
}

// Stats are counters of the write path since Open.
type Stats struct {
	Commits  int64         // write-ahead log frames written and fsynced
	Entries  int64         // entries in them
	SyncTime time.Duration // total time spent writing and fsyncing frames
}

// Stats returns the write path's counters.
func (l *Log) Stats() Stats {
	return Stats{Commits: l.stats.commits.Load(), Entries: l.stats.entries.Load(), SyncTime: time.Duration(l.stats.syncNanos.Load())}
}

// Size is the number of durable entries.
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Epoch is the highest epoch the log has accepted.
func (l *Log) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// Close stops accepting appends, commits what is queued, publishes a final
// checkpoint and makes everything durable.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closing = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.imu.Lock()
	l.icond.Broadcast()
	l.imu.Unlock()
	l.done.Wait()
	err := l.wal.close()
	l.mu.Lock()
	failed := l.failed
	l.mu.Unlock()
	l.unlock()
	return errors.Join(failed, l.ierr, err)
}

func (l *Log) unlock() {
	if l.lock != nil {
		l.lock.Close() // closing the descriptor releases the lock
		l.lock = nil
	}
}

const lockName = "lock"

// The sync marker records the tree at the last sync point: everything at or
// below its size is durable in tiles, so replay starts there.
//
//	"chancery-sync/v1\n" | u64 size | u64 epoch | u8 n | n × 32-byte compact range hashes | u32 CRC-32C
const (
	markerName  = "synced"
	markerMagic = "chancery-sync/v1\n"
)

func encodeMarker(size, epoch uint64, hashes [][]byte) []byte {
	b := []byte(markerMagic)
	b = binary.BigEndian.AppendUint64(b, size)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, byte(len(hashes)))
	for _, h := range hashes {
		b = append(b, h...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMarker(b []byte) (size, epoch uint64, hashes [][]byte, err error) {
	m := len(markerMagic)
	if len(b) < m+17+4 || string(b[:m]) != markerMagic {
		return 0, 0, nil, errors.New("sync marker: bad header")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, 0, nil, errors.New("sync marker: checksum mismatch")
	}
	size = binary.BigEndian.Uint64(body[m:])
	epoch = binary.BigEndian.Uint64(body[m+8:])
	n := int(body[m+16])
	if len(body) != m+17+32*n {
		return 0, 0, nil, errors.New("sync marker: wrong length")
	}
	for i := 0; i < n; i++ {
		hashes = append(hashes, body[m+17+32*i:m+17+32*(i+1)])
	}
	return size, epoch, hashes, nil
}

// syncBatch is how many files a sync point holds open at once.
const syncBatch = 256

// syncFiles fsyncs the files (relative to the ledger), then every
// directory on the way to them, up to and including the ledger's own, so
// that their names are durable too: a new tile directory's name is in its
// parent. A partial tile that is gone was superseded by its full tile,
// which an earlier sync point made durable before deleting it.
//
// The files are small and many (two per 256 entries). It starts the
// write-back of a batch of them at once (sync_file_range) and only then
// fsyncs each: the data is on its way by then, so the first fsync commits
// the filesystem journal for all of them and the others find little left
// to do.
func (l *Log) syncFiles(files []string) error {
	if len(files) == 0 {
		return nil
	}
	files = slices.Compact(slices.Sorted(slices.Values(files)))
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(filepath.Join(l.dir, filepath.FromSlash(f))); len(d) >= len(l.dir) && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for len(files) > 0 {
		n := min(len(files), syncBatch)
		if err := syncBatchOf(l.dir, files[:n]); err != nil {
			return err
		}
		files = files[n:]
	}
	delete(dirs, filepath.Clean(l.dir))
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	// The ledger directory last: it holds the checkpoint, renamed over at
	// every publish. Under cpMu no rename runs between the checkpoint's
	// fsync and the directory's.
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if f, err := os.Open(filepath.Join(l.dir, CheckpointPath)); err == nil {
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", CheckpointPath, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fsutil.SyncDir(l.dir)
}

func syncBatchOf(dir string, files []string) error {
	fhs := make([]*os.File, 0, len(files))
	defer func() {
		for _, fh := range fhs {
			fh.Close()
		}
	}()
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f)))
		if errors.Is(err, fs.ErrNotExist) && strings.Contains(f, ".p/") {
			continue
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", f, err)
		}
		fhs = append(fhs, fh)
		// Only a hint: the fsync below is what makes it durable.
		unix.SyncFileRange(int(fh.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	for _, fh := range fhs {
		if err := fh.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", fh.Name(), err)
		}
	}
	return nil
}
