package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// Source is where a shipper reads the guest's ledger and blobs: the
// writer's own state, or another site that already holds them.
type Source interface {
	// Next waits until the source publishes a checkpoint larger than size
	// and returns it, signed.
	Next(ctx context.Context, size uint64) ([]byte, ledger.Checkpoint, error)
	// Fetcher reads the source's tiles and entry bundles.
	Fetcher() ledger.Fetcher
	// Locate names the packs, in a registry, holding the chunks.
	Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error)
	// Object reads a pack.
	Object(ctx context.Context, reg, name string) ([]byte, error)
}

// Sink is a site that receives: a Remote over HTTP, or a local Receiver.
type Sink interface {
	State(ctx context.Context) (*State, error)
	Missing(ctx context.Context, reg string, names []string) ([]string, error)
	PutObject(ctx context.Context, reg, name string, data []byte) error
	Accept(ctx context.Context, b *Batch) ([]byte, error)
}

// LocalSource is the writer's own ledger and blob stores.
type LocalSource struct {
	Log   *ledger.Log
	Blobs func(registry string) (*store.Store, error)
	// Backend is the guest's blob backend (registries under BlobPrefix).
	Backend store.Backend
}

// Next implements Source.
func (s LocalSource) Next(ctx context.Context, size uint64) ([]byte, ledger.Checkpoint, error) {
	return s.Log.WaitPublished(ctx, size+1)
}

// Fetcher implements Source.
func (s LocalSource) Fetcher() ledger.Fetcher { return ledger.DirFetcher(s.Log.Dir()) }

// Locate implements Source.
func (s LocalSource) Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error) {
	st, err := s.Blobs(reg)
	if err != nil {
		return nil, err
	}
	return locate(st, reg, ids)
}

// Object implements Source.
func (s LocalSource) Object(ctx context.Context, reg, name string) ([]byte, error) {
	return readObject(ctx, store.Prefixed(s.Backend, registry.BlobPrefix(reg)), name)
}

// ShipperOptions configure a Shipper.
type ShipperOptions struct {
	Charter *charter.Charter
	Site    string // the receiving site
	Source  Source
	Sink    Sink
	Tracker *Tracker
	Writers Writers // default HomeWriter
	// MaxBatchEntries and MaxBatchBytes bound one batch (defaults 16384
	// and 8 MiB): the unit of backpressure, since one batch per site is in
	// flight at a time.
	MaxBatchEntries int
	MaxBatchBytes   int
	// BlobParallel is how many packs upload at once (default 4).
	BlobParallel int
	// BytesPerSecond limits the bandwidth used toward the site (0: none).
	BytesPerSecond int64
	// Backoff bounds the pause between attempts after an error (default
	// 50ms doubling to 5s, with jitter).
	MinBackoff, MaxBackoff time.Duration
	// OnSuspension, if set, receives a host's notice of suspension that
	// the site reports, for the writer to check and record in the ledger.
	OnSuspension func(ctx context.Context, site string, notice []byte) error
	// OnState, if set, sees every state a site reports: where a writer
	// learns that a newer epoch exists, and fences itself.
	OnState func(site string, st *State)
	// OuterKey, if set, gives a site's outer key (nil for a site without
	// one, the home): packs are shipped with the source site's layer
	// stripped and the receiving site's added, so that each site's copy
	// of the attachments can be shredded on its own. It is asked at ship
	// time (an activated site has its keys only once unsealed); an error
	// holds blobs back until it resolves.
	OuterKey func(site string) (*seal.SiteKey, error)
	// SourceSite is the site whose packs the source reads (its outer
	// layer is the one stripped).
	SourceSite string
	Logger     *slog.Logger
}

// Shipper keeps one site current from one source: it resumes from the
// site's own state, ships the blobs a batch references before the batch,
// withholds entries of registries the site may not hold, and records each
// receipt. It never holds more than one batch in flight, so a slow site
// slows only its own shipper.
type Shipper struct {
	opts ShipperOptions
	// rewrapped maps a source pack name to the name of its rewrapped copy
	// for this site (OuterKey).
	rwMu      sync.Mutex
	rewrapped map[string]string
	builder   BatchBuilder
	limiter   *rate.Limiter
	log       *slog.Logger
}

// NewShipper checks the options and returns a shipper; Run starts it.
func NewShipper(o ShipperOptions) (*Shipper, error) {
	if o.Charter == nil || o.Source == nil || o.Sink == nil || o.Tracker == nil {
		return nil, errors.New("replica: shipper needs a charter, a source, a sink and a tracker")
	}
	if _, ok := o.Charter.Site(o.Site); !ok {
		return nil, fmt.Errorf("replica: site %q is not in the charter of %s", o.Site, o.Charter.Guest.ID)
	}
	if o.Writers == nil {
		o.Writers = HomeWriter{o.Charter}
	}
	if o.MaxBatchEntries <= 0 {
		o.MaxBatchEntries = 16384
	}
	if o.MaxBatchBytes <= 0 || o.MaxBatchBytes > MaxBatchBytes-maxCheckpoint-64*32 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.BlobParallel <= 0 {
		o.BlobParallel = 4
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := o.Source.Fetcher()
	s := &Shipper{opts: o, log: o.Logger.With("to_site", o.Site), rewrapped: map[string]string{},
		builder: BatchBuilder{Fetcher: f, Prover: ledger.NewProver(f, 0), Place: Placement{o.Charter, o.Site},
			MaxEntries: o.MaxBatchEntries, MaxBytes: o.MaxBatchBytes}}
	if o.BytesPerSecond > 0 {
		// A burst of one pack lets a 16 MiB pack through in one wait.
		s.limiter = rate.NewLimiter(rate.Limit(o.BytesPerSecond), 32<<20)
	}
	return s, nil
}

// Run ships until ctx ends, reconnecting after every error with backoff.
func (s *Shipper) Run(ctx context.Context) error {
	backoff := s.opts.MinBackoff
	for {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.opts.Tracker.Contact(s.opts.Site, err)
		s.log.Warn("replication interrupted; resuming from the site's receipt", "err", err, "backoff", backoff)
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
		if err == nil {
			backoff = s.opts.MinBackoff
		}
	}
}

// stateEvery is how often an idle shipper asks the site for its state
// anyway: a host's notice of suspension, or a site restored from backup,
// must not wait for the next write to be noticed.
const stateEvery = 10 * time.Second

// session resumes from the site's state and ships until an error.
func (s *Shipper) session(ctx context.Context) error {
	st, err := s.state(ctx)
	if err != nil {
		return err
	}
	size := st.Size
	lastState := time.Now()
	for {
		if time.Since(lastState) >= stateEvery {
			// Also under a steady stream of writes, where Next never
			// times out.
			if _, err := s.state(ctx); err != nil {
				return err
			}
			lastState = time.Now()
		}
		nctx, cancel := context.WithTimeout(ctx, stateEvery)
		signed, cp, err := s.opts.Source.Next(nctx, size)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			st, err := s.state(ctx)
			if err != nil {
				return err
			}
			lastState = time.Now()
			if st.Size != size {
				s.log.Info("site is elsewhere than expected; resuming there", "expected", size, "site_size", st.Size)
				size = st.Size
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		for size < cp.Size {
			next, err := s.ship(ctx, size, signed, cp)
			var gap *GapError
			if errors.As(err, &gap) {
				s.log.Info("site is elsewhere than expected; resuming there", "expected", size, "site_size", gap.Size)
				size = gap.Size
				if size > cp.Size {
					break
				}
				continue
			}
			if err != nil {
				return err
			}
			size = next
		}
	}
}

// state asks the site where it stands and takes in what it reports: its
// receipt, and a host's notice of suspension.
func (s *Shipper) state(ctx context.Context) (*State, error) {
	st, err := s.opts.Sink.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("state of site %s: %w", s.opts.Site, err)
	}
	if st.Origin != s.opts.Charter.Guest.Origin {
		return nil, fmt.Errorf("site %s holds origin %q, not %q", s.opts.Site, st.Origin, s.opts.Charter.Guest.Origin)
	}
	s.opts.Tracker.Contact(s.opts.Site, nil)
	if s.opts.OnState != nil {
		s.opts.OnState(s.opts.Site, st)
	}
	if len(st.Suspension) > 0 && s.opts.OnSuspension != nil {
		if err := s.opts.OnSuspension(ctx, s.opts.Site, st.Suspension); err != nil {
			s.log.Error("site reports a notice of suspension that cannot be recorded", "err", err)
		}
	}
	if len(st.Receipt) > 0 {
		if err := s.receipt(st.Receipt); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// ship sends one batch starting at from toward checkpoint cp and returns
// where the next starts.
func (s *Shipper) ship(ctx context.Context, from uint64, signed []byte, cp ledger.Checkpoint) (uint64, error) {
	bb, err := s.builder.Build(ctx, from, signed, cp)
	if err != nil {
		return from, err
	}
	for reg, ids := range bb.Need {
		if err := s.shipBlobs(ctx, reg, ids); err != nil {
			return from, err
		}
	}
	if err := s.wait(ctx, bb.Bytes); err != nil {
		return from, err
	}
	b := bb.Batch
	receipt, err := s.opts.Sink.Accept(ctx, b)
	if err != nil {
		return from, fmt.Errorf("batch %d–%d to site %s: %w", b.First, b.End()-1, s.opts.Site, err)
	}
	s.opts.Tracker.Sent(s.opts.Site, int64(bb.Bytes), 1, 0)
	if receipt != nil {
		if err := s.receipt(receipt); err != nil {
			return from, err
		}
	}
	return b.End(), nil
}

func (s *Shipper) receipt(signed []byte) error {
	cp, at, err := OpenReceipt(s.opts.Charter, s.opts.Writers, s.opts.Site, signed)
	if err != nil {
		return err
	}
	s.opts.Tracker.Received(s.opts.Site, cp.Size, at, signed)
	return nil
}

// shipBlobs makes sure the site holds the packs of the chunks: it asks
// which are missing and uploads those, BlobParallel at a time.
func (s *Shipper) shipBlobs(ctx context.Context, reg string, ids []store.ID) error {
	names, err := s.opts.Source.Locate(ctx, reg, ids)
	if err != nil {
		return fmt.Errorf("locate blobs of registry %s: %w", reg, err)
	}
	if s.opts.OuterKey != nil {
		return s.shipRewrapped(ctx, reg, names)
	}
	missing, err := s.opts.Sink.Missing(ctx, reg, names)
	if err != nil {
		return fmt.Errorf("registry %s: ask site %s for missing packs: %w", reg, s.opts.Site, err)
	}
	return s.parallel(ctx, missing, func(ctx context.Context, name string) error {
		return s.shipObject(ctx, reg, name)
	})
}

// parallel runs fn on every name, BlobParallel at a time, and returns the
// first error, after which it starts no more.
func (s *Shipper) parallel(ctx context.Context, names []string, fn func(ctx context.Context, name string) error) error {
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	work := make(chan string)
	for range min(s.opts.BlobParallel, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				err := fn(ctx, name)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, name := range names {
		select {
		case work <- name:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return first
}

func (s *Shipper) shipObject(ctx context.Context, reg, name string) error {
	data, err := FetchPack(ctx, s.opts.Source, reg, name)
	if err != nil {
		return err
	}
	if err := s.wait(ctx, len(data)); err != nil {
		return err
	}
	if err := s.opts.Sink.PutObject(ctx, reg, name, data); err != nil {
		return fmt.Errorf("registry %s: ship %s to site %s: %w", reg, name, s.opts.Site, err)
	}
	s.opts.Tracker.Sent(s.opts.Site, int64(len(data)), 0, 1)
	return nil
}

// wait spends n bytes of the bandwidth budget.
func (s *Shipper) wait(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// shipRewrapped ships packs rewrapped for the receiving site: each chunk
// with the source site's outer layer taken off and the receiving site's
// put on. The receiving site's pack names differ from the source's, so the
// shipper remembers which it made, and asks the site about those.
//
// Packs are made and uploaded BlobParallel at a time, each uploaded as
// soon as it is made: a batch may reference a thousand packs, and holding
// them all before the first upload would hold gigabytes.
func (s *Shipper) shipRewrapped(ctx context.Context, reg string, names []string) error {
	from, err := s.opts.OuterKey(s.opts.SourceSite)
	if err != nil {
		return fmt.Errorf("registry %s: outer key of %s: %w", reg, s.opts.SourceSite, err)
	}
	to, err := s.opts.OuterKey(s.opts.Site)
	if err != nil {
		return fmt.Errorf("registry %s: outer key of %s: %w", reg, s.opts.Site, err)
	}
	guest := s.opts.Charter.Guest.ID
	rewrap := func(ctx context.Context, name string) (string, []byte, error) {
		data, err := s.opts.Source.Object(ctx, reg, name)
		if err != nil {
			return "", nil, fmt.Errorf("registry %s: read %s: %w", reg, name, err)
		}
		id, ok := store.ParsePackName(name)
		if !ok {
			return "", nil, fmt.Errorf("registry %s: %q is not a pack name", reg, name)
		}
		nid, out, err := store.RewrapPack(id, data, func(cid store.ID, chunk []byte) ([]byte, error) {
			if from != nil {
				if chunk, err = from.Open(seal.SiteAD(guest, s.opts.SourceSite, cid), chunk); err != nil {
					return nil, err
				}
			}
			if to != nil {
				return to.Seal(seal.SiteAD(guest, s.opts.Site, cid), chunk)
			}
			return chunk, nil
		})
		if err != nil {
			return "", nil, fmt.Errorf("%w: registry %s: %v", ErrRefused, reg, err)
		}
		return store.PackName(nid), out, nil
	}
	// ship makes a copy of a source pack and uploads it. The outer
	// layer's nonces are random, so a copy made now has a name no site
	// holds: there is nothing to ask first. It is remembered before the
	// upload, so that an upload the site stored but did not confirm is
	// found there next time rather than made again.
	ship := func(ctx context.Context, name string) error {
		dn, out, err := rewrap(ctx, name)
		if err != nil {
			return err
		}
		s.rwMu.Lock()
		s.rewrapped[name] = dn
		s.rwMu.Unlock()
		if err := s.wait(ctx, len(out)); err != nil {
			return err
		}
		if err := s.opts.Sink.PutObject(ctx, reg, dn, out); err != nil {
			return fmt.Errorf("registry %s: ship %s to site %s: %w", reg, dn, s.opts.Site, err)
		}
		s.opts.Tracker.Sent(s.opts.Site, int64(len(out)), 0, 1)
		return nil
	}
	var todo, made, dst []string // to make; made before, and their copies' names
	for _, n := range names {
		s.rwMu.Lock()
		d, ok := s.rewrapped[n]
		s.rwMu.Unlock()
		if ok {
			made, dst = append(made, n), append(dst, d)
		} else {
			todo = append(todo, n)
		}
	}
	if len(dst) > 0 {
		// Made in an earlier batch but never stored at the site (its
		// upload was cut, the site was killed) or lost there since: make
		// it again, under a new name.
		missing, err := s.opts.Sink.Missing(ctx, reg, dst)
		if err != nil {
			return fmt.Errorf("registry %s: ask site %s for missing packs: %w", reg, s.opts.Site, err)
		}
		lost := make(map[string]bool, len(missing))
		for _, m := range missing {
			lost[m] = true
		}
		for i, d := range dst {
			if lost[d] {
				todo = append(todo, made[i])
			}
		}
	}
	return s.parallel(ctx, todo, ship)
}
