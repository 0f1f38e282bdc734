package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
)

// Target is a site the writer ships to.
type Target struct {
	Site string
	Sink Sink
}

// ReplicatorOptions configure a Replicator.
type ReplicatorOptions struct {
	Charter *charter.Charter
	// Self is the writer's site id: it ships to every other site.
	Self    string
	Log     *ledger.Log // the writer's ledger
	Source  Source
	Targets []Target
	Writers Writers
	// Shipper tunes every shipper (batch sizes, bandwidth, backoff); its
	// Charter, Site, Source, Sink, Tracker and Writers are set here.
	Shipper ShipperOptions
	Logger  *slog.Logger
}

// Replicator runs, at the writer, one shipper per site and the tracker of
// their receipts, and makes quorum writes wait for them.
type Replicator struct {
	opts     ReplicatorOptions
	tracker  *Tracker
	shippers []*Shipper
	quorum   map[string]quorumRule

	mu      sync.Mutex
	stopped map[string]bool
	cancels map[string]context.CancelFunc
}

type quorumRule struct {
	sites []string
	k     int
}

// NewReplicator checks the options and builds the shippers; Run starts
// them.
func NewReplicator(o ReplicatorOptions) (*Replicator, error) {
	if o.Charter == nil || o.Log == nil || o.Source == nil {
		return nil, errors.New("replica: replicator needs a charter, the writer's ledger and a source")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var ids []string
	for _, t := range o.Targets {
		if t.Site == o.Self {
			return nil, fmt.Errorf("replica: site %s cannot ship to itself", t.Site)
		}
		ids = append(ids, t.Site)
	}
	r := &Replicator{opts: o, tracker: NewTracker(ids, nil), quorum: map[string]quorumRule{},
		stopped: map[string]bool{}, cancels: map[string]context.CancelFunc{}}
	f := ledger.DirFetcher(o.Log.Dir())
	r.tracker.SetDurable(o.Log.Size)
	r.tracker.SetEntryTime(func(index, size uint64) (time.Time, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		raw, err := ledger.ReadEntry(ctx, f, index, size)
		if err != nil {
			return time.Time{}, false
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return time.Time{}, false
		}
		return e.Time, true
	})
	for _, t := range o.Targets {
		so := o.Shipper
		so.Charter, so.Site, so.Source, so.Sink, so.Tracker, so.Writers = o.Charter, t.Site, o.Source, t.Sink, r.tracker, o.Writers
		if so.SourceSite == "" {
			so.SourceSite = o.Self
		}
		so.Logger = o.Logger
		s, err := NewShipper(so)
		if err != nil {
			return nil, err
		}
		r.shippers = append(r.shippers, s)
	}
	// A quorum registry counts only the sites the charter places it at,
	// the writer aside.
	for _, reg := range o.Charter.Registries {
		if reg.Sync != charter.SyncQuorum {
			continue
		}
		var sites []string
		for _, s := range reg.Sites {
			if s != o.Self {
				sites = append(sites, s)
			}
		}
		k := max(reg.QuorumSites, 1)
		if k > len(sites) {
			return nil, fmt.Errorf("replica: registry %s needs %d sites to hold each write, but only %d other sites hold it", reg.Name, k, len(sites))
		}
		sort.Strings(sites)
		r.quorum[reg.Name] = quorumRule{sites: sites, k: k}
	}
	return r, nil
}

// Tracker is the receipts and lag of every site.
func (r *Replicator) Tracker() *Tracker { return r.tracker }

// Run ships to every site until ctx ends.
func (r *Replicator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.observe(ctx)
	}()
	for _, s := range r.shippers {
		sctx, cancel := context.WithCancel(ctx)
		r.mu.Lock()
		if r.stopped[s.opts.Site] {
			r.mu.Unlock()
			cancel()
			continue
		}
		r.cancels[s.opts.Site] = cancel
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			_ = s.Run(sctx)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Stop ends shipping to a site for good (a revoked site): its shipper
// stops, and a later Run does not start it.
func (r *Replicator) Stop(site string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped[site] = true
	if c, ok := r.cancels[site]; ok {
		c()
	}
}

// observe feeds the writer's progress to the tracker: the clock of every
// site's recovery point in seconds.
func (r *Replicator) observe(ctx context.Context) {
	var size uint64
	for {
		_, cp, err := r.opts.Log.WaitPublished(ctx, size+1)
		if err != nil {
			return
		}
		size = cp.Size
		r.tracker.Wrote(size)
	}
}

// Replicated blocks until the quorum of sites the charter asks for a
// registry holds entry index; for an async registry it returns at once.
// It is registry.Options.Replicated.
func (r *Replicator) Replicated(ctx context.Context, registry string, index uint64) error {
	q, ok := r.quorum[registry]
	if !ok {
		return nil
	}
	return r.tracker.Wait(ctx, q.sites, q.k, index)
}
