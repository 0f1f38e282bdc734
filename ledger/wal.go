package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

// The write-ahead log is the durable truth of the ledger: tiles, bundles and
// the checkpoint are derived from it. It is a sequence of segment files named
// by the index of their first entry, each preallocated so that fdatasync does
// not have to journal a size change on every commit. A segment holds frames:
//
//	u32 payload length | u32 CRC-32C of (first index ‖ payload) | u64 first index | payload
//
// and the payload is the batch's entries, each prefixed by a big-endian
// uint16 length, exactly as in a C2SP entry bundle. A zero length marks the
// end of the written part of a segment.

const (
	walDir          = "wal"
	walSuffix       = ".wal"
	frameHeaderSize = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func frameCRC(header, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, header[8:16])
	return crc32.Update(c, castagnoli, payload)
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, walSuffix) }

// segment is one WAL file.
type segment struct {
	first uint64 // index of the first entry in the segment
	path  string
}

func listSegments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list write-ahead log %s: %w", dir, err)
	}
	var segs []segment
	for _, de := range des {
		name := de.Name()
		num, ok := strings.CutSuffix(name, walSuffix)
		if !ok || len(num) != 20 {
			continue
		}
		first, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("write-ahead log segment %s: bad name", name)
		}
		segs = append(segs, segment{first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmpUint(a.first, b.first) })
	return segs, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// walWriter appends frames to the newest segment. It is used by one
// goroutine (the committer) at a time.
type walWriter struct {
	dir     string
	segSize int64
	f       *os.File
	off     int64
	buf     []byte
	// skipSync: see Options.skipWALSync (tests only).
	skipSync bool
}

// openSegment creates a new segment whose first entry is first, preallocates
// it and makes its name durable before anything is acknowledged from it.
func (w *walWriter) openSegment(first uint64) error {
	path := filepath.Join(w.dir, segmentName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create write-ahead log segment: %w", err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, w.segSize); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		// Removed, so that the commit can be tried again (a full disk).
		os.Remove(path)
		f.Close()
		return fmt.Errorf("preallocate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := fsutil.SyncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.off = f, 0
	return nil
}

// resume continues writing an existing segment at offset off.
func (w *walWriter) resume(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open write-ahead log segment: %w", err)
	}
	w.f, w.off = f, off
	return nil
}

// commit writes one frame holding entries, with first as the index of the
// first, and makes it durable. It rolls to a new segment when the current
// one is full.
func (w *walWriter) commit(first uint64, entries [][]byte) (rolled *segment, err error) {
	n := 0
	for _, e := range entries {
		n += 2 + len(e)
	}
	if w.f == nil || (w.off > 0 && w.off+int64(frameHeaderSize+n) > w.segSize) {
		if err := w.openSegment(first); err != nil {
			return nil, err
		}
		rolled = &segment{first: first, path: filepath.Join(w.dir, segmentName(first))}
	}
	buf := appendFrame(slices.Grow(w.buf[:0], frameHeaderSize+n), first, entries)
	w.buf = buf
	if _, err := w.f.WriteAt(buf, w.off); err != nil {
		return nil, fmt.Errorf("write-ahead log write at index %d: %w", first, err)
	}
	if !w.skipSync {
		if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
			return nil, fmt.Errorf("write-ahead log sync at index %d: %w", first, err)
		}
	}
	w.off += int64(len(buf))
	return rolled, nil
}

// appendFrame appends one frame holding entries, the first of which has
// index first, to b.
func appendFrame(b []byte, first uint64, entries [][]byte) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeaderSize)...)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	h := b[start : start+frameHeaderSize]
	binary.BigEndian.PutUint32(h[0:4], uint32(len(b)-start-frameHeaderSize))
	binary.BigEndian.PutUint64(h[8:16], first)
	binary.BigEndian.PutUint32(h[4:8], frameCRC(h, b[start+frameHeaderSize:]))
	return b
}

func (w *walWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// TornTail describes bytes at the end of the write-ahead log that did not
// form a complete, checksummed frame: a commit interrupted by a crash. Such
// entries were never acknowledged. The bytes are kept aside, not deleted.
type TornTail struct {
	Segment string // segment file
	Offset  int64  // where the bad frame starts
	Bytes   int64  // how many non-zero bytes were set aside
	SavedAs string // where they were copied
}

// ErrDamaged is wrapped by every *DamageError: stored ledger data that
// fails its checksum or its hash, which a crash cannot explain.
var ErrDamaged = errors.New("ledger data damaged")

// DamageError names damaged ledger data: the file, where in it, and the
// first entry index it affects. Open refuses a ledger with damage in its
// write-ahead log or at the right edge of its tree without changing
// anything on disk; Repair (chancery repair) restores the entries from a
// site that holds them. A site reports it (health, metric, status) by
// errors.As on this type.
type DamageError struct {
	File   string // the damaged file
	Offset int64  // byte offset of the damage in File (-1: the whole file)
	Index  uint64 // first entry index affected
	Err    error  // what was found
}

func (e *DamageError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("damaged: %s (entry %d): %v; nothing was changed on disk: restore the entries from a peer with chancery repair", e.File, e.Index, e.Err)
	}
	return fmt.Sprintf("damaged: %s offset %d (entry %d): %v; nothing was changed on disk: restore the entries from a peer with chancery repair", e.File, e.Offset, e.Index, e.Err)
}

// Unwrap makes errors.Is(err, ErrDamaged) hold, and exposes the cause.
func (e *DamageError) Unwrap() []error { return []error{ErrDamaged, e.Err} }

// badFrame is a frame that failed its checks at the end of the last
// segment, with nothing well-formed after it: a torn commit, to be set
// aside once recovery has decided the log is otherwise sound.
type badFrame struct {
	path  string
	off   int64
	index uint64
	err   error
}

// walScan reads every frame of every segment in order, calling fn (if not
// nil) with the first index and the entries of each frame. It checks that indices are
// contiguous from the first segment on, and it writes nothing. A bad frame
// at the end of the last segment, with no well-formed frame after it, is a
// torn tail: only the one commit in flight at a crash can be half-written,
// and the next commit starts only after its fsync. It is returned for the
// caller to set aside. A bad frame anywhere else, or one that a
// well-formed frame follows, is damage: a *DamageError.
func walScan(dir string, segs []segment, fn func(first uint64, entries [][]byte) error) (end uint64, lastOff int64, torn *badFrame, err error) {
	if len(segs) == 0 {
		return 0, 0, nil, nil
	}
	next := segs[0].first
	for si, seg := range segs {
		last := si == len(segs)-1
		if seg.first != next {
			return 0, 0, nil, &DamageError{File: seg.path, Offset: -1, Index: next,
				Err: fmt.Errorf("write-ahead log segment starts at index %d, expected %d", seg.first, next)}
		}
		sr, err := openSegmentReader(seg.path)
		if err != nil {
			return 0, 0, nil, err
		}
		off := int64(0)
		for {
			first, entries, n, ferr := parseFrame(sr.at(off, frameHeaderSize, MaxFrameBytes))
			if ferr == io.EOF {
				// A preallocated segment is zeros past its last frame.
				// Only the one unsynced frame can have left bytes there,
				// and it is at most MaxFrameBytes long.
				if sr.zeroFrom(off, frameHeaderSize+MaxFrameBytes) {
					break
				}
				// A header that never reached the disk ahead of its
				// payload: bytes past the end that no frame claims.
				ferr = errors.New("bytes after the end of the last frame")
			}
			if ferr == nil && first != next {
				ferr = fmt.Errorf("frame starts at index %d, expected %d", first, next)
			}
			if sr.err != nil {
				sr.close()
				return 0, 0, nil, fmt.Errorf("read write-ahead log %s: %w", filepath.Base(seg.path), sr.err)
			}
			if ferr != nil {
				sr.close()
				if !last {
					return 0, 0, nil, &DamageError{File: seg.path, Offset: off, Index: next, Err: ferr}
				}
				if at, idx, ok, err := frameAfter(seg.path, off, next); err != nil {
					return 0, 0, nil, err
				} else if ok {
					return 0, 0, nil, &DamageError{File: seg.path, Offset: off, Index: next,
						Err: fmt.Errorf("%w, and a well-formed frame (entry %d) follows at offset %d: not a torn tail", ferr, idx, at)}
				}
				return next, off, &badFrame{path: seg.path, off: off, index: next, err: ferr}, nil
			}
			if fn != nil {
				if err := fn(first, entries); err != nil {
					sr.close()
					return 0, 0, nil, err
				}
			}
			next += uint64(len(entries))
			off += n
		}
		sr.close()
		lastOff = off
	}
	return next, lastOff, nil, nil
}

// frameAfter looks past a bad frame at off for a well-formed one whose
// first index is at least next: proof that the bad frame was acknowledged
// (its successor was committed after it was synced) and is damaged, not
// torn. It runs only when a bad frame was found, so reading the whole
// segment is affordable. A candidate must carry a plausible index (no more
// entries than bytes since off) before its checksum is computed.
func frameAfter(path string, off int64, next uint64) (at int64, first uint64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read write-ahead log %s: %w", filepath.Base(path), err)
	}
	at, first, ok = frameAfterIn(b, off, next)
	return at, first, ok, nil
}

// frameAfterIn is frameAfter on a segment's bytes.
func frameAfterIn(b []byte, off int64, next uint64) (at int64, first uint64, ok bool) {
	for p := off + 1; p+frameHeaderSize <= int64(len(b)); p++ {
		h := b[p : p+frameHeaderSize]
		size := int64(binary.BigEndian.Uint32(h[0:4]))
		if size == 0 || size > MaxFrameBytes || p+frameHeaderSize+size > int64(len(b)) {
			continue
		}
		first := binary.BigEndian.Uint64(h[8:16])
		if first < next || first-next > uint64(p-off) {
			continue
		}
		if _, _, _, err := parseFrame(b[p : p+frameHeaderSize+size]); err == nil {
			return p, first, true
		}
	}
	return 0, 0, false
}

// segmentReader reads a segment on demand: recovery needs the written
// frames and a bounded window after them, not the whole preallocation. It
// reads forward through a window it reuses: the bytes at returns stay
// valid until the next call, which may move the window past them, so a
// segment of any size is read with one buffer of about a read's size (the
// buffer grows only for a frame larger than that). Reading the segment
// into one growing buffer instead cost, at a million records, more in
// copying and first-touch page faults than the frames' checks.
type segmentReader struct {
	f    *os.File
	size int64
	base int64  // the segment offset of buf[0]
	buf  []byte // the segment's bytes from base
	err  error
}

// segmentReadSize is how much the reader asks the file for at a time.
const segmentReadSize = 1 << 20

func openSegmentReader(path string) (*segmentReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read write-ahead log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read write-ahead log: %w", err)
	}
	return &segmentReader{f: f, size: fi.Size()}, nil
}

// at returns the bytes from off: at least want of them where the segment
// has them, and, when the frame header found there gives a length, the
// whole frame (up to limit). Offsets normally go forward from one call to
// the next; going back rereads.
func (r *segmentReader) at(off int64, want, limit int) []byte {
	need := off + int64(want)
	if limit > 0 {
		r.load(off, need)
		if r.end() >= off+frameHeaderSize {
			if l := int64(binary.BigEndian.Uint32(r.buf[off-r.base:])); l <= int64(limit) {
				need = off + frameHeaderSize + l
			}
		}
	}
	r.load(off, need)
	if off >= r.end() {
		return nil
	}
	return r.buf[off-r.base : min(r.end(), need)-r.base]
}

func (r *segmentReader) end() int64 { return r.base + int64(len(r.buf)) }

// zeroFrom reports whether the n bytes from off (those the segment has)
// are all zero, reading them through the window a read at a time.
func (r *segmentReader) zeroFrom(off int64, n int) bool {
	last := min(off+int64(n), r.size)
	for off < last {
		b := r.at(off, int(min(last-off, segmentReadSize)), 0)
		if len(b) == 0 {
			return r.err == nil
		}
		if !allZero(b) {
			return false
		}
		off += int64(len(b))
	}
	return true
}

// load makes the window hold the bytes [off, upTo) the segment has,
// dropping those before off.
func (r *segmentReader) load(off, upTo int64) {
	if off < r.base {
		// Back to bytes already dropped (the torn tail after a scan for
		// zeros): read them again.
		r.buf, r.base = r.buf[:0], off
	}
	upTo = min(upTo, r.size)
	if r.end() >= upTo || r.err != nil {
		return
	}
	if off > r.base {
		if off >= r.end() {
			r.buf = r.buf[:0]
		} else {
			r.buf = r.buf[:copy(r.buf, r.buf[off-r.base:])]
		}
		r.base = off
	}
	target := min(max(upTo-r.base, segmentReadSize), r.size-r.base)
	if int64(cap(r.buf)) < target {
		nb := make([]byte, len(r.buf), max(target, 2*int64(cap(r.buf))))
		copy(nb, r.buf)
		r.buf = nb
	}
	old := len(r.buf)
	n, err := r.f.ReadAt(r.buf[old:target], r.base+int64(old))
	r.buf = r.buf[:old+n]
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
		r.buf = r.buf[:old]
	}
}

func (r *segmentReader) close() { r.f.Close() }

// parseFrame parses one frame at the start of b. It returns io.EOF at the
// zeroed end of a segment.
func parseFrame(b []byte) (first uint64, entries [][]byte, n int64, err error) {
	if len(b) < frameHeaderSize {
		if len(b) == 0 || allZero(b) {
			return 0, nil, 0, io.EOF
		}
		return 0, nil, 0, errors.New("truncated frame header")
	}
	size := binary.BigEndian.Uint32(b[0:4])
	if size == 0 {
		if allZero(b[:frameHeaderSize]) {
			return 0, nil, 0, io.EOF
		}
		return 0, nil, 0, errors.New("frame of length zero")
	}
	if int64(size) > int64(len(b)-frameHeaderSize) {
		return 0, nil, 0, fmt.Errorf("frame of %d bytes runs past the end of the segment", size)
	}
	payload := b[frameHeaderSize : frameHeaderSize+int(size)]
	if binary.BigEndian.Uint32(b[4:8]) != frameCRC(b[:frameHeaderSize], payload) {
		return 0, nil, 0, errors.New("frame checksum mismatch")
	}
	first = binary.BigEndian.Uint64(b[8:16])
	for p := payload; len(p) > 0; {
		if len(p) < 2 {
			return 0, nil, 0, errors.New("frame payload: truncated entry length")
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l {
			return 0, nil, 0, errors.New("frame payload: entry runs past the frame")
		}
		entries = append(entries, p[2:2+l:2+l])
		p = p[2+l:]
	}
	return first, entries, int64(frameHeaderSize) + int64(size), nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// setAsideTail copies the non-zero bytes of a torn tail (from off, at most
// one frame's worth) into a side file, then zeroes them in the segment, so
// that the log can continue at off and nothing that was on disk is lost.
func setAsideTail(path string, off int64) (*TornTail, error) {
	sr, err := openSegmentReader(path)
	if err != nil {
		return nil, err
	}
	rest := sr.at(off, frameHeaderSize+MaxFrameBytes, 0)
	sr.close()
	if sr.err != nil {
		return nil, fmt.Errorf("read torn tail of %s: %w", path, sr.err)
	}
	tail := bytes.TrimRight(rest, "\x00")
	saved := fmt.Sprintf("%s.torn-%d", path, off)
	if err := writeFileSync(saved, tail); err != nil {
		return nil, fmt.Errorf("set aside torn tail of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("repair torn tail of %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, len(tail)), off); err != nil {
		return nil, fmt.Errorf("repair torn tail of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("repair torn tail of %s: %w", path, err)
	}
	return &TornTail{Segment: path, Offset: off, Bytes: int64(len(tail)), SavedAs: saved}, nil
}

// writeFileSync writes a file atomically and durably: temporary file,
// fsync, rename, directory fsync.
func writeFileSync(path string, data []byte) error { return fsutil.Replace(path, data, 0o600) }
