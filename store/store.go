package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Sealer is the only place keys enter the store. seal.BlobKeys implements
// it; the store never sees a key.
type Sealer interface {
	// ChunkID is a keyed hash of the plaintext: the dedup key. Keyed, so
	// that a host cannot confirm a guess about content from an id.
	ChunkID(plaintext []byte) [32]byte
	// Seal encrypts with the id as additional data, binding ciphertext to
	// its name. It must not retain data.
	Seal(id [32]byte, data []byte) ([]byte, error)
	// Open reverses Seal and fails on any change to sealed or id.
	Open(id [32]byte, sealed []byte) ([]byte, error)
}

// ErrReadOnly is returned (wrapped) by Put on a Store opened without
// Options.Chunking.
var ErrReadOnly = errors.New("store opened without chunking: read-only, keyless")

// Options tune a Store.
type Options struct {
	// Chunking decides chunk boundaries, so it must stay the same for the
	// life of the store (and across the sites that replicate it) or dedup
	// is lost; and it should be secret, so that chunk sizes do not
	// fingerprint a known document. A deployment derives it from guest key
	// material with ChunkingFromSeed; it is never written to the backend.
	//
	// Nil opens the store read-only and keyless, as an embassy site in
	// standby holds it: it cannot derive the chunking, because it holds no
	// guest key. Put then fails with ErrReadOnly; Get and Check work for a
	// caller with a Sealer; AdoptPack, Has, Locate, Packs and Flush work
	// without one (Flush writes index objects for adopted packs, never a
	// chunk). A writer that forgets Chunking finds out at its first Put,
	// with ErrReadOnly in the error.
	Chunking *Chunking
	// PackSize is the size at which a pack is closed and uploaded
	// (default 16 MiB). Larger packs mean fewer objects and requests;
	// memory grows with PackSize × (Uploads + 1).
	PackSize int
	// Workers hash, compress and seal in parallel (default GOMAXPROCS).
	Workers int
	// Uploads bounds packs being uploaded at once (default 4, so that
	// several fsyncs or PUTs overlap). When all
	// slots are busy, Put waits: that is the back-pressure that bounds
	// memory.
	Uploads int
	// Level is the zstd level (default zstd.SpeedFastest: on two cores the
	// better levels cost more throughput than the space they save on
	// scanned documents, which are mostly JPEG/JBIG2 already).
	Level zstd.EncoderLevel
}

// Store is safe for concurrent use by several goroutines.
type Store struct {
	be   Backend
	opts Options
	idx  *index
	dec  *zstd.Decoder

	// bufs and encs are bounded pools: a token is a buffer or encoder, nil
	// until first use. Their capacity caps memory across concurrent Puts.
	bufs chan []byte
	encs chan *encoder

	mu  sync.Mutex // guards cur
	cur *pendingPack

	uploadSlots chan struct{}
	// packBufs recycles pack buffers: allocating (and zeroing) 24 MiB per
	// pack cost ~5% of ingest CPU.
	packBufs chan []byte

	inflightMu   sync.Mutex
	inflightCond *sync.Cond
	inflight     int

	errMu sync.Mutex
	err   error // first upload failure, until the packs in failedPacks are saved
	// failedPacks are packs whose upload failed (a full disk, a backend
	// down). Their chunks stay readable from memory, as pending, and are
	// uploaded again before the next Put or Flush: the failure is not
	// sticky, so a store recovers by itself once the backend takes writes.
	failedPacks []*pendingPack
	retryMu     sync.Mutex // one retry at a time: a second waits for the first's outcome
	closed      bool

	// problems found at Open (bad index objects or pack tails); Check
	// reports them.
	openProblems []error
}

const (
	chunkFlagRaw  = 0
	chunkFlagZstd = 1
	defPackSize   = 16 << 20
	minPackSize   = 4 << 10
)

// Open loads the index from the backend's index objects, then reads the
// header of every pack no index object covers (a crash after a pack upload
// but before its index, or an index object that failed its hash). It needs
// no key: index and pack headers hold only keyed ids and sizes. Without
// Options.Chunking the store is opened read-only (see Options.Chunking).
func Open(ctx context.Context, be Backend, opts Options) (*Store, error) {
	if opts.PackSize == 0 {
		opts.PackSize = defPackSize
	}
	if opts.PackSize < minPackSize || opts.PackSize > maxPackSize/2 {
		return nil, fmt.Errorf("store: open: PackSize %d outside [%d, %d]", opts.PackSize, minPackSize, maxPackSize/2)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Uploads <= 0 {
		opts.Uploads = 4
	}
	if opts.Level == 0 {
		opts.Level = zstd.SpeedFastest
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(opts.Workers),
		zstd.WithDecoderMaxMemory(MaxChunk+1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("store: open: zstd decoder: %w", err)
	}
	s := &Store{
		be:          be,
		opts:        opts,
		idx:         newIndex(),
		dec:         dec,
		bufs:        make(chan []byte, 2*opts.Workers+2),
		encs:        make(chan *encoder, 2*opts.Workers),
		uploadSlots: make(chan struct{}, opts.Uploads),
		packBufs:    make(chan []byte, opts.Uploads+1),
	}
	s.inflightCond = sync.NewCond(&s.inflightMu)
	for range cap(s.bufs) {
		s.bufs <- nil
	}
	for range cap(s.encs) {
		s.encs <- nil
	}
	if err := s.loadIndex(ctx); err != nil {
		dec.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) loadIndex(ctx context.Context) error {
	covered := map[PackID]bool{}
	var names []string
	err := s.be.List(ctx, "index/", func(name string, _ int64) error {
		names = append(names, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: open: list index objects: %w", err)
	}
	for _, name := range names {
		groups, err := s.readIndexObject(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.openProblems = append(s.openProblems, err)
			continue
		}
		for _, g := range groups {
			covered[g.pack] = true
			s.idx.addPack(g, false)
		}
	}
	type packInfo struct {
		id   PackID
		name string
		size int64
	}
	var uncovered []packInfo
	err = s.be.List(ctx, "data/", func(name string, size int64) error {
		id, ok := parseObjectName("data", name)
		if !ok {
			s.openProblems = append(s.openProblems, fmt.Errorf("store: backend object %s is not a pack name", name))
			return nil
		}
		if !covered[id] {
			uncovered = append(uncovered, packInfo{id, name, size})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: open: list packs: %w", err)
	}
	for _, p := range uncovered {
		entries, err := s.readPackHeader(ctx, p.name, p.size)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.openProblems = append(s.openProblems, err)
			continue
		}
		// Unsaved: the next Flush writes an index object for it.
		s.idx.addPack(packEntries{pack: p.id, entries: entries}, true)
	}
	return nil
}

func (s *Store) readIndexObject(ctx context.Context, name string) ([]packEntries, error) {
	want, ok := parseObjectName("index", name)
	if !ok {
		return nil, fmt.Errorf("store: backend object %s is not an index name", name)
	}
	data, err := loadAll(ctx, s.be, name, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("store: read index object %s: %w", name, err)
	}
	if sha256.Sum256(data) != want {
		return nil, fmt.Errorf("store: index object %s: content does not match its name", name)
	}
	groups, err := parseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("store: index object %s: %w", name, err)
	}
	return groups, nil
}

func (s *Store) readPackHeader(ctx context.Context, name string, size int64) ([]packEntry, error) {
	return readPackHeader(ctx, s.be, name, size)
}

// readPackHeader reads a pack's trailer and header from be (two range
// reads) and parses them.
func readPackHeader(ctx context.Context, be Backend, name string, size int64) ([]packEntry, error) {
	if size < int64(packTrailerLen) {
		return nil, fmt.Errorf("store: pack %s: %d bytes, too short for a trailer", name, size)
	}
	trailer, err := loadAll(ctx, be, name, size-int64(packTrailerLen), int64(packTrailerLen))
	if err != nil {
		return nil, fmt.Errorf("store: pack %s: read trailer: %w", name, err)
	}
	count, hsum, err := parsePackTrailer(trailer, size)
	if err != nil {
		return nil, fmt.Errorf("store: pack %s: %w", name, err)
	}
	hlen := int64(count) * packEntryLen
	header := []byte{}
	if hlen > 0 {
		header, err = loadAll(ctx, be, name, size-int64(packTrailerLen)-hlen, hlen)
		if err != nil {
			return nil, fmt.Errorf("store: pack %s: read header: %w", name, err)
		}
	}
	entries, err := parsePackHeader(header, hsum, count, size)
	if err != nil {
		return nil, fmt.Errorf("store: pack %s: %w", name, err)
	}
	return entries, nil
}

func loadAll(ctx context.Context, be Backend, name string, off, length int64) ([]byte, error) {
	rc, err := be.Load(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if length > 0 {
		buf := make([]byte, length)
		if _, err := io.ReadFull(rc, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(rc)
}

// failed is the store's error: closed, or a pack upload that failed and
// fails again now (retryFailed).
func (s *Store) failed(ctx context.Context) error {
	s.errMu.Lock()
	closed, retry := s.closed, len(s.failedPacks) > 0
	err := s.err
	s.errMu.Unlock()
	if closed {
		return errors.New("store: closed")
	}
	if retry {
		return s.retryFailed(ctx)
	}
	return err
}

// encoder pairs a zstd encoder with the scratch buffer it compresses
// into, so both are reused across Puts instead of regrown per chunk.
type encoder struct {
	sample  []byte // scratch for incompressible's samples
	z       *zstd.Encoder
	scratch []byte
}

// chunk is one piece of the input stream on its way to a worker.
type chunk struct {
	seq  int
	buf  []byte // pooled buffer backing data
	data []byte
}

// Put stores everything read from r and returns the Ref to read it back.
//
// Chunking is sequential (a rolling hash over one stream); hashing,
// compressing and sealing run on Options.Workers goroutines; full packs are
// uploaded in the background so chunking does not wait for the disk or the
// network unless Options.Uploads packs are already in flight. After Put
// returns, Get can read the data at once; it is durable after Flush.
//
// On a store opened without Options.Chunking, Put fails with ErrReadOnly.
func (s *Store) Put(ctx context.Context, sl Sealer, r io.Reader) (Ref, error) {
	if s.opts.Chunking == nil {
		return Ref{}, fmt.Errorf("store: put: %w (pass Options.Chunking, from ChunkingFromSeed, to write)", ErrReadOnly)
	}
	if err := s.failed(ctx); err != nil {
		return Ref{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		idsMu sync.Mutex
		ids   []ID
		wg    sync.WaitGroup
	)
	work := make(chan chunk, s.opts.Workers)
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if ctx.Err() != nil {
					s.bufs <- c.buf
					continue
				}
				id, err := s.storeChunk(ctx, sl, c.data)
				s.bufs <- c.buf
				if err != nil {
					cancel(err)
					continue
				}
				idsMu.Lock()
				ids[c.seq] = id
				idsMu.Unlock()
			}
		}()
	}

	ch := s.opts.Chunking.newSplitter(r)
	var size int64
	var readErr error
	for seq := 0; ; seq++ {
		var buf []byte
		select {
		case buf = <-s.bufs:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			if buf != nil {
				s.bufs <- buf
			}
			break
		}
		if buf == nil {
			buf = make([]byte, MaxChunk)
		}
		data, err := ch.next(buf)
		if err == io.EOF {
			s.bufs <- buf
			break
		}
		if err != nil {
			s.bufs <- buf
			readErr = fmt.Errorf("store: put: read input: %w", err)
			break
		}
		size += int64(len(data))
		idsMu.Lock()
		ids = append(ids, ID{})
		idsMu.Unlock()
		work <- chunk{seq: seq, buf: buf, data: data}
	}
	close(work)
	wg.Wait()
	if readErr != nil {
		return Ref{}, readErr
	}
	if err := context.Cause(ctx); err != nil {
		return Ref{}, err
	}
	return Ref{Size: size, Chunks: ids}, nil
}

// storeChunk hashes one chunk and, unless it is already stored, compresses,
// seals and packs it.
func (s *Store) storeChunk(ctx context.Context, sl Sealer, data []byte) (ID, error) {
	id := sl.ChunkID(data)
	for {
		res, wait := s.idx.reserve(id)
		switch res {
		case reserveHave:
			return id, nil
		case reserveWait:
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return id, context.Cause(ctx)
			}
		}
		break
	}
	enc := <-s.encs
	if enc == nil {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(s.opts.Level), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			s.encs <- nil
			s.idx.unreserve(id)
			return id, fmt.Errorf("store: put: zstd encoder: %w", err)
		}
		enc = &encoder{z: z}
	}
	defer func() { s.encs <- enc }()
	// The flag byte sits inside the sealed payload, so the host does not
	// learn which chunks compressed.
	// The payload is padded (pad.go): header, body, zeros.
	var scratch []byte
	if incompressible(enc, data) {
		scratch = append(appendPaddedHeader(enc.scratch[:0], chunkFlagRaw), data...)
	} else {
		scratch = appendPaddedHeader(enc.scratch[:0], chunkFlagZstd)
		scratch = enc.z.EncodeAll(data, scratch)
		if len(scratch)-paddedHeaderLen >= len(data) {
			scratch = append(appendPaddedHeader(scratch[:0], chunkFlagRaw), data...)
		}
	}
	scratch = finishPadded(scratch)
	enc.scratch = scratch
	sealed, err := sl.Seal(id, scratch)
	if err != nil {
		s.idx.unreserve(id)
		return id, fmt.Errorf("store: put: seal blob %x: %w", id, err)
	}
	s.addToPack(ctx, id, sealed)
	return id, nil
}

// incompressible reports whether a chunk is very likely not worth
// compressing, judged by compressing three 4 KiB samples: scanned deeds are
// mostly JPEG or JBIG2 already, and compressing them whole cost a third of
// the ingest's CPU for nothing. A wrong guess costs only space.
func incompressible(enc *encoder, data []byte) bool {
	const sample = 4 << 10
	if len(data) < 16*sample {
		return false
	}
	in, out := 0, 0
	for _, off := range []int{0, len(data)/2 - sample/2, len(data) - sample} {
		enc.sample = enc.z.EncodeAll(data[off:off+sample], enc.sample[:0])
		in, out = in+sample, out+len(enc.sample)
	}
	return out > in*97/100
}

func (s *Store) addToPack(ctx context.Context, id ID, sealed []byte) {
	s.mu.Lock()
	if s.cur == nil {
		var buf []byte
		select {
		case buf = <-s.packBufs:
		default:
			// Room for one maximal chunk past PackSize, so the buffer is
			// never copied to grow.
			buf = make([]byte, 0, s.opts.PackSize+maxSealedLen+packTrailerLen)
		}
		s.cur = &pendingPack{b: packBuilder{data: buf[:0]}}
	}
	pb := s.cur
	pb.mu.Lock()
	e := pb.b.add(id, sealed)
	full := len(pb.b.data) >= s.opts.PackSize
	pb.mu.Unlock()
	s.idx.setPending(id, pb, e)
	if full {
		s.cur = nil
	}
	s.mu.Unlock()
	if full {
		s.upload(ctx, pb)
	}
}

// upload waits for a free slot, then writes the pack in the background.
// Waiting here, outside s.mu, is the back-pressure on Put.
func (s *Store) upload(ctx context.Context, pb *pendingPack) {
	s.inflightMu.Lock()
	s.inflight++
	s.inflightMu.Unlock()
	// No escape on ctx.Done: the pack has to reach the backend for the
	// other Puts that deduplicated against its chunks.
	s.uploadSlots <- struct{}{}
	go func() {
		defer func() {
			<-s.uploadSlots
			s.inflightMu.Lock()
			s.inflight--
			s.inflightCond.Broadcast()
			s.inflightMu.Unlock()
		}()
		// Uploads outlive the Put that filled the pack: its chunks may be
		// shared with other Puts, so one caller's cancellation must not
		// lose them.
		uctx := context.WithoutCancel(ctx)
		if err := s.savePack(uctx, pb); err != nil {
			s.errMu.Lock()
			s.failedPacks = append(s.failedPacks, pb)
			if s.err == nil {
				s.err = err
			}
			s.errMu.Unlock()
		}
	}()
}

// savePack finishes pb (once) and saves it to the backend.
func (s *Store) savePack(ctx context.Context, pb *pendingPack) error {
	pb.mu.Lock()
	if !pb.finished {
		pb.pid, pb.finished = pb.b.finish(), true
	}
	pid := pb.pid
	data := pb.b.data
	entries := pb.b.entries
	pb.mu.Unlock()
	name := PackName(pid)
	if err := s.be.Save(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("store: save pack %s: %w", name, err)
	}
	s.idx.commit(packEntries{pack: pid, entries: entries})
	// Readers that found this pack pending before the commit see
	// data == nil and look the chunk up again (now durable), so the
	// buffer can be reused.
	pb.mu.Lock()
	pb.b.data = nil
	pb.mu.Unlock()
	select {
	case s.packBufs <- data[:0]:
	default:
	}
	return nil
}

// retryFailed uploads again the packs whose upload failed, and clears
// the store's error once all are saved.
func (s *Store) retryFailed(ctx context.Context) error {
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	s.errMu.Lock()
	pbs := s.failedPacks
	s.failedPacks = nil
	s.errMu.Unlock()
	var err error
	var still []*pendingPack
	for _, pb := range pbs {
		if err == nil {
			err = s.savePack(ctx, pb)
		}
		if err != nil {
			still = append(still, pb)
		}
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	s.failedPacks = append(still, s.failedPacks...)
	if len(s.failedPacks) == 0 {
		s.err = nil
	} else if err != nil {
		s.err = err
	}
	return err
}

// Flush makes every chunk of every Put that returned before Flush was
// called durable, and writes an index object for the packs not yet covered
// by one.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.failed(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	pb := s.cur
	s.cur = nil
	s.mu.Unlock()
	if pb != nil {
		s.upload(ctx, pb)
	}
	s.inflightMu.Lock()
	for s.inflight > 0 {
		s.inflightCond.Wait()
	}
	s.inflightMu.Unlock()
	if err := s.failed(ctx); err != nil {
		return err
	}
	groups := s.idx.takeUnsaved()
	if len(groups) == 0 {
		return nil
	}
	name, data := indexObject(groups)
	if err := s.be.Save(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		s.idx.putBack(groups)
		return fmt.Errorf("store: flush: save index object %s: %w", name, err)
	}
	return nil
}

// Close flushes and releases the store. The Store is unusable afterwards.
func (s *Store) Close() error {
	err := s.Flush(context.Background())
	s.errMu.Lock()
	s.closed = true
	s.errMu.Unlock()
	s.dec.Close()
	return err
}

// Get writes the content of ref to w. Every chunk is opened with its id as
// additional data, decompressed and hashed again; any mismatch is an error
// naming the blob and the pack, and nothing after the bad chunk is written.
func (s *Store) Get(ctx context.Context, sl Sealer, ref Ref, w io.Writer) error {
	if err := ref.validate(); err != nil {
		return err
	}
	s.errMu.Lock()
	closed := s.closed
	s.errMu.Unlock()
	if closed {
		return errors.New("store: get: closed")
	}
	var total int64
	for _, id := range ref.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := s.readChunk(ctx, sl, id)
		if err != nil {
			return err
		}
		total += int64(len(data))
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("store: get: write blob %x: %w", id, err)
		}
	}
	if total != ref.Size {
		return fmt.Errorf("store: get: chunks hold %d bytes, ref says %d", total, ref.Size)
	}
	return nil
}

// readChunk fetches, opens and verifies one chunk.
func (s *Store) readChunk(ctx context.Context, sl Sealer, id ID) ([]byte, error) {
	var (
		pack PackID
		l    loc
	)
	for {
		var pend *pendingLoc
		var ok bool
		pack, l, pend, ok = s.idx.lookup(id)
		if !ok {
			return nil, fmt.Errorf("store: blob %x: not in the index: %w", id, iofs.ErrNotExist)
		}
		if pend == nil {
			break
		}
		pend.pb.mu.Lock()
		var sealed []byte
		if pend.pb.b.data != nil {
			sealed = bytes.Clone(pend.pb.b.data[pend.off : pend.off+pend.length])
		}
		pend.pb.mu.Unlock()
		if sealed != nil {
			return s.openChunk(sl, id, sealed, "unflushed pack")
		}
		// The pack became durable between lookup and copy: look again.
	}
	if l.length > maxSealedLen {
		// Only a forged index gets here; refuse before allocating.
		return nil, fmt.Errorf("store: blob %x in pack %s: indexed length %d exceeds any sealed chunk", id, PackName(pack), l.length)
	}
	where := "pack " + PackName(pack)
	sealed, err := loadAll(ctx, s.be, PackName(pack), int64(l.off), int64(l.length))
	if err != nil {
		return nil, fmt.Errorf("store: blob %x in %s at %d+%d: %w", id, where, l.off, l.length, err)
	}
	return s.openChunk(sl, id, sealed, where)
}

func (s *Store) openChunk(sl Sealer, id ID, sealed []byte, where string) ([]byte, error) {
	plain, err := sl.Open(id, sealed)
	if err != nil {
		return nil, fmt.Errorf("store: blob %x in %s: open: %w", id, where, err)
	}
	flag, data, err := unpadPayload(plain)
	if err != nil {
		return nil, fmt.Errorf("store: blob %x in %s: %w", id, where, err)
	}
	if flag == chunkFlagZstd {
		data, err = s.dec.DecodeAll(data, nil)
		if err != nil {
			return nil, fmt.Errorf("store: blob %x in %s: decompress: %w", id, where, err)
		}
	}
	if sl.ChunkID(data) != id {
		return nil, fmt.Errorf("store: blob %x in %s: content does not hash to its id", id, where)
	}
	return data, nil
}

// Stats are counts a host may see anyway.
type Stats struct {
	Chunks int
	Packs  int
}

// Stats returns the number of indexed chunks and packs.
func (s *Store) Stats() Stats {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return Stats{Chunks: len(s.idx.byID), Packs: len(s.idx.packs)}
}
