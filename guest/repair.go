package guest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
)

// Self-repair of the stored ledger (docs/operations.md § Self-repair). A
// site checks the right edge of each guest's stored ledger — the partial
// entry bundle and level-0 tile every later append extends — against the
// tree it holds, every LedgerCheckInterval and whenever a reader (the
// readiness probe, the receiver) finds it damaged; and at each check one
// full bundle below it, in turn, against its level-0 tile proved against
// the ledger's checkpoint. Damage is repaired
// from the other sites of the charter, each asked in turn over the pinned
// channel replication uses: the entries are read from the peer's copy of
// the ledger and taken only if they hash to the leaves of the tree this
// site holds (ledger.Log.RepairRightEdge, the code chancery repair runs).
// Until then the guest is not ready and its receiver refuses to receipt;
// a writer extends its bundle from memory, checked against the same
// leaves when it was read at Open, never from the damaged file.

// DefaultLedgerCheckInterval is how often a guest's stored right edge is
// checked when Options.LedgerCheckInterval is zero.
const DefaultLedgerCheckInterval = 10 * time.Second

// repairTimeout bounds one repair attempt over every peer.
const repairTimeout = time.Minute

// ledgerRepair is what the last check of the stored ledger found, and
// what the repair made of it.
type ledgerRepair struct {
	kick chan struct{} // wakes the checker early; buffered, one pending

	mu       sync.Mutex
	edge     damageState // the right edge
	bundle   damageState // the full bundle at cursor
	cursor   uint64      // the full bundle the next check reads
	repaired int         // repairs done since start
}

// damageState is damage found and not yet repaired (nil when sound), and
// why each peer could not repair it at the last attempt.
type damageState struct {
	damage error
	tried  []string
}

func (d damageState) err() error {
	if d.damage == nil {
		return nil
	}
	if len(d.tried) == 0 {
		return fmt.Errorf("%w; repairing it from the other sites", d.damage)
	}
	return fmt.Errorf("%w; no site could repair it: %s", d.damage, strings.Join(d.tried, "; "))
}

// LedgerDamage says whether the right edge of the guest's stored ledger
// is damaged: nil when the last check found it sound, else the damage
// and, once a repair was tried, why each peer could not repair it. A
// probe that finds damage calls CheckLedger to have it repaired at once.
func (t *Guest) LedgerDamage() error {
	t.repair.mu.Lock()
	defer t.repair.mu.Unlock()
	return t.repair.edge.err()
}

// BundleDamage says whether a full entry bundle below the right edge was
// found damaged and is not yet repaired (the checker reads one bundle at
// each check, in turn).
func (t *Guest) BundleDamage() error {
	t.repair.mu.Lock()
	defer t.repair.mu.Unlock()
	return t.repair.bundle.err()
}

// LedgerRepairs counts the damaged right edges this guest repaired since
// it opened.
func (t *Guest) LedgerRepairs() int {
	t.repair.mu.Lock()
	defer t.repair.mu.Unlock()
	return t.repair.repaired
}

// CheckLedger asks for a check (and, on damage, a repair) of the stored
// ledger now, without waiting for it.
func (t *Guest) CheckLedger() {
	select {
	case t.repair.kick <- struct{}{}:
	default:
	}
}

// startLedgerChecks starts the checker, owned by the guest.
func (t *Guest) startLedgerChecks() {
	every := t.opts.LedgerCheckInterval
	if every <= 0 {
		every = DefaultLedgerCheckInterval
	}
	t.spawn(func(ctx context.Context) {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-t.repair.kick:
			}
			t.checkLedger(ctx)
		}
	})
}

// checkLedger checks the stored right edge and one full bundle below it,
// and repairs what is damaged.
func (t *Guest) checkLedger(ctx context.Context) {
	r := &t.repair
	l := t.ledger()
	err := l.CheckRightEdge()
	if err != nil {
		// Once more: the first read may have raced the integrator moving
		// the edge and removing what it superseded.
		err = l.CheckRightEdge()
	}
	switch {
	case err == nil:
		r.set(&r.edge, nil, nil)
	case errors.Is(err, ledger.ErrDamaged):
		t.repairFromPeers(ctx, &r.edge, err, func(ctx context.Context, f ledger.Fetcher) (*ledger.RepairReport, error) {
			return l.RepairRightEdge(ctx, f, t.keepRepaired(l.IsMirror()))
		})
	default:
		// A log stopped for another reason: its health says why.
	}

	// One full bundle per check, in turn: a slow scrub of what the edge
	// has left behind.
	_, cp := l.Checkpoint()
	full := cp.Size / ledger.TileWidth
	if full == 0 {
		return
	}
	r.mu.Lock()
	b := r.cursor % full
	r.mu.Unlock()
	err = l.CheckBundle(ctx, b)
	switch {
	case err == nil:
		r.set(&r.bundle, nil, nil)
	case errors.Is(err, ledger.ErrDamaged):
		if !t.repairFromPeers(ctx, &r.bundle, err, func(ctx context.Context, f ledger.Fetcher) (*ledger.RepairReport, error) {
			return l.RepairBundle(ctx, f, b, t.keepRepaired(l.IsMirror()))
		}) {
			return // the same bundle again at the next check
		}
	default:
		// Not damage (the log closed under the check, say): on to the
		// next bundle.
	}
	r.mu.Lock()
	r.cursor = b + 1
	r.mu.Unlock()
}

// set records the state of one check.
func (r *ledgerRepair) set(d *damageState, damage error, tried []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.damage, d.tried = damage, tried
}

// repairFromPeers records damage and asks every other site of the charter
// in turn to repair it, until one does; it reports whether one did (or the
// damage was gone).
func (t *Guest) repairFromPeers(ctx context.Context, d *damageState, damage error, repair func(context.Context, ledger.Fetcher) (*ledger.RepairReport, error)) bool {
	r := &t.repair
	r.mu.Lock()
	d.damage = damage
	r.mu.Unlock()
	// A peer that does not answer must not hold the checker for ever.
	ctx, cancel := context.WithTimeout(ctx, repairTimeout)
	defer cancel()
	log := t.logger.With("guest", t.id, "component", "repair")
	log.Error("ledger damaged: repairing it from the other sites", "err", damage)
	var tried []string
	for _, p := range t.fillPeers(ctx) {
		if ctx.Err() != nil {
			return false
		}
		if p.err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", p.id, p.err))
			continue
		}
		rep, err := repair(ctx, p.ledger)
		if err != nil {
			var fe *ledger.ForgedEntryError
			if errors.As(err, &fe) {
				log.Error("ledger repair: a site served an entry that does not hash to its leaf; refused", "peer", p.id, "index", fe.Index, "err", err)
			} else {
				log.Warn("ledger repair: site could not repair", "peer", p.id, "err", err)
			}
			tried = append(tried, fmt.Sprintf("%s: %v", p.id, err))
			continue
		}
		if len(rep.Damage) > 0 {
			log.Warn("ledger repaired", "peer", p.id, "entries_from", rep.First, "entries_to", rep.End-1,
				"restored", rep.Restored, "files", rep.Rewritten, "damaged_kept_as", rep.SavedAs, "peer_size", rep.PeerSize)
		}
		r.mu.Lock()
		d.damage, d.tried = nil, nil
		if len(rep.Damage) > 0 {
			r.repaired++
		}
		r.mu.Unlock()
		return true
	}
	if len(tried) == 0 {
		tried = []string{"the charter names no other site"}
	}
	log.Error("ledger damaged and not repaired: no site could supply the entries", "tried", tried)
	r.set(d, damage, tried)
	return false
}

// keepRepaired turns an entry a peer served for a repair into what this
// site stores at its index. A writer holds every entry; a mirror holds a
// withheld stub for a registry the charter does not place here, as the
// writer ships it (and its receiver requires). A stub served by a peer is
// refused: its leaf hash checks, but the entry behind it would be lost.
func (t *Guest) keepRepaired(mirror bool) func(uint64, []byte) ([]byte, error) {
	place := replica.Placement{Charter: t.charter, Site: t.site}
	return func(_ uint64, e []byte) ([]byte, error) {
		if len(e) == ledger.EntryHeaderSize+32 && e[1] == byte(ledger.TypeWithheld) {
			return nil, errors.New("the site holds only a withheld stub for it")
		}
		if !mirror {
			return e, nil
		}
		_, ok, _, err := place.Entry(e)
		if err != nil {
			return nil, err
		}
		if !ok {
			return ledger.Withhold(e)
		}
		return e, nil
	}
}
