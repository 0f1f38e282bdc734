package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// Rebuilding the index is what stands between an activated site and its
// first read, so it runs as a pipeline:
//
//	bundle readers ──► scan and decode ──► rounds ──► index workers, one per core
//
// The readers read the ledger's entry bundles ahead, into reused buffers.
// ledger.Scan hands the entries over in ledger order; the scanner checks
// and decodes each, applies key events at once, and files each record
// version under its shard in the current round. A full round goes to the
// workers, each of which applies, shard after shard, the versions of the
// shards it owns, while the scanner fills the next round.
//
// A record's versions all fall in one shard, so they are applied by one
// worker, in ledger order, with no locks, and the result is the index that
// applying the entries one by one would give. Key events only move the
// keyring's generations; the index never reads keys, so they need no
// ordering against the records.
//
// Applying a round shard after shard, rather than in ledger order, is what
// makes the rebuild fast: a shard is a small part of the index, and while
// its versions are applied its maps stay in the processor's caches and
// TLB, where ledger order sends every version to a random place in
// hundreds of megabytes, each a miss. BenchmarkIndex measures both orders
// (docs/benchmarks.md).

// roundSize is how many record versions a round holds: a quarter of the
// ledger, from 256Ki (24 MiB) to 2Mi (192 MiB). The scanner fills one
// round while the workers apply the other. Longer rounds keep more of each
// shard in cache while it is applied, which matters once the index is
// gigabytes; shorter ones cost less memory and start the workers earlier.
func roundSize(size uint64) int {
	return int(min(max(size/4, 1<<18), 1<<21))
}

// rebuild indexes the ledger entries [0, size) of the ledger in dir.
func (r *Registries) rebuild(ctx context.Context, dir string, size uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := min(runtime.GOMAXPROCS(0), shardCount)

	br := newBundleReader(ctx, dir, size)
	defer br.close()

	regs := make([]*reg, len(r.regs))
	for _, g := range r.regs {
		regs[g.num] = g
	}

	// Two rounds: the scanner fills one while the workers apply the
	// other. The worker that finishes a round last hands it back.
	free := make(chan *round, 2)
	free <- &round{}
	free <- &round{}
	ins := make([]chan *round, workers)
	var wg sync.WaitGroup
	for w := range ins {
		ins[w] = make(chan *round, 2)
		wg.Go(func() {
			for rd := range ins[w] {
				if ctx.Err() == nil {
					rd.apply(regs, w, workers)
				}
				if rd.pending.Add(-1) == 0 {
					rd.reset()
					free <- rd
				}
			}
		})
	}
	send := func(rd *round) {
		rd.pending.Store(int32(workers))
		for _, in := range ins {
			in <- rd
		}
	}

	rsize := roundSize(size)
	cur := <-free
	var view recordView
	err := ledger.Scan(ctx, br, 0, size, func(idx uint64, raw []byte) error {
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("ledger entry %d: %w", idx, err)
		}
		switch e.Type {
		case ledger.TypeKeyEvent:
			if err := r.applyKeyEvent(e.Payload); err != nil {
				return fmt.Errorf("ledger entry %d: %w", idx, err)
			}
		case ledger.TypeRecord:
			if err := view.parse(e.Payload); err != nil {
				return fmt.Errorf("ledger entry %d: %w", idx, err)
			}
			g, ok := r.regs[string(view.registry)]
			if !ok {
				return nil // a registry this site may not hold
			}
			cur.add(g, &view, version{num: view.version, index: idx, epoch: e.Epoch, ms: e.Time.UnixMilli(), prev: none, deleted: view.kind == KindTombstone})
			// The nonce budget counts what each generation sealed before
			// this process started, not only since.
			g.keys.CountSealed(view.sealed)
			if cur.n >= rsize {
				send(cur)
				select {
				case cur = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	})
	if err == nil && cur.n > 0 {
		send(cur)
	}
	if err != nil {
		cancel() // the workers skip what is queued
	}
	for _, in := range ins {
		close(in)
	}
	wg.Wait()
	return err
}

// round holds record versions filed by shard, each shard's in ledger order.
// It copies what the index needs out of the bundles, so that a bundle's
// buffer can be reused as soon as the scan leaves it.
type round struct {
	shards  [shardCount]opLog
	n       int
	pending atomic.Int32 // workers yet to apply the round
}

// opLog is a run of record versions of one shard. It holds no pointers,
// and grows without copying, kept from one round to the next.
type opLog struct {
	ops  arena[indexOp]
	vals arena[key] // the ops' blinded index values
}

type indexOp struct {
	blind key
	v     version
	vals  uint32 // the version's index values: nvals of opLog.vals from vals
	nvals uint8
	reg   uint16 // the registry's reg.num
}

// add files a record version of registry g under its shard.
func (rd *round) add(g *reg, view *recordView, v version) {
	blind := keyOf(&view.blindID)
	l := &rd.shards[shardOf(&blind)]
	op := l.ops.at(l.ops.alloc(1))
	*op = indexOp{blind: blind, v: v, reg: g.num, nvals: uint8(len(view.index) / 32)}
	if op.nvals > 0 {
		op.vals = l.vals.alloc(int(op.nvals))
		vals := l.vals.slice(op.vals, int(op.nvals))
		for i := range vals {
			vals[i] = key(view.index[32*i:])
		}
	}
	rd.n++
}

// apply indexes, with the registries regs, the versions of the shards that
// worker w of n owns.
func (rd *round) apply(regs []*reg, w, n int) {
	for s := w; s < shardCount; s += n {
		l := &rd.shards[s]
		for i := range l.ops.len() {
			op := l.ops.at(i)
			// A registry that indexes no field has versions without
			// values, and a shard that saw only those has no vals chunk.
			var vals []key
			if op.nvals > 0 {
				vals = l.vals.slice(op.vals, int(op.nvals))
			}
			regs[op.reg].shards[s].index(&op.blind, op.v, vals)
		}
	}
}

// reset empties the round, keeping its room.
func (rd *round) reset() {
	for s := range rd.shards {
		rd.shards[s].ops.n, rd.shards[s].vals.n = 0, 0
	}
	rd.n = 0
}

// applyKeyEvent applies a key event entry to the keyring: a rotation of a
// registry this site does not hold is none of its business.
func (r *Registries) applyKeyEvent(payload []byte) error {
	var ev seal.KeyEvent
	if err := ev.UnmarshalBinary(payload); err != nil {
		return err
	}
	if ev.Kind == seal.KeyRotate {
		if _, ok := r.regs[ev.Registry]; !ok {
			return nil
		}
	}
	return r.opts.Keys.ApplyKeyEvent(ev)
}

// bundleReader is the ledger.Fetcher the rebuild scans through. It reads
// the full entry bundles of the ledger directory ahead of the scan, on a few
// goroutines and into buffers it reuses once the scan has moved on, and
// hands them over in order; anything else it reads as ledger.DirFetcher
// does.
type bundleReader struct {
	dir     ledger.DirFetcher
	next    uint64 // the next full bundle the scan will ask for
	full    uint64 // the number of full bundles
	out     []chan fetched
	free    chan []byte
	held    []byte // the buffer the scan is reading
	stop    context.CancelFunc
	readers sync.WaitGroup
}

type fetched struct {
	data []byte
	err  error
}

// bundleReaders is how many bundle reads are in flight: enough to keep a
// disk busy when the ledger is not in the page cache.
const bundleReaders = 4

func newBundleReader(ctx context.Context, dir string, size uint64) *bundleReader {
	ctx, cancel := context.WithCancel(ctx)
	br := &bundleReader{dir: ledger.DirFetcher(dir), full: size / ledger.TileWidth, stop: cancel,
		out: make([]chan fetched, bundleReaders), free: make(chan []byte, 3*bundleReaders+1)}
	for range cap(br.free) {
		br.free <- nil
	}
	for k := range br.out {
		br.out[k] = make(chan fetched, 1)
		br.readers.Go(func() {
			for b := uint64(k); b < br.full; b += bundleReaders {
				var buf []byte
				select {
				case buf = <-br.free:
				case <-ctx.Done():
					return
				}
				data, err := readFileInto(filepath.Join(dir, filepath.FromSlash(ledger.EntriesPath(b, 0))), buf)
				if err != nil {
					br.free <- data
					data = nil
				}
				select {
				case br.out[k] <- fetched{data, err}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return br
}

// Fetch implements ledger.Fetcher.
func (br *bundleReader) Fetch(ctx context.Context, path string) ([]byte, error) {
	if br.next >= br.full || path != ledger.EntriesPath(br.next, 0) {
		return br.dir.Fetch(ctx, path)
	}
	if br.held != nil {
		br.free <- br.held
		br.held = nil
	}
	var f fetched
	select {
	case f = <-br.out[br.next%bundleReaders]:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	br.next++
	br.held = f.data
	return f.data, f.err
}

// close stops the readers and waits for them.
func (br *bundleReader) close() {
	br.stop()
	br.readers.Wait()
}

// readFileInto reads a file as os.ReadFile does, into buf if it is large
// enough.
func readFileInto(name string, buf []byte) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < ledger.TileWidth*(ledger.MaxEntrySize+2) {
		if n := int(fi.Size()) + 512; cap(buf) < n {
			buf = make([]byte, 0, n)
		}
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return buf, err
		}
	}
}
