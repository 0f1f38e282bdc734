package site

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
)

// A site with `scrub: {every: …}` checks each guest's blob store against
// its ledger on that schedule (audit.Scrub, rate-limited): every pack must
// hash to its name, and every chunk a ledger entry references must be in
// a pack that is present and undamaged. It holds no key for a mirror, so
// it opens no chunk; `chancery verify --blobs --root-key` does that. What
// a scrub finds makes the site not ready (/readyz names the first
// finding), is counted in chancery_blob_scrub_problems, and is logged.

// defaultScrubRate bounds a scheduled scrub's reads when the config sets
// none: a few minutes for a store of gigabytes, and the disk left to the
// site.
const defaultScrubRate = 32 << 20

// scrubResult is the last scrub of one guest's store.
type scrubResult struct {
	At     time.Time
	Report *audit.BlobReport
	Err    error
}

// scrubs keeps each guest's last result.
type scrubs struct {
	mu   sync.Mutex
	last map[string]scrubResult
}

func (sc *scrubs) set(guest string, r scrubResult) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.last == nil {
		sc.last = map[string]scrubResult{}
	}
	sc.last[guest] = r
}

func (sc *scrubs) get(guest string) (scrubResult, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	r, ok := sc.last[guest]
	return r, ok
}

// problem is why the guest's last scrub makes the site not ready, or "".
func (r scrubResult) problem() string {
	switch {
	case r.Err != nil:
		return "blob scrub failed: " + r.Err.Error()
	case r.Report != nil && !r.Report.OK():
		first := ""
		if len(r.Report.Problems) > 0 {
			first = ": " + r.Report.Problems[0].Error()
		}
		return fmt.Sprintf("blob store damaged: %d problems found by the scrub of %s%s", r.Report.Bad, r.At.UTC().Format(time.RFC3339), first)
	}
	return ""
}

// scrubLoop scrubs every guest's store, then waits Every, until ctx ends.
// Serve owns it and waits for it.
func (s *Site) scrubLoop(ctx context.Context) {
	every := s.cfg.Scrub.Every.Duration
	for {
		for _, id := range s.order {
			if ctx.Err() != nil {
				return
			}
			s.scrubOnce(ctx, s.tenants[id])
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// scrubOnce checks one guest's store against the entries its published
// checkpoint covers.
func (s *Site) scrubOnce(ctx context.Context, t *tenant) {
	_, cp := t.Ledger().Checkpoint()
	rate := s.cfg.Scrub.Rate
	if rate <= 0 {
		rate = defaultScrubRate
	}
	start := s.opts.Now()
	rep, err := audit.Scrub(ctx, t.Blobs(), audit.ScrubOptions{
		Ledger: ledger.DirFetcher(filepath.Join(t.Dir(), "ledger")), Size: cp.Size,
		Refs: guest.BlobRefs, Prefix: registry.BlobPrefix, Rate: rate,
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return // the site is stopping: keep the last complete result
	}
	r := scrubResult{At: start, Report: rep, Err: err}
	s.scrubs.set(t.ID(), r)
	switch p := r.problem(); {
	case p != "":
		s.log.Error("blob scrub found damage", "guest", t.ID(), "problem", p, "duration", s.opts.Now().Sub(start))
	default:
		s.log.Info("blob scrub clean", "guest", t.ID(), "objects", rep.Objects, "chunks", rep.Chunks, "entries", rep.Entries, "duration", s.opts.Now().Sub(start))
	}
}
