package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/siteapi"
)

// Fences. An activation raises the epoch at the site it names, but the
// other embassies learn of it only when the new writer's first batch
// reaches them. Until then an embassy would go on cosigning batches of
// the writer it knows — a home cut off from the activated site but not
// from it — and a quorum write could be acknowledged that the new writer
// never holds. So before an activated site appends its order, it shows
// the signed order to every other embassy it can reach. Each verifies it
// as it would in a batch, records it durably (a fence), and from then on
// refuses batches of older epochs; it answers with what it holds. If one
// holds more of the ledger than the activated site, the activation is
// refused: that embassy may hold writes a quorum acknowledged, and the
// officials are told to activate it instead (its fence stays, which is
// what they want of the old writer anyway). An embassy that cannot be
// reached is not fenced; the activation goes on and says so.

// fence is the epoch from which a site takes batches, and the order that
// set it.
type fence struct {
	mu    sync.Mutex
	epoch uint64
	order string // the order's id and the site it activates, for refusals
}

func (f *fence) get() (uint64, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch, f.order
}

// fenceDir holds one file per fencing order, fence-<epoch>.order (the
// signed order's bytes), written once.
func fenceDir(guestDir string) string { return filepath.Join(guestDir, "fences") }

// loadFence reads the fences a guest recorded before it stopped.
func (t *Guest) loadFence() error {
	ents, err := os.ReadDir(fenceDir(t.dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fences: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "fence-") || !strings.HasSuffix(e.Name(), ".order") {
			continue
		}
		raw, err := fsutil.Read(filepath.Join(fenceDir(t.dir), e.Name()), continuity.MaxSignedOrderSize)
		if err != nil {
			return fmt.Errorf("fence %s: %w", e.Name(), err)
		}
		so, err := continuity.ParseSignedOrder(raw)
		if err != nil {
			return fmt.Errorf("fence %s: %w", e.Name(), err)
		}
		t.setFence(&so.Order)
	}
	return nil
}

func (t *Guest) setFence(o *continuity.Order) {
	t.fence.mu.Lock()
	defer t.fence.mu.Unlock()
	if o.Epoch > t.fence.epoch {
		t.fence.epoch = o.Epoch
		t.fence.order = fmt.Sprintf("activation order %s of site %s", o.ID, o.Site)
	}
}

// acceptFence verifies an activation order of another site and fences
// this one from its epoch on, then reports what this site holds.
func (t *Guest) acceptFence(ctx context.Context, so *continuity.SignedOrder) (*replica.State, error) {
	o := &so.Order
	if o.Action != charter.ActionActivate {
		return nil, fmt.Errorf("a fence is set by an activation order, not %s", o.Action)
	}
	if o.Site == t.site {
		return nil, fmt.Errorf("order %s activates this site (%s): submit it as an order", o.ID, t.site)
	}
	if !t.ledger().IsMirror() {
		return nil, fmt.Errorf("%w: site %s writes %s's ledger; it hands over only by a failback order", ErrNotWriter, t.site, t.id)
	}
	// Already past it: the activated site's batches have arrived.
	if t.writers.ep.Current() >= o.Epoch && t.writers.ep.HasOrderID(o.ID) {
		return t.receiver().State(ctx)
	}
	if _, err := continuity.Verify(t.charter, so, t.writers.ep.State(), t.opts.Now()); err != nil {
		return nil, err
	}
	raw, err := so.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(fenceDir(t.dir), 0o700); err != nil {
		return nil, err
	}
	// Durable before it is relied on: the activated site goes ahead on
	// this answer, and a restart must not lift the fence.
	err = fsutil.WriteNew(filepath.Join(fenceDir(t.dir), fmt.Sprintf("fence-%d.order", o.Epoch)), raw, 0o600)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("record the fence: %w", err)
	}
	t.setFence(o)
	// A batch already being checked finishes under the old fence; wait
	// for it, so the state reported is final for the old writer.
	t.receiver().Quiesce()
	t.logger.Warn("fenced: an activation order of another site was shown here; batches of older epochs are refused from now on",
		"guest", t.id, "order", o.ID, "activates", o.Site, "epoch", o.Epoch)
	return t.receiver().State(ctx)
}

// ErrBehind refuses an activation of a site that holds less of the ledger
// than another embassy; ErrUnfenced one that could not reach enough of
// them to be sure it holds every write a quorum acknowledged.
var (
	ErrBehind   = errors.New("another embassy holds more of the ledger than this site")
	ErrUnfenced = errors.New("too few embassies could be fenced")
)

// fencePeers shows an activation order of this site to every other
// embassy before it is appended (see the top of this file). It returns
// ErrBehind if one of them holds more of the ledger, and ErrUnfenced if
// so many could not be reached that a quorum write might be held by them
// alone — unless the officials accept that (acceptUnfenced), in which
// case it returns the sites not fenced, for the ledger.
func (t *Guest) fencePeers(ctx context.Context, so *continuity.SignedOrder, acceptUnfenced bool) ([]string, error) {
	if _, err := continuity.Verify(t.charter, so, t.writers.ep.State(), t.opts.Now()); err != nil {
		return nil, err
	}
	raw, err := so.Marshal()
	if err != nil {
		return nil, err
	}
	own := t.ledger().MirrorSize()
	type answer struct {
		site string
		st   *replica.State
		err  error
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers []answer
	)
	for _, def := range t.charter.Sites {
		if def.ID == t.site || def.Role == charter.RoleHome || slices.Contains(t.writers.ep.Revoked(), def.ID) {
			continue
		}
		wg.Go(func() {
			st, err := t.fenceOne(ctx, def, raw)
			mu.Lock()
			answers = append(answers, answer{def.ID, st, err})
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(answers, func(a, b answer) int { return strings.Compare(a.site, b.site) })
	var ahead, fenced, unreached []string
	for _, a := range answers {
		switch {
		case a.err != nil:
			unreached = append(unreached, a.site)
			t.logger.Warn("activation: could not fence an embassy; it may cosign the old writer's batches until the new writer's reach it",
				"guest", t.id, "embassy", a.site, "err", a.err)
		case a.st.Size > own:
			ahead = append(ahead, fmt.Sprintf("%s holds %d entries", a.site, a.st.Size))
		default:
			fenced = append(fenced, a.site)
		}
	}
	if len(ahead) > 0 {
		return nil, fmt.Errorf("%w: this site (%s) holds %d entries, but %s; it may hold writes a quorum acknowledged that this site lacks: activate it instead (it stays fenced against the old writer)",
			ErrBehind, t.site, own, strings.Join(ahead, ", "))
	}
	if at := t.quorumAtRisk(unreached); at != "" && !acceptUnfenced {
		return nil, fmt.Errorf("%w: %s; restore the link and submit again, or submit with --accept-unfenced to activate anyway (writes only they hold then go to reconciliation)", ErrUnfenced, at)
	}
	t.logger.Warn("activation: embassies fenced against older epochs", "guest", t.id, "fenced", fenced, "not_fenced", unreached, "own_size", own)
	return unreached, nil
}

// quorumAtRisk says which quorum registry could have a write acknowledged
// that only unreached sites hold: one whose k holders, at the time of the
// write, might all be among them. The old writer's quorum counted every
// site the charter places the registry at but itself.
func (t *Guest) quorumAtRisk(unreached []string) string {
	cur := t.writers.ep.Current()
	writer, _ := t.writers.ep.WriterAt(cur)
	for _, reg := range t.charter.Registries {
		if reg.Sync != charter.SyncQuorum {
			continue
		}
		var out []string
		for _, s := range reg.Sites {
			if s != writer && slices.Contains(unreached, s) {
				out = append(out, s)
			}
		}
		if k := max(reg.QuorumSites, 1); len(out) >= k {
			return fmt.Sprintf("registry %s is acknowledged once %d site(s) hold a write, and %s, which could hold such writes alone, could not be reached", reg.Name, k, strings.Join(out, ", "))
		}
	}
	return ""
}

func (t *Guest) fenceOne(ctx context.Context, def charter.Site, order []byte) (*replica.State, error) {
	remote, err := t.opts.Remote(t.charter, def)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cc := &siteapi.ContinuityClient{BaseURL: remote.Base, Guest: t.id, HTTP: remote.Client}
	return cc.Fence(ctx, order)
}
