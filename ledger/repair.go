package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

// Repair is the way back from damage Open refuses (a *DamageError): the
// entries a damaged write-ahead log frame or right-edge entry bundle held
// are fetched from a site that holds them (another site's copy of the
// ledger, over HTTP or from a directory), checked, and written back. The
// check is the signed tree: every entry past the sync point, the restored
// ones among them, is hashed into the tree the sync marker records, and
// the root must be the one the peer's checkpoint (signed with the writer's
// key) gives at its size, and the one the ledger's own published
// checkpoint gives at its size; an entry below the sync point must hash to
// its leaf in the durable level-0 tile. Nothing is written unless every
// check passes, and every file rewritten is first kept beside itself
// under a ".damaged-<time>" name.

// RepairOptions configure Repair.
type RepairOptions struct {
	// Origin is the ledger's origin; the peer's checkpoint must carry it.
	Origin string
	// Verifiers check the peer's checkpoint: the writer's keys.
	Verifiers note.Verifiers
	// Peer reads the ledger of a site that holds the missing entries.
	Peer Fetcher
}

// RepairReport says what Repair found and did.
type RepairReport struct {
	Damage    []*DamageError // what was found, in log order
	Restored  uint64         // entries fetched from the peer and written back
	Rewritten []string       // files rewritten
	SavedAs   []string       // where their damaged versions were kept
	PeerSize  uint64         // size of the peer's checkpoint the entries were checked against
	// First and End bound the entries of the right-edge bundle restored
	// ([First, End)), when one was.
	First, End uint64
}

// repairPart is a run of a rebuilt segment: a frame kept as it was, or
// entries [from, to) to fetch.
type repairPart struct {
	raw      []byte
	first    uint64
	entries  [][]byte
	from, to uint64
}

type segmentPlan struct {
	seg   segment
	size  int64 // the file's size, kept
	parts []repairPart
	dirty bool
}

// Repair restores the entries of a closed ledger in dir that damage took,
// from opts.Peer. It refuses to run while the ledger is open.
func Repair(ctx context.Context, dir string, opts RepairOptions) (*RepairReport, error) {
	if opts.Peer == nil || opts.Verifiers == nil || opts.Origin == "" {
		return nil, errors.New("repair: a peer, the origin and the writer's keys are required")
	}
	walPath := filepath.Join(dir, walDir)
	lock, err := os.OpenFile(filepath.Join(walPath, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("repair ledger %s: %w", dir, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("repair ledger %s: %w: stop the site first", dir, ErrLocked)
	}

	var synced uint64
	var markerHashes [][]byte
	if b, err := os.ReadFile(filepath.Join(walPath, markerName)); err == nil {
		if synced, _, markerHashes, err = decodeMarker(b); err != nil {
			return nil, fmt.Errorf("repair ledger %s: %w", dir, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("repair ledger %s: read sync marker: %w", dir, err)
	}
	var local *Checkpoint
	if b, err := os.ReadFile(filepath.Join(dir, CheckpointPath)); err == nil {
		cp, err := ParseSignedCheckpoint(b)
		if err != nil {
			return nil, fmt.Errorf("repair ledger %s: published checkpoint: %w", dir, err)
		}
		local = &cp
	}
	rep := &RepairReport{}

	// The right edge at the sync point: the bundle Open carries over.
	var edgeDamage *DamageError
	if synced%TileWidth != 0 {
		if _, err := readRightEdge(dir, synced, markerHashes); err != nil {
			if !errors.As(err, &edgeDamage) {
				return nil, fmt.Errorf("repair ledger %s: %w (not repairable from entries)", dir, err)
			}
			rep.Damage = append(rep.Damage, edgeDamage)
		}
	}

	segs, err := listSegments(walPath)
	if err != nil {
		return nil, err
	}
	target := synced
	if local != nil {
		target = max(target, local.Size)
	}
	plans, end, damage, err := planSegments(segs, target)
	if err != nil {
		return nil, fmt.Errorf("repair ledger %s: %w", dir, err)
	}
	rep.Damage = append(rep.Damage, damage...)
	if len(rep.Damage) == 0 {
		return rep, nil
	}

	signed, err := opts.Peer.Fetch(ctx, CheckpointPath)
	if err != nil {
		return rep, fmt.Errorf("repair: read the peer's checkpoint: %w", err)
	}
	peer, _, err := OpenCheckpoint(signed, opts.Origin, opts.Verifiers)
	if err != nil {
		return rep, fmt.Errorf("repair: the peer's checkpoint: %w", err)
	}
	rep.PeerSize = peer.Size
	if need := max(end, synced); peer.Size < need {
		return rep, fmt.Errorf("repair: the peer holds %d entries, the repair needs the first %d", peer.Size, need)
	}

	// Fetch what is missing.
	fetch := func(from, to uint64) ([][]byte, error) {
		return fetchRange(ctx, opts.Peer, peer.Size, from, to, nil)
	}
	for _, p := range plans {
		for i := range p.parts {
			part := &p.parts[i]
			if part.raw != nil {
				continue
			}
			if part.entries, err = fetch(part.from, part.to); err != nil {
				return rep, err
			}
			part.first = part.from
			rep.Restored += part.to - part.from
		}
	}

	// Check every entry of the rebuilt log against the signed trees.
	leaves := DirFetcher(dir)
	rng, err := rangeFactory().NewRange(0, synced, markerHashes)
	if err != nil {
		return rep, fmt.Errorf("repair: sync marker: %w", err)
	}
	checkedPeer := false
	checkRoot := func() error {
		for _, c := range []*Checkpoint{&peer, local} {
			if c == nil || c.Size != rng.End() {
				continue
			}
			root, err := rangeRoot(rng)
			if err != nil {
				return err
			}
			if root != c.Root {
				return fmt.Errorf("repair: the repaired log at size %d has root %x, the checkpoint says %x: nothing was written", c.Size, root, c.Root)
			}
			if c == &peer {
				checkedPeer = true
			}
		}
		return nil
	}
	if err := checkRoot(); err != nil {
		return rep, err
	}
	add := func(idx uint64, e []byte, fetched bool) error {
		h := EntryLeafHash(e)
		if idx < synced {
			if !fetched {
				return nil
			}
			tile, _, _, err := fetchTile(ctx, leaves, 0, idx/TileWidth, synced)
			pos := int(idx%TileWidth) * 32
			if err != nil || len(tile) < pos+32 || Hash(tile[pos:pos+32]) != h {
				return fmt.Errorf("repair: entry %d from the peer does not hash to its leaf in the durable level-0 tile: nothing was written", idx)
			}
			return nil
		}
		if idx != rng.End() {
			return fmt.Errorf("repair: entry %d out of order (tree at %d)", idx, rng.End())
		}
		if err := rng.Append(h[:], nil); err != nil {
			return err
		}
		return checkRoot()
	}
	for _, p := range plans {
		for _, part := range p.parts {
			for i, e := range part.entries {
				if err := add(part.first+uint64(i), e, part.raw == nil); err != nil {
					return rep, err
				}
			}
		}
	}
	if !checkedPeer && rng.End() < peer.Size {
		// The peer is ahead: its further entries complete the check.
		err := Scan(ctx, opts.Peer, rng.End(), peer.Size, func(idx uint64, e []byte) error { return add(idx, e, false) })
		if err != nil {
			return rep, err
		}
	}
	if !checkedPeer {
		return rep, fmt.Errorf("repair: the repaired log (%d entries) could not be checked against the peer's checkpoint of size %d", rng.End(), peer.Size)
	}

	// Write back.
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	if edgeDamage != nil {
		// A full bundle past the sync point is rewritten from the
		// write-ahead log by the next Open; what it carries over is this.
		if err := restoreEdge(ctx, dir, synced, markerHashes, opts.Peer, peer.Size, nil, bundlePathAt(dir, synced), stamp, rep); err != nil {
			return rep, err
		}
	}
	for _, p := range plans {
		if !p.dirty {
			continue
		}
		var b []byte
		for _, part := range p.parts {
			if part.raw != nil {
				b = append(b, part.raw...)
				continue
			}
			for i := 0; i < len(part.entries); {
				n, size := 0, 0
				for i+n < len(part.entries) && (n == 0 || size+2+len(part.entries[i+n]) <= MaxFrameBytes) {
					size += 2 + len(part.entries[i+n])
					n++
				}
				b = appendFrame(b, part.first+uint64(i), part.entries[i:i+n])
				i += n
			}
		}
		if int64(len(b)) < p.size {
			// Keep the preallocated size: zeros mark the end of the frames.
			b = append(b, make([]byte, p.size-int64(len(b)))...)
		}
		if err := replaceKeeping(p.seg.path, b, 0o600, stamp, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// bundlePathAt is the entry bundle file Open reads for the right edge at
// size: the full bundle if it exists, else the partial one.
func bundlePathAt(dir string, size uint64) string {
	full := EntriesPath(size/TileWidth, 0)
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(full))); err == nil {
		return full
	}
	return EntriesPath(size/TileWidth, int(size%TileWidth))
}

// replaceKeeping keeps the file at path under a ".damaged-<stamp>" name
// (a hard link: the bytes are not copied) and replaces it, durably, by b.
func replaceKeeping(path string, b []byte, perm os.FileMode, stamp string, rep *RepairReport) error {
	saved := path + ".damaged-" + stamp
	if err := os.Link(path, saved); err != nil {
		return fmt.Errorf("repair: keep %s: %w", path, err)
	}
	if err := fsutil.Replace(path, b, perm); err != nil {
		return fmt.Errorf("repair: rewrite %s: %w", path, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	rep.Rewritten = append(rep.Rewritten, path)
	rep.SavedAs = append(rep.SavedAs, saved)
	return nil
}

// planSegments reads every segment and splits it into the frames that are
// sound and the runs of entries damage took: between a bad frame and the
// next well-formed one, between segments that do not meet, and, after a
// bad last frame, up to target (the sync point or the published
// checkpoint, which were acknowledged). end is where the rebuilt log ends.
func planSegments(segs []segment, target uint64) (plans []*segmentPlan, end uint64, damage []*DamageError, err error) {
	if len(segs) == 0 {
		return nil, 0, nil, nil
	}
	next := segs[0].first
	for si, seg := range segs {
		b, err := os.ReadFile(seg.path)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("read write-ahead log %s: %w", filepath.Base(seg.path), err)
		}
		p := &segmentPlan{seg: seg, size: int64(len(b))}
		plans = append(plans, p)
		gap := func(off int64, to uint64, why error) {
			if to <= next {
				return
			}
			damage = append(damage, &DamageError{File: seg.path, Offset: off, Index: next, Err: why})
			p.parts = append(p.parts, repairPart{from: next, to: to})
			p.dirty = true
			next = to
		}
		if seg.first != next {
			// A segment that starts past where the last one ended: the
			// gap is restored at the end of the previous one.
			return nil, 0, nil, &DamageError{File: seg.path, Offset: -1, Index: next, Err: fmt.Errorf("segment starts at index %d, expected %d: a segment is missing", seg.first, next)}
		}
		off := int64(0)
		for off < int64(len(b)) {
			first, entries, n, ferr := parseFrame(b[off:])
			if ferr == io.EOF && allZero(b[off:min(int64(len(b)), off+frameHeaderSize+MaxFrameBytes)]) {
				break
			}
			if ferr == io.EOF {
				ferr = errors.New("bytes after the end of the last frame")
			}
			if ferr == nil && first != next {
				ferr = fmt.Errorf("frame starts at index %d, expected %d", first, next)
			}
			if ferr == nil {
				p.parts = append(p.parts, repairPart{raw: b[off : off+n], first: first, entries: entries})
				next += uint64(len(entries))
				off += n
				continue
			}
			at, idx, ok := frameAfterIn(b, off, next)
			if !ok {
				to := target
				if si+1 < len(segs) {
					to = segs[si+1].first
				}
				if to > next {
					gap(off, to, ferr)
				} else if si+1 < len(segs) {
					return nil, 0, nil, &DamageError{File: seg.path, Offset: off, Index: next, Err: ferr}
				}
				// Otherwise a torn tail: Open sets it aside.
				break
			}
			gap(off, idx, ferr)
			off = at
		}
		if si+1 < len(segs) && segs[si+1].first > next {
			gap(int64(len(b)), segs[si+1].first, errors.New("segment ends before the next one starts"))
		}
	}
	return plans, next, damage, nil
}

// fetchRange reads entries [from, to) from peer's tree of size peerSize.
// keep turns each into what this ledger stores at its index (a withheld
// stub where the site may not hold the entry), or refuses it; nil keeps
// every entry but a stub, which only a site holding the entry can restore.
func fetchRange(ctx context.Context, peer Fetcher, peerSize, from, to uint64, keep func(index uint64, entry []byte) ([]byte, error)) ([][]byte, error) {
	if peerSize < to {
		return nil, fmt.Errorf("repair: the peer holds %d entries, the repair needs entries %d–%d", peerSize, from, to-1)
	}
	errEnough := errors.New("enough")
	out := make([][]byte, 0, to-from)
	err := Scan(ctx, peer, from, peerSize, func(idx uint64, e []byte) error {
		if idx >= to {
			return errEnough
		}
		// Scan's slices alias a bundle it reuses.
		e = append([]byte(nil), e...)
		if keep != nil {
			var err error
			if e, err = keep(idx, e); err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
		} else if isStub(e) {
			// Its leaf hash checks, but the entry itself would be
			// lost: only a site that holds the entry can restore it.
			return fmt.Errorf("the peer holds only a withheld stub for entry %d: repair from a site that holds the entry", idx)
		}
		out = append(out, e)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("repair: fetch entries %d–%d from the peer: %w", from, to-1, err)
	}
	return out, nil
}

// ForgedEntryError is an entry a peer served for a repair that does not
// hash to its leaf in the tree this ledger holds: the peer's copy is
// damaged or forged, and nothing was written.
type ForgedEntryError struct {
	Index uint64
	Leaf  Hash // the leaf hash this ledger's tree holds
	Got   Hash // the leaf hash of the entry the peer served
}

func (e *ForgedEntryError) Error() string {
	return fmt.Sprintf("repair: entry %d from the peer does not hash to its leaf in the tree this site holds (leaf %x…, the peer's entry hashes to %x…): refused, nothing was written", e.Index, e.Leaf[:6], e.Got[:6])
}

// restoreEdge restores the right edge of the tree of the given size,
// whose compact range is hashes: the entries of its partial bundle are
// fetched from peer (a tree of size peerSize), checked, and written to
// bundleRel; the level-0 partial tile is rewritten from their leaf hashes
// if it does not give the range. The check is the tree this ledger
// already holds: the entries' leaf hashes must give the range's nodes
// below a full tile, and, where the stored level-0 tile is sound, each
// must be the leaf that tile holds, so that a bad entry is named. A file
// that already holds the right bytes is left as it is; one rewritten is
// first kept beside itself (replaceKeeping). Chancery repair (Repair)
// and a serving site (Log.RepairRightEdge) both restore the edge here.
func restoreEdge(ctx context.Context, dir string, size uint64, hashes [][]byte, peer Fetcher, peerSize uint64,
	keep func(uint64, []byte) ([]byte, error), bundleRel, stamp string, rep *RepairReport) error {
	w := int(size % TileWidth)
	if w == 0 {
		return nil
	}
	first := size - uint64(w)
	es, err := fetchRange(ctx, peer, peerSize, first, size, keep)
	if err != nil {
		return err
	}
	leaves := make([]Hash, len(es))
	for i, e := range es {
		leaves[i] = EntryLeafHash(e)
	}
	tail := func(hs []Hash) ([][]byte, error) {
		r := rangeFactory().NewEmptyRange(first)
		for _, h := range hs {
			if err := r.Append(h[:], nil); err != nil {
				return nil, err
			}
		}
		return r.Hashes(), nil
	}
	matches := func(t [][]byte) bool {
		return len(t) <= len(hashes) && slices.EqualFunc(t, hashes[len(hashes)-len(t):], bytes.Equal)
	}
	// The stored level-0 tile, if it still gives the tree, names the
	// entry a peer got wrong.
	tileRel := TilePath(0, first/TileWidth, w)
	var stored []Hash
	if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tileRel))); err == nil && len(b) == 32*w {
		if hs, err := bytesHashes(b); err == nil {
			if t, err := tail(hs); err == nil && matches(t) {
				stored = hs
			}
		}
	}
	for i := range stored {
		if leaves[i] != stored[i] {
			return &ForgedEntryError{Index: first + uint64(i), Leaf: stored[i], Got: leaves[i]}
		}
	}
	t, err := tail(leaves)
	if err != nil {
		return err
	}
	if !matches(t) {
		return fmt.Errorf("repair: entries %d–%d from the peer do not give the tree this site holds at size %d (and its level-0 tile is damaged too, so the entry cannot be named): refused, nothing was written", first, size-1, size)
	}
	var bundle []byte
	for _, e := range es {
		bundle = appendBundleEntry(bundle, e)
	}
	if stored == nil {
		if err := writeRepaired(dir, tileRel, hashesBytes(leaves), stamp, rep); err != nil {
			return err
		}
	}
	if err := writeRepaired(dir, bundleRel, bundle, stamp, rep); err != nil {
		return err
	}
	rep.Restored += uint64(len(es))
	rep.First, rep.End = first, size
	return nil
}

// edgeDamage reads the stored right edge of edge's tree and returns the
// damage found: a *DamageError from readRightEdge, or a file of the edge
// that is missing (removed by someone else than the ledger: the
// integrator moves the edge before it removes what it superseded).
func edgeDamage(dir string, edge edgeState) (*DamageError, error) {
	_, err := readRightEdge(dir, edge.size, edge.hashes)
	var d *DamageError
	var pe *fs.PathError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &d):
		return d, nil
	case errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe):
		// readRightEdge looked for the partial file, then the full one:
		// name the partial, which the edge's size fixes.
		file, w := pe.Path, int(edge.size%TileWidth)
		switch rel, _ := filepath.Rel(dir, pe.Path); {
		case w > 0 && strings.HasPrefix(filepath.ToSlash(rel), "tile/entries/"):
			file = filepath.Join(dir, filepath.FromSlash(EntriesPath(edge.size/TileWidth, w)))
		case w > 0 && strings.HasPrefix(filepath.ToSlash(rel), "tile/0/"):
			file = filepath.Join(dir, filepath.FromSlash(TilePath(0, edge.size/TileWidth, w)))
		}
		return &DamageError{File: file, Offset: -1, Index: edge.size - edge.size%TileWidth, Err: errors.New("file missing")}, nil
	}
	return nil, fmt.Errorf("repair ledger %s right edge at size %d: %w", dir, edge.size, err)
}

// RepairRightEdge checks the stored right edge of the open log, as
// CheckRightEdge does, and restores it from peer when it is damaged: the
// entries of the partial bundle are read from the peer's copy of the
// ledger, checked against the tree this log holds (restoreEdge), written
// back atomically, and the edge read and checked again. The peer is not
// trusted: an entry that does not hash to its leaf is refused with a
// *ForgedEntryError and nothing is written. keep turns a peer's entry
// into what this site stores (see fetchRange). A file of the edge that is
// missing is damage too. With no damage it returns an empty report and
// changes nothing.
//
// The partial files it rewrites hold bytes fixed by their path (Log.tile),
// so a rewrite racing the integrator, which has moved on to files of a
// larger size, puts back exactly what the integrator wrote there.
func (l *Log) RepairRightEdge(ctx context.Context, peer Fetcher, keep func(index uint64, entry []byte) ([]byte, error)) (*RepairReport, error) {
	l.pub.Lock()
	edge, stopped := l.flushed, l.ierr
	l.pub.Unlock()
	if stopped != nil {
		return nil, fmt.Errorf("repair ledger %s: %w", l.dir, stopped)
	}
	rep := &RepairReport{}
	d, err := edgeDamage(l.dir, edge)
	if err != nil {
		return rep, err
	}
	if d == nil {
		return rep, nil
	}
	rep.Damage = append(rep.Damage, d)
	if edge.size%TileWidth == 0 {
		return rep, fmt.Errorf("repair ledger %s: %w: a tile above level 0 is not restored from a peer; stop the site and run chancery repair", l.dir, d)
	}
	if rep.PeerSize, err = peerSize(ctx, peer); err != nil {
		return rep, err
	}
	bundleRel := EntriesPath(edge.size/TileWidth, int(edge.size%TileWidth))
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := restoreEdge(ctx, l.dir, edge.size, edge.hashes, peer, rep.PeerSize, keep, bundleRel, stamp, rep); err != nil {
		return rep, err
	}
	if _, err := readRightEdge(l.dir, edge.size, edge.hashes); err != nil {
		return rep, fmt.Errorf("repair ledger %s: the right edge at size %d is still damaged after the repair: %w", l.dir, edge.size, err)
	}
	return rep, nil
}

// writeRepaired puts b, checked, at rel in the ledger in dir: a file that
// already holds b is left as it is, one that holds other bytes is kept
// beside itself and replaced (replaceKeeping), a missing one is written.
func writeRepaired(dir, rel string, b []byte, stamp string, rep *RepairReport) error {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, b):
		return nil
	case err == nil:
		return replaceKeeping(path, b, 0o644, stamp, rep)
	case errors.Is(err, fs.ErrNotExist):
		if err := fsutil.Replace(path, b, 0o644); err != nil {
			return fmt.Errorf("repair: write %s: %w", path, err)
		}
		rep.Rewritten = append(rep.Rewritten, path)
		rep.SavedAs = append(rep.SavedAs, "")
		return nil
	default:
		return fmt.Errorf("repair: %w", err)
	}
}

// provenLeaves reads the level-0 tile of full bundle b from the ledger in
// dir and proves it against cp: one inclusion proof, built from the same
// tiles, commits to every leaf of the tile. A tile that does not prove is
// damage no entry can repair.
func provenLeaves(ctx context.Context, dir string, cp Checkpoint, b uint64) ([]Hash, error) {
	f := DirFetcher(dir)
	rel := TilePath(0, b, 0)
	raw, _, _, err := fetchTile(ctx, f, 0, b, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("level-0 tile %d: %w", b, err)
	}
	leaves, err := bytesHashes(raw)
	if err == nil && len(leaves) != TileWidth {
		err = fmt.Errorf("holds %d hashes", len(leaves))
	}
	if err == nil {
		var prf []Hash
		if prf, err = NewProver(f, 16).Inclusion(ctx, b*TileWidth, cp.Size); err == nil {
			err = VerifyInclusion(b*TileWidth, cp.Size, leaves[0], prf, cp.Root)
		}
	}
	if err != nil {
		return nil, &DamageError{File: filepath.Join(dir, filepath.FromSlash(rel)), Offset: -1, Index: b * TileWidth,
			Err: fmt.Errorf("the tiles do not prove the level-0 tile against the checkpoint of size %d: %w", cp.Size, err)}
	}
	return leaves, nil
}

// CheckBundle checks full entry bundle b of the open log against the tree
// its latest checkpoint signs: the level-0 tile by an inclusion proof,
// each entry against its leaf hash. Damage is a *DamageError naming the
// file and entry; a bundle not yet full is the right edge's
// (CheckRightEdge).
func (l *Log) CheckBundle(ctx context.Context, b uint64) error {
	_, cp := l.Checkpoint()
	if (b+1)*TileWidth > cp.Size {
		return nil
	}
	_, err := checkFullBundle(ctx, l.dir, cp, b)
	return err
}

// checkFullBundle proves the leaves of full bundle b and checks the stored
// bundle against them.
func checkFullBundle(ctx context.Context, dir string, cp Checkpoint, b uint64) ([]Hash, error) {
	leaves, err := provenLeaves(ctx, dir, cp, b)
	if err != nil {
		return nil, err
	}
	rel := EntriesPath(b, 0)
	path := filepath.Join(dir, filepath.FromSlash(rel))
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return leaves, &DamageError{File: path, Offset: -1, Index: b * TileWidth, Err: errors.New("file missing")}
	} else if err != nil {
		return leaves, fmt.Errorf("entry bundle %d: %w", b, err)
	}
	es, err := splitBundle(data)
	if err != nil || len(es) != TileWidth {
		return leaves, bundleDamage(path, data, b*TileWidth, leaves)
	}
	for i, e := range es {
		if EntryLeafHash(e) != leaves[i] {
			return leaves, bundleDamage(path, data, b*TileWidth, leaves)
		}
	}
	return leaves, nil
}

// RepairBundle restores full entry bundle b of the open log from peer
// when CheckBundle finds it damaged: its 256 entries are read from the
// peer's copy and each must hash to its leaf in the level-0 tile this log
// proves against its own checkpoint, or the repair is refused (a
// *ForgedEntryError) and nothing written. A full bundle never changes, so
// the rewrite races nothing. keep is as for RepairRightEdge.
func (l *Log) RepairBundle(ctx context.Context, peer Fetcher, b uint64, keep func(index uint64, entry []byte) ([]byte, error)) (*RepairReport, error) {
	_, cp := l.Checkpoint()
	rep := &RepairReport{}
	if (b+1)*TileWidth > cp.Size {
		return rep, nil
	}
	leaves, err := checkFullBundle(ctx, l.dir, cp, b)
	var d *DamageError
	switch {
	case err == nil:
		return rep, nil
	case !errors.As(err, &d):
		return rep, err
	case leaves == nil:
		return rep, fmt.Errorf("repair ledger %s: %w: only entries are restored from a peer; stop the site and run chancery verify", l.dir, err)
	}
	rep.Damage = append(rep.Damage, d)
	if rep.PeerSize, err = peerSize(ctx, peer); err != nil {
		return rep, err
	}
	first := b * TileWidth
	es, err := fetchRange(ctx, peer, rep.PeerSize, first, first+TileWidth, keep)
	if err != nil {
		return rep, err
	}
	var bundle []byte
	for i, e := range es {
		if h := EntryLeafHash(e); h != leaves[i] {
			return rep, &ForgedEntryError{Index: first + uint64(i), Leaf: leaves[i], Got: h}
		}
		bundle = appendBundleEntry(bundle, e)
	}
	if err := writeRepaired(l.dir, EntriesPath(b, 0), bundle, strconv.FormatInt(time.Now().UnixNano(), 10), rep); err != nil {
		return rep, err
	}
	rep.Restored, rep.First, rep.End = TileWidth, first, first+TileWidth
	if _, err := checkFullBundle(ctx, l.dir, cp, b); err != nil {
		return rep, fmt.Errorf("repair ledger %s: entry bundle %d is still damaged after the repair: %w", l.dir, b, err)
	}
	return rep, nil
}

// peerSize reads the size of a peer's tree from its checkpoint, which
// says which bundles to read. Its signature is not needed by a running
// log's repair: every entry is checked against the log's own tree.
func peerSize(ctx context.Context, peer Fetcher) (uint64, error) {
	signed, err := peer.Fetch(ctx, CheckpointPath)
	if err != nil {
		return 0, fmt.Errorf("repair: read the peer's checkpoint: %w", err)
	}
	cp, err := ParseSignedCheckpoint(signed)
	if err != nil {
		return 0, fmt.Errorf("repair: the peer's checkpoint: %w", err)
	}
	return cp.Size, nil
}
