package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Origin, if set, is the origin the checkpoint must carry.
	Origin string
	// Verifiers check the checkpoint's signature. When nil, only hashes are
	// checked and the report says that no signature was.
	Verifiers note.Verifiers
	// Previous is a signed checkpoint saved from an earlier run: the ledger
	// must be consistent with it (same origin, at least as large, the same
	// root at that size).
	Previous []byte
	// Progress, if set, is called as entries are checked.
	Progress func(done, total uint64)
	// Parallel is how many tile comparisons run at once (default 8).
	Parallel int
}

// VerifyReport is what a whole-ledger check found.
type VerifyReport struct {
	Checkpoint       Checkpoint
	SignatureChecked bool
	Signers          []string // names of the keys whose signatures verified
	Entries          uint64
	Tiles            int // tiles and entry bundles compared
	ByType           map[Type]uint64
	Epochs           []uint64 // distinct epochs in order
	PreviousSize     uint64   // size of the earlier checkpoint it is consistent with, if one was given
}

// Verify checks a whole ledger as an auditor would: the checkpoint signature
// (when verifiers are given), every entry bundle and every tile against a
// tree rebuilt from the entries, the root against the checkpoint, that
// entries decode and that epochs never go backwards, and consistency with an
// earlier checkpoint. The error names the first bad index or tile.
func Verify(ctx context.Context, f Fetcher, opts VerifyOptions) (*VerifyReport, error) {
	// Returning early must stop the prefetchers and tile comparisons.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	signed, err := f.Fetch(ctx, CheckpointPath)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	rep := &VerifyReport{ByType: map[Type]uint64{}}
	var cp Checkpoint
	if opts.Verifiers != nil {
		var n *note.Note
		cp, n, err = OpenCheckpoint(signed, opts.Origin, opts.Verifiers)
		if err != nil {
			return rep, err
		}
		rep.SignatureChecked = true
		for _, s := range n.Sigs {
			rep.Signers = append(rep.Signers, s.Name)
		}
	} else {
		if cp, err = ParseSignedCheckpoint(signed); err != nil {
			return rep, err
		}
		if opts.Origin != "" && cp.Origin != opts.Origin {
			return rep, fmt.Errorf("checkpoint origin %q, expected %q", cp.Origin, opts.Origin)
		}
	}
	rep.Checkpoint = cp

	var prev *Checkpoint
	if opts.Previous != nil {
		p, err := ParseSignedCheckpoint(opts.Previous)
		if err != nil {
			return rep, fmt.Errorf("previous checkpoint: %w", err)
		}
		if p.Origin != cp.Origin {
			return rep, fmt.Errorf("previous checkpoint is for %q, this ledger is %q", p.Origin, cp.Origin)
		}
		if p.Size > cp.Size {
			return rep, fmt.Errorf("ledger rolled back: checkpoint size %d is smaller than the previously seen %d", cp.Size, p.Size)
		}
		prev = &p
	}

	cmp := newCompareSink(ctx, f, opts.Parallel)
	t := newTree(cmp)
	checkPrev := func() error {
		if prev == nil || t.size() != prev.Size {
			return nil
		}
		root, err := t.root()
		if err != nil {
			return err
		}
		if root != prev.Root {
			return fmt.Errorf("ledger inconsistent with the earlier checkpoint: root at size %d is %x, was %x", prev.Size, root, prev.Root)
		}
		rep.PreviousSize = prev.Size
		return nil
	}
	if err := checkPrev(); err != nil {
		return rep, err
	}

	bundles := (cp.Size + TileWidth - 1) / TileWidth
	fetched := prefetch(ctx, f, bundles, cp.Size)
	var lastEpoch uint64
	// A bundle whose entries do not hash to the leaves of its level-0
	// tile is damaged if the tiles are right; which one is decided at the
	// end, by the root. Meanwhile the tile's leaves stand in for it.
	var damaged *DamageError
	for b := uint64(0); b < bundles; b++ {
		r := <-fetched
		if r.err != nil {
			return rep, fmt.Errorf("entry bundle %d (entries %d–%d): %w", b, b*TileWidth, min((b+1)*TileWidth, cp.Size)-1, r.err)
		}
		entries, err := splitBundle(r.data)
		if err == nil {
			switch {
			case len(entries) == r.width:
			case r.full && len(entries) == TileWidth && r.width < TileWidth:
				// The partial bundle of this checkpoint was superseded by the
				// full one, whose prefix it is.
				entries = entries[:r.width]
			default:
				err = fmt.Errorf("entry bundle %d: holds %d entries, the checkpoint needs %d", b, len(entries), r.width)
			}
		}
		d := checkBundle(r, b, entries, err)
		if d != nil && (r.leaves == nil || !leavesCommitted(ctx, f, t, b, r.leaves, cp)) {
			if err != nil {
				return rep, fmt.Errorf("entry bundle %d: %w", b, err)
			}
			// The entries may be right and the tile damaged: the
			// comparison of the rebuilt tiles names it.
			d = nil
		}
		if d != nil {
			// The tile is what the signed tree holds: the bundle is
			// damaged. Its leaves stand in for it so the check goes on.
			if damaged == nil {
				damaged = d
			}
			for i, h := range r.leaves {
				var raw []byte
				if i < len(entries) {
					raw = entries[i]
				}
				if err := t.appendLeaf(h, raw); err != nil {
					return rep, cmp.first(fmt.Errorf("entry %d: %w", b*TileWidth+uint64(i), err))
				}
			}
			rep.Entries = t.size()
			continue
		}
		for i, raw := range entries {
			idx := b*TileWidth + uint64(i)
			e, err := DecodeEntry(raw)
			if err != nil {
				return rep, fmt.Errorf("entry %d: %w", idx, err)
			}
			if e.Epoch < lastEpoch {
				return rep, fmt.Errorf("entry %d: epoch %d after epoch %d: a fenced writer's entry", idx, e.Epoch, lastEpoch)
			}
			if e.Epoch > lastEpoch || len(rep.Epochs) == 0 {
				rep.Epochs = append(rep.Epochs, e.Epoch)
			}
			lastEpoch = e.Epoch
			rep.ByType[e.Type]++
			if err := t.append(raw); err != nil {
				return rep, cmp.first(fmt.Errorf("entry %d: %w", idx, err))
			}
			if err := checkPrev(); err != nil {
				return rep, err
			}
		}
		rep.Entries = t.size()
		if opts.Progress != nil {
			opts.Progress(rep.Entries, cp.Size)
		}
	}
	if err := t.flushPartial(); err != nil {
		return rep, cmp.first(err)
	}
	cmpErr := cmp.wait()
	rep.Tiles = cmp.count
	root, err := t.root()
	if err != nil {
		return rep, err
	}
	if damaged != nil && root == cp.Root {
		damaged.Err = fmt.Errorf("%w (the tiles agree with the signed root: the entry bundle is what is damaged)", damaged.Err)
		return rep, errors.Join(damaged, cmpErr)
	}
	if cmpErr != nil {
		return rep, cmpErr
	}
	if damaged != nil {
		return rep, fmt.Errorf("root of the %d entries is %x, the checkpoint says %x; first inconsistency: %w", cp.Size, root, cp.Root, damaged)
	}
	if root != cp.Root {
		return rep, fmt.Errorf("root of the %d entries is %x, the checkpoint says %x", cp.Size, root, cp.Root)
	}
	if cp.Size > 0 && cp.Epoch != lastEpoch {
		return rep, fmt.Errorf("checkpoint epoch %d, but the newest entry is of epoch %d", cp.Epoch, lastEpoch)
	}
	return rep, nil
}

// leavesCommitted reports whether leaves, the level-0 tile's hashes for
// bundle b, are the ones the signed tree commits to: for the last bundle,
// with the tree t built so far, they give the checkpoint's root; for a
// full bundle further left, their subtree hash is the one in the level-1
// tile. When they are, a bundle that disagrees with them is damaged.
func leavesCommitted(ctx context.Context, f Fetcher, t *tree, b uint64, leaves []Hash, cp Checkpoint) bool {
	if b*TileWidth+uint64(len(leaves)) == cp.Size {
		r, err := cloneRange(t.rng)
		if err != nil {
			return false
		}
		for _, h := range leaves {
			if r.Append(h[:], nil) != nil {
				return false
			}
		}
		root, err := r.GetRootHash(nil)
		return err == nil && Hash(root) == cp.Root
	}
	if len(leaves) != TileWidth {
		return false
	}
	r := rangeFactory().NewEmptyRange(b * TileWidth)
	for _, h := range leaves {
		if r.Append(h[:], nil) != nil {
			return false
		}
	}
	sub, err := r.GetRootHash(nil)
	if err != nil {
		return false
	}
	up, w, _, err := fetchTile(ctx, f, 1, b/TileWidth, cp.Size)
	pos := int(b % TileWidth)
	return err == nil && pos < w && len(up) >= 32*(pos+1) && bytes.Equal(up[32*pos:32*(pos+1)], sub)
}

type fetchResult struct {
	data   []byte
	width  int
	full   bool
	err    error
	path   string // the bundle file read
	leaves []Hash // the level-0 tile's leaves for the bundle, if it could be read
}

// checkBundle returns the damage in bundle b, read as r and split into
// entries (or not: splitErr): the first entry that is not whole or whose
// leaf hash is not the level-0 tile's.
func checkBundle(r fetchResult, b uint64, entries [][]byte, splitErr error) *DamageError {
	if splitErr == nil && r.leaves != nil {
		for i, e := range entries {
			if EntryLeafHash(e) != r.leaves[i] {
				splitErr = errors.New("mismatch")
				break
			}
		}
	}
	if splitErr == nil {
		return nil
	}
	if r.leaves == nil {
		return &DamageError{File: r.path, Offset: -1, Index: b * TileWidth, Err: splitErr}
	}
	return bundleDamage(r.path, r.data, b*TileWidth, r.leaves)
}

// prefetch reads entry bundles ahead of the hashing, in order.
func prefetch(ctx context.Context, f Fetcher, n, size uint64) <-chan fetchResult {
	const ahead = 16
	slots := make(chan chan fetchResult, ahead)
	out := make(chan fetchResult, ahead)
	go func() {
		defer close(slots)
		for b := uint64(0); b < n; b++ {
			c := make(chan fetchResult, 1)
			select {
			case slots <- c:
			case <-ctx.Done():
				return
			}
			go func(b uint64) {
				data, w, full, err := fetchTile(ctx, f, -1, b, size)
				r := fetchResult{data: data, width: w, full: full, err: err, path: EntriesPath(b, 0)}
				if !full {
					r.path = EntriesPath(b, w)
				}
				// The leaves name the entry a damaged bundle spoils; a
				// tile that cannot be read is reported by the comparison.
				if t, _, _, err := fetchTile(ctx, f, 0, b, size); err == nil && len(t) >= 32*w {
					r.leaves, _ = bytesHashes(t[:32*w])
				}
				c <- r
			}(b)
		}
	}()
	go func() {
		defer close(out)
		for c := range slots {
			select {
			case out <- <-c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// compareSink checks each tile the rebuilt tree produces against the one
// the ledger serves, a few at a time, and remembers the earliest mismatch.
type compareSink struct {
	ctx   context.Context
	f     Fetcher
	sem   chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
	seq   int // order of the failing tile, to report the first
	count int
	n     int
}

func newCompareSink(ctx context.Context, f Fetcher, parallel int) *compareSink {
	if parallel <= 0 {
		parallel = 8
	}
	return &compareSink{ctx: ctx, f: f, sem: make(chan struct{}, parallel)}
}

func (c *compareSink) tile(path string, want []byte, full bool) error {
	if err := c.firstErr(); err != nil {
		return err
	}
	if len(path) > 13 && path[:13] == "tile/entries/" {
		// Entry bundles were read to rebuild the tree; compare would be a tautology.
		c.mu.Lock()
		c.count++
		c.mu.Unlock()
		return nil
	}
	c.n++
	seq := c.n
	data := append([]byte(nil), want...)
	c.sem <- struct{}{}
	c.wg.Add(1)
	go func() {
		defer func() { <-c.sem; c.wg.Done() }()
		got, err := c.f.Fetch(c.ctx, path)
		if err != nil && !full {
			// A partial tile may be gone once its full tile exists.
			full := path[:bytes.LastIndex([]byte(path), []byte(".p/"))]
			if g2, err2 := c.f.Fetch(c.ctx, full); err2 == nil && len(g2) >= len(data) {
				got, err = g2[:len(data)], nil
			}
		}
		switch {
		case err != nil:
			err = fmt.Errorf("tile %s: %w", path, err)
		case !bytes.Equal(got, data):
			err = fmt.Errorf("tile %s: does not match the tree rebuilt from the entries", path)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.count++
		if err != nil && (c.err == nil || seq < c.seq) {
			c.err, c.seq = err, seq
		}
	}()
	return nil
}

func (c *compareSink) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// first returns the earliest tile mismatch if there is one, else err.
func (c *compareSink) first(err error) error {
	c.wg.Wait()
	if e := c.firstErr(); e != nil {
		return e
	}
	return err
}

func (c *compareSink) wait() error {
	c.wg.Wait()
	return c.firstErr()
}
