package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// Filling withheld entries (docs/continuity.md § Filling withheld
// entries). A home rebuilt from one embassy holds withheld stubs for the
// registries that embassy may not hold, and none of their packs. Before it
// writes again it asks the other sites for the entries behind its stubs,
// takes each only if it hashes to its stub's leaf hash, stores the packs
// those entries reference (checked by hash, their outer layer swapped for
// its own), and only then puts the entries in place of the stubs.

// fillProgressEvery is how many filled entries a progress line stands for.
const fillProgressEvery = 4096

// fillBundlesPerRound bounds how many entry bundles are fetched before
// their entries are filled: the entries wait in memory meanwhile.
const fillBundlesPerRound = 64

// fillPeer is another site of the charter, asked for entries and packs.
type fillPeer struct {
	id     string
	remote *replica.Remote
	ledger ledger.HTTPFetcher
	size   uint64 // its checkpoint's size, read once per pass
	err    error  // why it cannot be asked this pass
}

// fillWithheld replaces every withheld stub the guest's ledger holds for
// a registry the charter places here by the entry it stands for, with the
// packs it references, and returns how many it replaced. It runs with t.mu
// held (as takeOver does): it reads t.log and, when the last entries can
// only be filled with the ledger closed, closes and reopens it (as a
// mirror; a writer's are left for a later call, after a sync point).
//
// An entry a site serves that does not hash to its stub is refused and
// the next site asked; the error lists the indexes no site could supply.
func (t *Guest) fillWithheld(ctx context.Context) (filled int, err error) {
	log := t.logger.With("guest", t.id, "component", "fill")
	for pass := 1; ; pass++ {
		stubs, err := t.log.Withheld(ctx)
		if err != nil {
			return filled, fmt.Errorf("fill: list withheld entries: %w", err)
		}
		if len(stubs) == 0 {
			if filled > 0 {
				log.Warn("every withheld entry filled", "filled", filled)
			}
			return filled, nil
		}
		log.Info("filling withheld entries", "pass", pass, "stubs", len(stubs), "ledger_size", t.log.MirrorSize())
		n, pending, notPlaced, perr := t.fillPass(ctx, stubs, log)
		filled += n
		if len(pending) > 0 {
			// Their bundles are still the integrator's or the write-ahead
			// log's: fill them with the ledger closed, where the sync point
			// is its size.
			m, err := t.fillClosed(ctx, pending)
			filled += m
			if err != nil {
				return filled, errors.Join(perr, err)
			}
			n += m
		}
		if perr != nil {
			return filled, perr
		}
		if n == 0 || len(stubs) == notPlaced {
			if notPlaced > 0 {
				log.Info("withheld entries of registries the charter does not place here stay withheld", "count", notPlaced)
			}
			log.Warn("filling withheld entries done", "filled", filled, "left_withheld", notPlaced)
			return filled, nil
		}
	}
}

// fillClosed closes the mirror, fills the pending entries and opens it
// again.
func (t *Guest) fillClosed(ctx context.Context, pending map[uint64][]byte) (int, error) {
	if !t.log.IsMirror() {
		return 0, fmt.Errorf("fill: %d entries of the writer's ledger from index %d wait for a sync point past them: fill again later: %w",
			len(pending), slices.Min(slices.Collect(maps.Keys(pending))), ledger.ErrNotDurable)
	}
	dir := t.log.Dir()
	if err := t.log.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
		return 0, fmt.Errorf("fill: close the mirror: %w", err)
	}
	n, ferr := ledger.FillClosed(ctx, dir, pending)
	// Reopened whatever happened: the guest must not be left on a closed
	// ledger.
	if err := t.reopen(ctx, true, 0); err != nil {
		return n, errors.Join(ferr, fmt.Errorf("fill: reopen the mirror: %w", err))
	}
	if ferr != nil {
		return n, fmt.Errorf("fill the closed mirror: %w", ferr)
	}
	return n, nil
}

// fillPeers are the sites to ask: every other site of the charter not
// revoked.
func (t *Guest) fillPeers(ctx context.Context) []*fillPeer {
	var out []*fillPeer
	for _, def := range t.charter.Sites {
		if def.ID == t.site || slices.Contains(t.writers.ep.Revoked(), def.ID) {
			continue
		}
		p := &fillPeer{id: def.ID}
		out = append(out, p)
		r, err := t.opts.Remote(t.charter, def)
		if err != nil {
			p.err = err
			continue
		}
		p.remote = r
		p.ledger = ledger.HTTPFetcher{Base: strings.TrimSuffix(r.Base, "/") + "/guests/" + t.id + "/ledger", Client: r.Client}
		signed, err := p.ledger.Fetch(ctx, ledger.CheckpointPath)
		if err != nil {
			p.err = err
			continue
		}
		if cp, err := ledger.ParseSignedCheckpoint(signed); err != nil {
			p.err = err
		} else {
			p.size = cp.Size
		}
	}
	return out
}

// bundle reads entry bundle b from the peer, as far as its tree goes.
func (p *fillPeer) bundle(ctx context.Context, b uint64) ([][]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	end := min(p.size, (b+1)*ledger.TileWidth)
	if end <= b*ledger.TileWidth {
		return nil, nil
	}
	var es [][]byte
	err := ledger.Scan(ctx, p.ledger, b*ledger.TileWidth, end, func(_ uint64, e []byte) error {
		es = append(es, slices.Clone(e))
		return nil
	})
	return es, err
}

// fillPass fills the given stubs: it returns how many it filled, the
// verified entries it could not fill with the ledger open, and how many
// stubs are of registries this site may not hold.
func (t *Guest) fillPass(ctx context.Context, stubs []ledger.Stub, log *slog.Logger) (filled int, pending map[uint64][]byte, notPlaced int, err error) {
	peers := t.fillPeers(ctx)
	keys := &fillKeys{t: t}
	defer keys.wipe()
	for _, p := range peers {
		if p.err != nil {
			log.Warn("fill: site cannot be asked for entries", "peer", p.id, "err", p.err)
		}
	}
	place := replica.Placement{Charter: t.charter, Site: t.site}
	pending = map[uint64][]byte{}
	var missing []string
	lastLog := 0
	for len(stubs) > 0 {
		// One round: the stubs of up to fillBundlesPerRound bundles.
		first := stubs[0].Index / ledger.TileWidth
		n := 0
		for n < len(stubs) && stubs[n].Index/ledger.TileWidth < first+fillBundlesPerRound {
			n++
		}
		round := stubs[:n]
		stubs = stubs[n:]

		got := map[uint64][]byte{}
		from := map[uint64]*fillPeer{}
		need := map[string]map[*fillPeer][]uint64{} // registry → supplier → indexes
		for i := 0; i < len(round); {
			b := round[i].Index / ledger.TileWidth
			j := i
			for j < len(round) && round[j].Index/ledger.TileWidth == b {
				j++
			}
			left := slices.Clone(round[i:j])
			for _, p := range peers {
				if len(left) == 0 {
					break
				}
				es, err := p.bundle(ctx, b)
				if err != nil {
					log.Warn("fill: cannot read an entry bundle from a site", "peer", p.id, "bundle", b, "err", err)
					continue
				}
				left = slices.DeleteFunc(left, func(s ledger.Stub) bool {
					pos := int(s.Index % ledger.TileWidth)
					if pos >= len(es) || es[pos][1] == byte(ledger.TypeWithheld) {
						return false
					}
					if h := ledger.EntryLeafHash(es[pos]); h != s.Leaf {
						log.Warn("fill: refused an entry a site served: it does not hash to the withheld stub", "peer", p.id, "index", s.Index,
							"leaf", fmt.Sprintf("%x", h[:8]), "stub_leaf", fmt.Sprintf("%x", s.Leaf[:8]))
						return false
					}
					got[s.Index], from[s.Index] = es[pos], p
					return true
				})
			}
			for _, s := range left {
				missing = append(missing, fmt.Sprint(s.Index))
			}
			i = j
		}
		// What this site may hold, and the packs that must come first.
		for idx, e := range got {
			reg, ok, rec, err := place.Entry(e)
			if err != nil {
				return filled, pending, notPlaced, fmt.Errorf("fill: entry %d from site %s: %w", idx, from[idx].id, err)
			}
			if !ok {
				notPlaced++
				delete(got, idx)
				continue
			}
			if rec == nil || len(rec.Attachments) == 0 {
				continue
			}
			if need[reg] == nil {
				need[reg] = map[*fillPeer][]uint64{}
			}
			need[reg][from[idx]] = append(need[reg][from[idx]], idx)
		}
		for reg, bySite := range need {
			for p, idxs := range bySite {
				for _, idx := range idxs {
					_, _, rec, _ := place.Entry(got[idx])
					ids, err := replica.Chunks(rec)
					if err == nil {
						err = t.fillPacks(ctx, reg, ids, p, peers, keys)
					}
					if err != nil {
						// The entry stays withheld: it must never reference a
						// pack this site lacks.
						log.Warn("fill: the packs of an entry cannot be fetched; it stays withheld", "index", idx, "registry", reg, "peer", p.id, "err", err)
						missing = append(missing, fmt.Sprintf("%d (packs of registry %s: %v)", idx, reg, err))
						delete(got, idx)
					}
				}
			}
		}
		n2, err := t.log.FillBatch(ctx, got)
		filled += n2
		var nd *ledger.NotDurableError
		switch {
		case errors.As(err, &nd):
			for _, idx := range nd.Pending {
				pending[idx] = got[idx]
			}
		case err != nil:
			return filled, pending, notPlaced, fmt.Errorf("fill: %w", err)
		}
		if filled-lastLog >= fillProgressEvery {
			lastLog = filled
			log.Info("filling withheld entries", "filled", filled, "pending_close", len(pending), "stubs_left", len(stubs))
		}
	}
	if len(missing) > 0 {
		const show = 20
		more := ""
		if len(missing) > show {
			more = fmt.Sprintf(" and %d more", len(missing)-show)
			missing = missing[:show]
		}
		ids := make([]string, len(peers))
		for i, p := range peers {
			ids[i] = p.id
		}
		return filled, pending, notPlaced, fmt.Errorf("fill: no site (asked %s) served entries %s%s with the leaf hash of their withheld stub and their packs",
			strings.Join(ids, ", "), strings.Join(missing, ", "), more)
	}
	return filled, pending, notPlaced, nil
}

// fillPacks makes sure this site holds every chunk of ids, fetching the
// packs it lacks from the site that supplied the entry, or else from any
// other site the charter places the registry at. A fetched pack is checked
// against its name, stripped of the supplier's outer layer and sealed in
// this site's (a home has none), then stored.
func (t *Guest) fillPacks(ctx context.Context, reg string, ids []store.ID, first *fillPeer, peers []*fillPeer, keys *fillKeys) error {
	recv := t.receiver()
	var lack []store.ID
	for _, id := range ids {
		if _, err := recv.Locate(ctx, reg, []store.ID{id}); err != nil {
			lack = append(lack, id)
		}
	}
	if len(lack) == 0 {
		return nil
	}
	order := []*fillPeer{first}
	for _, p := range peers {
		if p != first && (replica.Placement{Charter: t.charter, Site: p.id}).Registry(reg) {
			order = append(order, p)
		}
	}
	var errs []error
	for _, p := range order {
		err := t.fetchPacks(ctx, reg, lack, p, keys)
		if err == nil {
			_, err = recv.Locate(ctx, reg, ids)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("site %s: %w", p.id, err))
	}
	return errors.Join(errs...)
}

func (t *Guest) fetchPacks(ctx context.Context, reg string, ids []store.ID, p *fillPeer, keys *fillKeys) error {
	if p.remote == nil {
		return p.err
	}
	names, err := p.remote.Locate(ctx, reg, ids)
	if err != nil {
		return fmt.Errorf("locate %d chunks: %w", len(ids), err)
	}
	keyOf, err := keys.get()
	if err != nil {
		return err
	}
	from, err := keyOf(p.id)
	if err != nil {
		return err
	}
	to, err := keyOf(t.site)
	if err != nil {
		return err
	}
	recv := t.receiver()
	for _, name := range names {
		data, err := p.remote.Object(ctx, reg, name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := store.CheckObject(name, data); err != nil {
			return fmt.Errorf("%w: %v", replica.ErrRefused, err)
		}
		if from != nil || to != nil {
			id, _ := store.ParsePackName(name)
			nid, out, err := store.RewrapPack(id, data, func(cid store.ID, chunk []byte) ([]byte, error) {
				if from != nil {
					if chunk, err = from.Open(seal.SiteAD(t.id, p.id, cid), chunk); err != nil {
						return nil, err
					}
				}
				if to != nil {
					return to.Seal(seal.SiteAD(t.id, t.site, cid), chunk)
				}
				return chunk, nil
			})
			if err != nil {
				return fmt.Errorf("%w: %s: %v", replica.ErrRefused, name, err)
			}
			name, data = store.PackName(nid), out
		}
		if err := recv.PutObject(ctx, reg, name, data); err != nil {
			return fmt.Errorf("store %s: %w", name, err)
		}
	}
	return nil
}

// fillKeys opens the outer keys once per pass, when a pack first needs
// them, and wipes them at its end.
type fillKeys struct {
	t     *Guest
	keyOf func(string) (*seal.SiteKey, error)
	done  func()
	err   error
}

func (k *fillKeys) get() (func(string) (*seal.SiteKey, error), error) {
	if k.keyOf == nil && k.err == nil {
		k.keyOf, k.done, k.err = k.t.fillOuterKeys()
	}
	return k.keyOf, k.err
}

func (k *fillKeys) wipe() {
	if k.done != nil {
		k.done()
	}
}

// fillOuterKeys gives the site outer keys to swap a fetched pack's layer
// with: an active site's, or a home's own key store's (it holds every
// embassy's, under the root key it keeps sealed beside). done wipes what
// was unwrapped for the occasion.
func (t *Guest) fillOuterKeys() (keyOf func(string) (*seal.SiteKey, error), done func(), err error) {
	if a := t.act; a != nil && a.outer != nil {
		return outerKeyFunc(t.charter, a.outer.get), func() {}, nil
	}
	if t.rootFile == "" {
		// No key at hand: only packs without an outer layer (from a home,
		// to a home) can be taken.
		return outerKeyFunc(t.charter, func(string) (*seal.SiteKey, bool) { return nil, false }), func() {}, nil
	}
	root, err := seal.ReadRootKeyFile(t.rootFile, t.opts.Passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("root key, to open the sites' outer keys: %w", err)
	}
	keys := seal.NewKeyring(t.id, root)
	root.Wipe()
	ok, err := loadHomeOuterKeys(t.charter, state.Layout{Dir: filepath.Dir(filepath.Dir(t.rootFile))}, keys, t.writers.ep.Revoked())
	keys.Wipe()
	if err != nil {
		return nil, nil, err
	}
	return outerKeyFunc(t.charter, ok.get), ok.wipe, nil
}
