package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/store"
)

// Errors a Receiver returns; the HTTP layer maps them to status codes.
var (
	// ErrGap: the batch does not start where the site's mirror ends. The
	// sender resumes from GapError.Size.
	ErrGap = errors.New("batch does not start at the site's size")
	// ErrQuota: the guest's quota at this site would be exceeded.
	ErrQuota = errors.New("guest quota exceeded")
	// ErrMissingBlob: a record references a chunk the site does not hold.
	ErrMissingBlob = errors.New("referenced blob chunk not held")
	// ErrSuspended: the host suspended the guest at this site.
	ErrSuspended = errors.New("guest suspended at this site")
	// ErrRefused wraps every failed check of what was sent: signature,
	// tree, encoding, object hash.
	ErrRefused = errors.New("refused")
)

// GapError carries the site's size with ErrGap.
type GapError struct{ Size uint64 }

func (e *GapError) Error() string { return fmt.Sprintf("%v: site holds %d entries", ErrGap, e.Size) }

// Unwrap makes errors.Is(err, ErrGap) hold.
func (e *GapError) Unwrap() error { return ErrGap }

// ReceiverOptions configure a Receiver: one guest's mirror at one site.
type ReceiverOptions struct {
	Charter *charter.Charter
	Site    string      // this site's id in the guest's charter
	Log     *ledger.Log // opened with Options.Mirror
	// Blobs is the guest's blob backend at this site; each registry's
	// objects live under registry.BlobPrefix(name).
	Blobs    store.Backend
	Cosigner *ledger.Cosigner // signs receipts (NewReceiptCosigner)
	Writers  Writers          // default HomeWriter
	// Quota is the most bytes (ledger plus blobs) the site holds for the
	// guest; 0 means none. Used is what it held at open.
	Quota, Used int64
	// Suspended, if set, refuses batches while it returns an error.
	Suspended func() error
	// Fence, if set, returns the epoch below which this site takes no
	// more batches, and why: an activation order it was shown before the
	// activated site's first batch reached it. A writer cut off from its
	// successor is thus refused the cosignatures its quorum writes wait
	// for, from the moment the activation begins.
	Fence func() (epoch uint64, why string)
	// Suspension, if set, returns the host's pending notice of suspension,
	// reported in State so that the writer records it in the ledger.
	Suspension func() []byte
	// Accepted, if set, is called after every batch made durable.
	Accepted func(*Batch)
	// Damaged, if set, is called when the stored right edge of Log is
	// found damaged and a batch or receipt refused for it: the site
	// repairs the edge from another site (guest.CheckLedger).
	Damaged func(error)
	// Stored, if set, returns damage the site found in the ledger it
	// stores below the right edge and has not yet repaired: no batch is
	// accepted and no receipt signed while it does.
	Stored func() error
	Logger *slog.Logger
}

// Receiver is the site side of replication for one guest: it checks what
// arrives and stores it, and signs receipts for what it holds. It holds no
// guest key: every check is against signatures and hashes.
type Receiver struct {
	opts  ReceiverOptions
	place Placement
	log   *slog.Logger

	accept sync.Mutex // one batch at a time: each is checked against the last
	used   atomic.Int64

	mu     sync.Mutex
	stores map[string]*store.Store

	stats struct {
		batches, entries, withheld, objects, objectBytes, batchBytes, refused atomic.Int64
	}
}

// NewReceiver returns a Receiver over an opened mirror.
func NewReceiver(o ReceiverOptions) (*Receiver, error) {
	if o.Charter == nil || o.Log == nil || o.Blobs == nil || o.Cosigner == nil {
		return nil, errors.New("replica: receiver needs a charter, a mirror ledger, a blob backend and a cosigner")
	}
	if _, ok := o.Charter.Site(o.Site); !ok {
		return nil, fmt.Errorf("replica: site %q is not in the charter of %s", o.Site, o.Charter.Guest.ID)
	}
	if o.Writers == nil {
		o.Writers = HomeWriter{o.Charter}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opts: o, place: Placement{o.Charter, o.Site}, log: o.Logger, stores: map[string]*store.Store{}}
	r.used.Store(o.Used)
	return r, nil
}

// Options returns the options the receiver was made with, defaults
// filled in.
func (r *Receiver) Options() ReceiverOptions { return r.opts }

// Placement is what the charter lets this site hold.
func (r *Receiver) Placement() Placement { return r.place }

// Used is the bytes the guest holds here.
func (r *Receiver) Used() int64 { return r.used.Load() }

// Log is the mirror.
func (r *Receiver) Log() *ledger.Log { return r.opts.Log }

// ReceiverStats count what a receiver took and refused since start.
type ReceiverStats struct {
	Batches, Entries, Withheld, Objects, ObjectBytes, BatchBytes, Refused int64
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	s := &r.stats
	return ReceiverStats{s.batches.Load(), s.entries.Load(), s.withheld.Load(), s.objects.Load(), s.objectBytes.Load(), s.batchBytes.Load(), s.refused.Load()}
}

// store returns the registry's keyless blob store, opening it on first use.
func (r *Receiver) store(ctx context.Context, reg string) (*store.Store, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[reg]; ok {
		return s, nil
	}
	s, err := store.Open(ctx, store.Prefixed(r.opts.Blobs, registry.BlobPrefix(reg)), store.Options{})
	if err != nil {
		return nil, fmt.Errorf("blob store of registry %s: %w", reg, err)
	}
	r.stores[reg] = s
	return s, nil
}

// Close releases the blob stores (the mirror is the caller's).
func (r *Receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, s := range r.stores {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("blob store of registry %s: %w", name, err))
		}
	}
	r.stores = map[string]*store.Store{}
	return errors.Join(errs...)
}

func (r *Receiver) reserve(n int64) error {
	if r.opts.Quota <= 0 {
		r.used.Add(n)
		return nil
	}
	for {
		u := r.used.Load()
		if err := r.room(u, n); err != nil {
			return err
		}
		if r.used.CompareAndSwap(u, u+n) {
			return nil
		}
	}
}

// Room says whether the guest's quota here has room for n more bytes now,
// without taking them: an error wrapping ErrQuota if not. Whoever brings
// much at once (an offline bundle) asks before it sends anything.
func (r *Receiver) Room(n int64) error { return r.room(r.used.Load(), n) }

func (r *Receiver) room(used, n int64) error {
	if r.opts.Quota > 0 && used+n > r.opts.Quota {
		return fmt.Errorf("%w: guest %s holds %d of its %d bytes at site %s; %d more do not fit",
			ErrQuota, r.opts.Charter.Guest.ID, used, r.opts.Quota, r.opts.Site, n)
	}
	return nil
}

// Usage measures what a guest holds at a site, as a Receiver counts it
// against the quota (ReceiverOptions.Used): its ledger's files and its
// blobs. The write-ahead log is left out: its segments are preallocated
// (64 MiB each, mostly zeros) and trimmed once their entries are in the
// tiles, which ledger.Open has just rewritten; counting them would charge
// a guest for space it does not use.
func Usage(ctx context.Context, ledgerDir string, blobs store.Backend) (int64, error) {
	var n int64
	err := filepath.WalkDir(ledgerDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "wal" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ledger %s: %w", ledgerDir, err)
	}
	err = blobs.List(ctx, "", func(_ string, size int64) error {
		n += size
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("blobs: %w", err)
	}
	return n, nil
}

// CheckSuspended returns an error wrapping ErrSuspended while the host
// suspends the guest at this site, nil otherwise.
func (r *Receiver) CheckSuspended() error {
	if r.opts.Suspended != nil {
		if err := r.opts.Suspended(); err != nil {
			return fmt.Errorf("%w: %v", ErrSuspended, err)
		}
	}
	return nil
}

func (r *Receiver) refused(err error) error {
	r.stats.refused.Add(1)
	r.log.Warn("replication refused", "guest", r.opts.Charter.Guest.ID, "err", err)
	return err
}

// checkRightEdge checks the mirror's stored right edge, and reports
// damage to Damaged; then what Stored reports.
func (r *Receiver) checkRightEdge() error {
	err := r.opts.Log.CheckRightEdge()
	if err != nil && r.opts.Damaged != nil && errors.Is(err, ledger.ErrDamaged) {
		r.opts.Damaged(err)
	}
	if err == nil && r.opts.Stored != nil {
		err = r.opts.Stored()
	}
	return err
}

// State reports where the mirror stands, with a fresh receipt for the
// newest checkpoint it holds.
func (r *Receiver) State(ctx context.Context) (*State, error) {
	st := &State{Guest: r.opts.Charter.Guest.ID, Site: r.opts.Site, Origin: r.opts.Charter.Guest.Origin,
		Size: r.opts.Log.MirrorSize(), Epoch: r.opts.Log.Epoch()}
	if r.opts.Suspension != nil {
		st.Suspension = r.opts.Suspension()
	}
	if r.opts.Fence != nil {
		if min, _ := r.opts.Fence(); min > st.Epoch {
			st.Fence = min
		}
	}
	signed, cp := r.opts.Log.Checkpoint()
	if signed == nil || !r.opts.Log.IsMirror() {
		// A receipt is a site's word that it holds the writer's tree. A
		// site that writes its own ledger (a home, an active embassy, one
		// fenced since) holds its own tree, which may have forked from
		// the writer's: it cosigns nothing. (A fenced old home reporting
		// its own longer, forked ledger as a receipt once let the new
		// writer believe the home held a failback order it never got.)
		return st, nil
	}
	if err := r.checkRightEdge(); err != nil {
		return nil, fmt.Errorf("no receipt: %w", err)
	}
	n, err := r.openCheckpoint(signed, cp.Epoch)
	if err != nil {
		return nil, fmt.Errorf("the mirror's own checkpoint: %w", err)
	}
	if st.Receipt, err = note.Sign(n, r.opts.Cosigner); err != nil {
		return nil, err
	}
	return st, nil
}

func (r *Receiver) openCheckpoint(signed []byte, epoch uint64) (*note.Note, error) {
	return openCheckpointWith(r.opts.Writers, r.opts.Charter.Guest.Origin, signed, epoch)
}

func openCheckpointWith(w Writers, origin string, signed []byte, epoch uint64) (*note.Note, error) {
	vs, err := w.Verifiers(epoch)
	if err != nil {
		return nil, err
	}
	_, n, err := ledger.OpenCheckpoint(signed, origin, vs)
	return n, err
}

// Quiesce returns once no batch is being checked or stored: one that
// began before a change of fence or suspension has finished.
func (r *Receiver) Quiesce() {
	r.accept.Lock()
	r.accept.Unlock() //nolint:staticcheck // an empty critical section is the point
}

// Accept checks a batch and stores it. It returns the receipt (the
// checkpoint cosigned by this site) when the batch reaches its checkpoint,
// and nil when it ended short of it.
func (r *Receiver) Accept(ctx context.Context, b *Batch) ([]byte, error) {
	if err := r.CheckSuspended(); err != nil {
		return nil, err
	}
	r.accept.Lock()
	defer r.accept.Unlock()
	// A damaged bundle at the right edge would be extended by this batch
	// and vouched for by its receipt: refuse until it is repaired.
	if err := r.checkRightEdge(); err != nil {
		return nil, r.refused(fmt.Errorf("%w: %w", ErrRefused, err))
	}
	if size := r.opts.Log.MirrorSize(); b.First != size {
		return nil, &GapError{Size: size}
	}
	cp, err := ledger.ParseSignedCheckpoint(b.Checkpoint)
	if err != nil {
		return nil, r.refused(fmt.Errorf("%w: checkpoint: %v", ErrRefused, err))
	}
	if r.opts.Fence != nil {
		if min, why := r.opts.Fence(); cp.Epoch < min {
			return nil, r.refused(fmt.Errorf("%w: %w: checkpoint of epoch %d, but this site is fenced from epoch %d on (%s)", ErrRefused, ledger.ErrStaleEpoch, cp.Epoch, min, why))
		}
	}
	// A batch may carry the order that opens the epoch its checkpoint is
	// in: a Learner checks those orders first, so the new writer's key is
	// known before its signature is checked.
	writers := r.opts.Writers
	learner, _ := writers.(Learner)
	if learner != nil {
		if writers, err = learner.Learn(b.First, b.Entries); err != nil {
			return nil, r.refused(fmt.Errorf("%w: %v", ErrRefused, err))
		}
	}
	n, err := openCheckpointWith(writers, r.opts.Charter.Guest.Origin, b.Checkpoint, cp.Epoch)
	if err != nil {
		return nil, r.refused(fmt.Errorf("%w: checkpoint of size %d, epoch %d: %v", ErrRefused, cp.Size, cp.Epoch, err))
	}
	var bytesIn int64
	var withheld int64
	for i, e := range b.Entries {
		idx := b.First + uint64(i)
		bytesIn += int64(len(e))
		reg, ok, rec, err := r.place.Entry(e)
		if err != nil {
			return nil, r.refused(fmt.Errorf("%w: entry %d: %v", ErrRefused, idx, err))
		}
		if e[1] == byte(ledger.TypeWithheld) {
			withheld++
		}
		if !ok {
			return nil, r.refused(fmt.Errorf("%w: entry %d: registry %s: the writer must send a withheld stub", ErrNotPlaced, idx, reg))
		}
		if rec == nil || len(rec.Chunks) == 0 {
			continue
		}
		st, err := r.store(ctx, reg)
		if err != nil {
			return nil, err
		}
		for _, id := range rec.Chunks {
			if !st.Has(id) {
				return nil, r.refused(fmt.Errorf("%w: entry %d of registry %s: chunk %x: ship its pack first", ErrMissingBlob, idx, reg, id[:8]))
			}
		}
	}
	if err := r.reserve(bytesIn); err != nil {
		return nil, r.refused(err)
	}
	if _, err := r.opts.Log.AppendMirrored(ctx, b.Entries, b.Checkpoint, b.Proof); err != nil {
		if len(b.Entries) > 0 && r.opts.Log.MirrorSize() >= b.End() {
			// Checked and queued; only the wait for the commit ended (the
			// sender went away). The mirror holds the batch: it counts
			// against the quota, is no refusal, and the sender resumes
			// from State past it.
			if learner != nil {
				learner.Commit(b.First, b.Entries, cp)
			}
			r.stats.batches.Add(1)
			r.stats.entries.Add(int64(len(b.Entries)))
			r.stats.withheld.Add(withheld)
			r.stats.batchBytes.Add(bytesIn)
			return nil, fmt.Errorf("batch %d–%d taken but not confirmed durable: %w", b.First, b.End()-1, err)
		}
		r.used.Add(-bytesIn)
		if errors.Is(err, ledger.ErrMirrorGap) {
			return nil, &GapError{Size: r.opts.Log.MirrorSize()}
		}
		// %w twice: fencing (ledger.ErrStaleEpoch) must stay visible.
		return nil, r.refused(fmt.Errorf("%w: %w", ErrRefused, err))
	}
	if learner != nil {
		learner.Commit(b.First, b.Entries, cp)
	}
	r.stats.batches.Add(1)
	r.stats.entries.Add(int64(len(b.Entries)))
	r.stats.withheld.Add(withheld)
	r.stats.batchBytes.Add(bytesIn)
	if r.opts.Accepted != nil {
		r.opts.Accepted(b)
	}
	if b.End() != cp.Size {
		return nil, nil
	}
	return note.Sign(n, r.opts.Cosigner)
}

// Missing returns the names, of those given, that the site does not hold.
func (r *Receiver) Missing(ctx context.Context, reg string, names []string) ([]string, error) {
	if !r.place.Registry(reg) {
		return nil, fmt.Errorf("%w: registry %s, site %s", ErrNotPlaced, reg, r.opts.Site)
	}
	st, err := r.store(ctx, reg)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		id, ok := store.ParsePackName(name)
		if !ok {
			return nil, fmt.Errorf("%w: %q is not a pack name", ErrRefused, name)
		}
		if !st.HasPack(id) {
			out = append(out, name)
		}
	}
	return out, nil
}

// PutObject stores a pack shipped for a registry, after checking that its
// bytes hash to its name and that it parses as a pack.
func (r *Receiver) PutObject(ctx context.Context, reg, name string, data []byte) error {
	if !r.place.Registry(reg) {
		return r.refused(fmt.Errorf("%w: registry %s, site %s", ErrNotPlaced, reg, r.opts.Site))
	}
	id, ok := store.ParsePackName(name)
	if !ok {
		return r.refused(fmt.Errorf("%w: %q is not a pack name", ErrRefused, name))
	}
	st, err := r.store(ctx, reg)
	if err != nil {
		return err
	}
	if st.HasPack(id) {
		return nil
	}
	if err := r.reserve(int64(len(data))); err != nil {
		return r.refused(err)
	}
	// SavePack checks hash, trailer and header before a byte is stored.
	if err := st.SavePack(ctx, name, data); err != nil {
		r.used.Add(-int64(len(data)))
		if errors.Is(err, store.ErrBadPack) {
			return r.refused(fmt.Errorf("%w: registry %s: %v", ErrRefused, reg, err))
		}
		return fmt.Errorf("registry %s: %w", reg, err)
	}
	if err := st.Flush(ctx); err != nil {
		return fmt.Errorf("registry %s: index after %s: %w", reg, name, err)
	}
	r.stats.objects.Add(1)
	r.stats.objectBytes.Add(int64(len(data)))
	return nil
}

// Locate names the packs holding chunks, for a site catching up from this
// one.
func (r *Receiver) Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error) {
	if !r.place.Registry(reg) {
		return nil, fmt.Errorf("%w: registry %s, site %s", ErrNotPlaced, reg, r.opts.Site)
	}
	st, err := r.store(ctx, reg)
	if err != nil {
		return nil, err
	}
	return locate(st, reg, ids)
}

// Object reads a pack, for a site catching up from this one.
func (r *Receiver) Object(ctx context.Context, reg, name string) ([]byte, error) {
	if !r.place.Registry(reg) {
		return nil, fmt.Errorf("%w: registry %s, site %s", ErrNotPlaced, reg, r.opts.Site)
	}
	if _, ok := store.ParsePackName(name); !ok {
		return nil, fmt.Errorf("%w: %q is not a pack name", ErrRefused, name)
	}
	return readObject(ctx, store.Prefixed(r.opts.Blobs, registry.BlobPrefix(reg)), name)
}

func readObject(ctx context.Context, be store.Backend, name string) ([]byte, error) {
	// The size sizes the buffer once: grown from empty, a 16 MiB pack
	// was reallocated and cleared a dozen times, which cost more CPU than
	// hashing and storing it. It is only a hint: the object is read to
	// its end whatever it holds, and its hash is checked by the caller.
	size, err := be.Stat(ctx, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("object %s: %w", name, fs.ErrNotExist)
		}
		return nil, err
	}
	rc, err := be.Load(ctx, name, 0, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("object %s: %w", name, fs.ErrNotExist)
		}
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if size > 0 && size <= MaxObjectBytes {
		// MinRead more, so that reading the end needs no growth either.
		buf.Grow(int(size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// locate maps chunk ids to the distinct packs that hold them.
func locate(st *store.Store, reg string, ids []store.ID) ([]string, error) {
	seen := map[store.PackID]bool{}
	var out []string
	for _, id := range ids {
		p, ok := st.Locate(id)
		if !ok {
			return nil, fmt.Errorf("registry %s: chunk %x is in no durable pack", reg, id[:8])
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, store.PackName(p))
		}
	}
	return out, nil
}
