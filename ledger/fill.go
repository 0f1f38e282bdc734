package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

// Filling a mirror's withheld stubs. A site that holds stubs for entries
// it should hold (a home rebuilt from one embassy, which may not hold
// every registry) replaces each stub by the entry it stands for, fetched
// from a site that holds it. The tree does not change: a stub's leaf hash
// is the entry's, so only the entry bundle holding it is rewritten.
//
// Only entry bundles the write-ahead log no longer speaks for can be
// rewritten. Recovery replays every entry past the sync marker from the
// write-ahead log, stubs included, and rewrites their bundles; and the
// integrator keeps the rightmost incomplete bundle in memory and writes it
// out again at every checkpoint. So an open Log fills only full bundles
// wholly below its sync marker, which nothing rewrites again; FillClosed
// fills a closed ledger's last partial bundle too, which Open reads back
// from disk. Everything else is refused with a *NotDurableError.

// Errors returned by Fill, FillBatch and FillClosed, each wrapped in a
// *FillError naming the index.
var (
	// ErrNotWithheld: the index holds a real entry, not a stub.
	ErrNotWithheld = errors.New("entry is not a withheld stub")
	// ErrFillMismatch: the entry's leaf hash is not the one the stub carries.
	ErrFillMismatch = errors.New("entry does not hash to the withheld stub's leaf hash")
	// ErrFillStub: the entry given is itself a stub.
	ErrFillStub = errors.New("a withheld stub cannot fill a stub")
	// ErrNotDurable is wrapped by *NotDurableError.
	ErrNotDurable = errors.New("entry is not yet durable in a full entry bundle below the sync point")
)

// FillError is a fill refused for one index.
type FillError struct {
	Index uint64
	Err   error
}

func (e *FillError) Error() string { return fmt.Sprintf("fill entry %d: %v", e.Index, e.Err) }

// Unwrap returns the reason.
func (e *FillError) Unwrap() error { return e.Err }

// NotDurableError lists the indexes a fill left alone because their
// entry bundle may still be rewritten from the write-ahead log or from the
// integrator's memory. They can be filled once the ledger is closed
// (FillClosed), or by an open Log once their bundle is full and a sync
// point has passed it.
type NotDurableError struct {
	Pending []uint64 // ascending
	Synced  uint64   // the sync marker's size when the fill ran
}

func (e *NotDurableError) Error() string {
	return fmt.Sprintf("%v: %d entries from index %d (sync point at %d): fill them once the ledger is closed, or after a later sync point",
		ErrNotDurable, len(e.Pending), e.Pending[0], e.Synced)
}

// Unwrap makes errors.Is(err, ErrNotDurable) hold.
func (e *NotDurableError) Unwrap() error { return ErrNotDurable }

// Stub is a withheld stub in a ledger: its index and the leaf hash of the
// entry it stands for.
type Stub struct {
	Index uint64
	Leaf  Hash
}

// WithheldIn lists the stubs among the entries [from, size) of a ledger
// read through f.
func WithheldIn(ctx context.Context, f Fetcher, from, size uint64) ([]Stub, error) {
	var out []Stub
	err := Scan(ctx, f, from, size, func(idx uint64, e []byte) error {
		if isStub(e) {
			out = append(out, Stub{Index: idx, Leaf: Hash(e[EntryHeaderSize:])})
		}
		return nil
	})
	return out, err
}

// Withheld lists the stubs among the entries of the log's published
// checkpoint. A mirror whose charter placement lets it hold everything
// and that lists none holds every entry.
func (l *Log) Withheld(ctx context.Context) ([]Stub, error) {
	_, cp := l.Checkpoint()
	return WithheldIn(ctx, DirFetcher(l.dir), 0, cp.Size)
}

func isStub(e []byte) bool { return len(e) == EntryHeaderSize+32 && e[1] == byte(TypeWithheld) }

// Fill replaces the withheld stub at index by entry, the entry it stands
// for (see FillBatch).
func (l *Log) Fill(ctx context.Context, index uint64, entry []byte) error {
	_, err := l.FillBatch(ctx, map[uint64][]byte{index: entry})
	return err
}

// FillBatch replaces withheld stubs by the entries they stand for, keyed
// by index: each entry must decode, must not be a stub, and must have the
// leaf hash its stub carries. Each entry bundle is rewritten once, by
// rename after the new file and its directory are fsynced, so a reader
// sees the old bundle or the new one, never half, and a crash leaves
// one of them. An index that already holds exactly the entry given is
// left as it is (a retry after a crash).
//
// It fills only full bundles below the sync point (see the top of this
// file); the other indexes are returned in a *NotDurableError, after the
// rest are filled. A refused entry stops the fill with a *FillError
// naming its index: the bundles before its own are filled, its own is
// not. filled counts the stubs replaced.
func (l *Log) FillBatch(ctx context.Context, entries map[uint64][]byte) (filled int, err error) {
	return fill(ctx, l.dir, entries, false)
}

// FillClosed is FillBatch on the ledger in dir while no Log has it open
// (it takes the ledger's lock, and fails with ErrLocked otherwise). It
// also fills the last, partial bundle below the sync point, which Open
// reads back from disk. A ledger closed by Log.Close has its sync point at
// its size, so everything it holds can be filled.
func FillClosed(ctx context.Context, dir string, entries map[uint64][]byte) (filled int, err error) {
	lock, err := os.OpenFile(filepath.Join(dir, walDir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("fill ledger %s: %w", dir, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return 0, fmt.Errorf("fill ledger %s: %w: close it first", dir, ErrLocked)
	}
	return fill(ctx, dir, entries, true)
}

// fillLockName serialises fills of one ledger: two fills of one bundle
// would each rewrite it from the old file and one would be lost. It is a
// lock file, not a field of Log, so that fills of an open Log and of a
// closed one (FillClosed) exclude each other too.
const fillLockName = "fill.lock"

func fill(ctx context.Context, dir string, entries map[uint64][]byte, closed bool) (filled int, err error) {
	if len(entries) == 0 {
		return 0, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, walDir, fillLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("fill ledger %s: %w", dir, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return 0, fmt.Errorf("fill ledger %s: lock: %w", dir, err)
	}
	// The marker on disk, not the integrator's idea of it: a sync point
	// handed to the syncer is not durable until its marker is written, and
	// markers only move forward, so what is read here stays true.
	synced, err := syncedSize(dir)
	if err != nil {
		return 0, fmt.Errorf("fill ledger %s: %w", dir, err)
	}
	byBundle := map[uint64][]uint64{}
	var pending []uint64
	for idx := range entries {
		b := idx / TileWidth
		switch {
		case (b+1)*TileWidth <= synced:
		case closed && idx < synced:
		default:
			pending = append(pending, idx)
			continue
		}
		byBundle[b] = append(byBundle[b], idx)
	}
	bundles := slices.Sorted(func(yield func(uint64) bool) {
		for b := range byBundle {
			if !yield(b) {
				return
			}
		}
	})
	for _, b := range bundles {
		if err := ctx.Err(); err != nil {
			return filled, err
		}
		idxs := byBundle[b]
		slices.Sort(idxs)
		n, err := fillBundle(dir, b, synced, idxs, entries, closed)
		filled += n
		if err != nil {
			return filled, err
		}
	}
	if len(pending) > 0 {
		slices.Sort(pending)
		return filled, &NotDurableError{Pending: pending, Synced: synced}
	}
	return filled, nil
}

func syncedSize(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, walDir, markerName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read sync marker: %w", err)
	}
	size, _, _, err := decodeMarker(b)
	return size, err
}

// fillBundle rewrites the files of entry bundle b that hold the indexes:
// the full bundle, and for a closed ledger whose sync point is inside b,
// the partial one recovery reads back (and the full one, if a crash left
// one past the sync point: recovery prefers it).
func fillBundle(dir string, b, synced uint64, idxs []uint64, entries map[uint64][]byte, closed bool) (int, error) {
	paths := []string{EntriesPath(b, 0)}
	if closed && (b+1)*TileWidth > synced {
		paths = append(paths, EntriesPath(b, int(synced%TileWidth)))
	}
	filled, found := 0, 0
	for _, p := range paths {
		n, err := fillFile(filepath.Join(dir, filepath.FromSlash(p)), b, idxs, entries)
		if errors.Is(err, fs.ErrNotExist) && len(paths) > 1 {
			continue
		}
		if err != nil {
			return filled, err
		}
		found++
		filled = max(filled, n)
	}
	if found == 0 {
		return 0, fmt.Errorf("fill entry bundle %d: %s: %w", b, strings.Join(paths, ", "), fs.ErrNotExist)
	}
	return filled, nil
}

func fillFile(path string, b uint64, idxs []uint64, entries map[uint64][]byte) (int, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("fill entry bundle %d: %w", b, err)
	}
	es, err := splitBundle(old)
	if err != nil {
		return 0, fmt.Errorf("fill entry bundle %d (%s): %w", b, path, err)
	}
	filled := 0
	for _, idx := range idxs {
		pos := int(idx % TileWidth)
		if pos >= len(es) {
			return 0, &FillError{idx, fmt.Errorf("entry bundle %s holds %d entries", path, len(es))}
		}
		if err := checkFill(es[pos], entries[idx]); err != nil {
			if errors.Is(err, errSame) {
				continue
			}
			return 0, &FillError{idx, err}
		}
		es[pos] = entries[idx]
		filled++
	}
	if filled == 0 {
		return 0, nil
	}
	var nb []byte
	for _, e := range es {
		nb = appendBundleEntry(nb, e)
	}
	if err := fsutil.Replace(path, nb, 0o644); err != nil {
		return 0, fmt.Errorf("fill entry bundle %d: %w", b, err)
	}
	return filled, nil
}

var errSame = errors.New("already filled")

// checkFill decides whether entry may replace cur.
func checkFill(cur, entry []byte) error {
	if !isStub(cur) {
		if string(cur) == string(entry) {
			return errSame
		}
		return ErrNotWithheld
	}
	if isStub(entry) {
		return ErrFillStub
	}
	if _, err := DecodeEntry(entry); err != nil {
		return err
	}
	if got := EntryLeafHash(entry); got != Hash(cur[EntryHeaderSize:]) {
		return fmt.Errorf("%w: the entry's is %x, the stub carries %x", ErrFillMismatch, got[:8], cur[EntryHeaderSize:EntryHeaderSize+8])
	}
	return nil
}
