package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// Site outer key rotation (docs/seal.md § Site key rotation). A site whose
// own copy of the attachments carries its outer layer — an activated
// embassy, holding its key from the escrow — rotates that key before its
// nonce budget runs out, and when officials order it (a rotate-keys order
// naming the site). Rotation draws generation g+1 from crypto/rand,
// re-seals every pack under it, records the KeySiteKey event in the
// ledger, puts the new key's wrapped copy in the site's key store and
// escrow in place of the old one's, then removes the old packs.
//
// Crash safety rests on a journal, keys/site-outer-<site>.rotating, written
// before anything else: it holds the new generation's wrapped key and the
// phase. While it says "reseal", old packs stay and new copies are added
// beside them (store.ResealPacks; each pack is whole under one key or the
// other); "switched" is written only once the event is in the ledger and
// the new wrapped copy replaced the old, and from then on only old packs
// are removed (store.DropPacks). A site restarted with a journal finishes
// the job at its next unseal, before its registries open.

// DefaultOuterRotateBelow is when a site rotates its outer key by default:
// once fewer than 2^30 of the key's DefaultSealLimit (2^31) seals remain,
// that is after 2^30 random 96-bit nonces, where the chance of a repeated
// nonce is about 2^-37 (2^-33 at NIST's 2^32 ceiling).
const DefaultOuterRotateBelow = seal.DefaultSealLimit / 2

// Rotation journal phases.
const (
	phaseReseal   = "reseal"
	phaseSwitched = "switched"
)

// rotatingFile is the name of a site's rotation journal in the key store.
func rotatingFile(site string) string { return "site-outer-" + site + ".rotating" }

// rotateRequestFile marks a rotation officials ordered while the site
// held no key: it runs at the next unseal.
func rotateRequestFile(site string) string { return "site-outer-" + site + ".rotate-requested" }

// rotationJournal is the journal's content.
type rotationJournal struct {
	Generation uint32   `json:"generation"`
	Next       []byte   `json:"next"` // generation's key wrapped under the site's KEK
	Order      [32]byte `json:"order"`
	Phase      string   `json:"phase"`
}

// outerRotation rotates one site's outer key over its blob backend.
type outerRotation struct {
	guest, site string
	keys        *seal.Keyring
	layout      state.Layout // its key store and escrow hold the wrapped copies and the journal
	blobs       store.Backend
	registries  []string
	// current reads the newest KeySiteKey event of the site (ok false:
	// none, generation 0); record appends one unless the ledger holds it.
	current func(ctx context.Context) (ev seal.KeyEvent, ok bool, err error)
	record  func(ctx context.Context, ev seal.KeyEvent) error
	logger  *slog.Logger
}

func (r *outerRotation) journalPath() string {
	return filepath.Join(r.layout.Keys(), rotatingFile(r.site))
}

func (r *outerRotation) readJournal() (*rotationJournal, error) {
	b, err := os.ReadFile(r.journalPath())
	if err != nil {
		return nil, err
	}
	var j rotationJournal
	if err := json.Unmarshal(b, &j); err != nil || (j.Phase != phaseReseal && j.Phase != phaseSwitched) {
		return nil, fmt.Errorf("rotation journal %s is damaged: %v", r.journalPath(), err)
	}
	return &j, nil
}

func (r *outerRotation) writeJournal(j *rotationJournal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.layout.Keys(), 0o700); err != nil {
		return err
	}
	if err := fsutil.Replace(r.journalPath(), b, 0o600); err != nil {
		return fmt.Errorf("rotation journal %s: %w", r.journalPath(), err)
	}
	return nil
}

// pending reports whether a rotation was cut short or ordered here.
func (r *outerRotation) pending() bool {
	for _, name := range []string{rotatingFile(r.site), rotateRequestFile(r.site)} {
		if _, err := os.Stat(filepath.Join(r.layout.Keys(), name)); err == nil {
			return true
		}
	}
	return false
}

// journalNames reports whether a rotation journal is here whose new
// generation is past its switch or is the one id names (the ledger's
// newest: its event was recorded before a crash).
func (r *outerRotation) journalNames(id [32]byte) bool {
	j, err := r.readJournal()
	if err != nil {
		return false
	}
	if j.Phase == phaseSwitched {
		return true
	}
	k, err := r.keys.UnwrapSiteKey(r.site, j.Next)
	if err != nil {
		return false
	}
	defer k.Wipe()
	return k.ID() == id
}

// run rotates, or finishes a rotation its journal describes, and returns
// the new key. old is the current generation's key; it is needed only
// until the switch (a journal that says "switched" needs none). order is
// the hash of the order that asked for it (zero: the nonce budget).
func (r *outerRotation) run(ctx context.Context, old *seal.SiteKey, order [32]byte) (*seal.SiteKey, error) {
	fail := func(err error) (*seal.SiteKey, error) {
		return nil, fmt.Errorf("rotate the outer key of site %s: %w", r.site, err)
	}
	j, err := r.readJournal()
	var next *seal.SiteKey
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if old == nil {
			return fail(errors.New("the current key is not at hand"))
		}
		cur, _, err := r.current(ctx)
		if err != nil {
			return fail(err)
		}
		var wrapped []byte
		if next, wrapped, _, err = r.keys.RotateSiteKey(r.site, cur.Generation, order); err != nil {
			return fail(err)
		}
		j = &rotationJournal{Generation: cur.Generation + 1, Next: wrapped, Order: order, Phase: phaseReseal}
		if err := r.writeJournal(j); err != nil {
			next.Wipe()
			return fail(err)
		}
		r.logger.Warn("rotating the site's outer key: re-sealing its packs", "guest", r.guest, "site", r.site, "generation", j.Generation)
	case err != nil:
		return fail(err)
	default:
		if next, err = r.keys.UnwrapSiteKey(r.site, j.Next); err != nil {
			return fail(fmt.Errorf("the journal's new key: %w", err))
		}
		r.logger.Warn("finishing a rotation of the site's outer key cut short", "guest", r.guest, "site", r.site, "generation", j.Generation, "phase", j.Phase)
	}
	done := false
	defer func() {
		if !done {
			next.Wipe()
		}
	}()
	isNew := func(id store.ID, sealed []byte) bool {
		pt, err := next.Open(seal.SiteAD(r.guest, r.site, id), sealed)
		clear(pt)
		return err == nil
	}
	if j.Phase == phaseReseal && old == nil {
		// Cut short after the event was recorded: the re-seal was
		// complete then, and the old key is no longer needed.
		cur, ok, err := r.current(ctx)
		if err != nil {
			return fail(err)
		}
		if !ok || cur.KeyID != next.ID() {
			return fail(errors.New("re-sealing is under way and needs the current key: hand over the escrow's copy at unseal"))
		}
	}
	if j.Phase == phaseReseal {
		start := time.Now()
		copyFrom := r.registries
		if old == nil {
			copyFrom = nil // nothing left to copy (above)
		}
		var total store.ResealStats
		for _, reg := range copyFrom {
			st, err := store.ResealPacks(ctx, store.Prefixed(r.blobs, registry.BlobPrefix(reg)), isNew, func(id store.ID, sealed []byte) ([]byte, error) {
				return seal.ResealSite(old, next, seal.SiteAD(r.guest, r.site, id), sealed)
			})
			if err != nil {
				return fail(fmt.Errorf("registry %s: %w", reg, err))
			}
			total.Packs, total.Chunks, total.Bytes = total.Packs+st.Packs, total.Chunks+st.Chunks, total.Bytes+st.Bytes
		}
		r.logger.Info("packs re-sealed under the new outer key", "guest", r.guest, "site", r.site, "generation", j.Generation,
			"packs", total.Packs, "chunks", total.Chunks, "bytes", total.Bytes, "seconds", time.Since(start).Seconds())
		ev, err := r.keys.SiteKeyEvent(r.site, j.Generation, next, j.Order)
		if err != nil {
			return fail(err)
		}
		if err := r.record(ctx, ev); err != nil {
			return fail(fmt.Errorf("record the key event: %w", err))
		}
		if err := r.install(j.Next); err != nil {
			return fail(err)
		}
		j.Phase = phaseSwitched
		if err := r.writeJournal(j); err != nil {
			return fail(err)
		}
	}
	for _, reg := range r.registries {
		if _, err := store.DropPacks(ctx, store.Prefixed(r.blobs, registry.BlobPrefix(reg)), isNew); err != nil {
			return fail(fmt.Errorf("registry %s: %w", reg, err))
		}
	}
	for _, name := range []string{rotatingFile(r.site), rotateRequestFile(r.site)} {
		if err := os.Remove(filepath.Join(r.layout.Keys(), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
	}
	if err := fsutil.SyncDir(r.layout.Keys()); err != nil {
		return fail(err)
	}
	r.logger.Warn("the site's outer key rotated; the old generation's packs and wrapped copies are gone", "guest", r.guest, "site", r.site, "generation", j.Generation)
	done = true
	return next, nil
}

// install replaces the wrapped copy of the site's key in the key store and
// in the escrow (which officials collect and hand over at the next
// activation, docs/operations.md) with the new generation's: each old
// copy overwritten and removed first, then the new one written.
func (r *outerRotation) install(wrapped []byte) error {
	for _, dir := range []string{r.layout.Keys(), EscrowDir(r.layout)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		p := filepath.Join(dir, OuterKeyFile(r.site))
		if err := overwriteAndRemove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := fsutil.WriteNew(p, wrapped, 0o600); err != nil {
			return fmt.Errorf("outer key of site %s: %w", r.site, err)
		}
	}
	return nil
}

// lastSiteKeyEvent is the newest KeySiteKey event of a site in a ledger's
// published entries.
func lastSiteKeyEvent(ctx context.Context, l *ledger.Log, guest, site string) (seal.KeyEvent, bool, error) {
	evs, err := siteKeyEvents(ctx, l, guest)
	ev, ok := evs[site]
	return ev, ok, err
}

// siteKeyEvents is the newest KeySiteKey event of every site in a
// ledger's published entries.
func siteKeyEvents(ctx context.Context, l *ledger.Log, guest string) (map[string]seal.KeyEvent, error) {
	last := map[string]seal.KeyEvent{}
	_, cp := l.Checkpoint()
	err := audit.ScanKeyEvents(ctx, ledger.DirFetcher(l.Dir()), cp.Size, func(_ uint64, ev seal.KeyEvent) error {
		if ev.Kind == seal.KeySiteKey && ev.Guest == guest {
			last[ev.Site] = ev
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("site key events: %w", err)
	}
	return last, nil
}

// adoptRotatedOuterKeys reconciles a home's outer keys (hk, from its key
// store) with the generations the ledger names: an embassy that rotated
// its key while active recorded the new generation's fingerprint, and its
// escrow copy reaches the home as every escrow copy does, by officials
// (docs/operations.md § Rotating a site's outer key), into D/escrow. A
// copy there of the generation the ledger names replaces the key store's;
// without one the site's key is dropped, so that nothing is shipped to it
// under a retired generation (blobs are held back, and logged) until the
// copy is put there.
func adoptRotatedOuterKeys(ctx context.Context, l *ledger.Log, guest string, layout state.Layout, keys *seal.Keyring, hk *outerKeys, logger *slog.Logger) error {
	evs, err := siteKeyEvents(ctx, l, guest)
	if err != nil || len(evs) == 0 {
		return err
	}
	for site, ev := range evs {
		k, ok := hk.get(site)
		if !ok || k.ID() == ev.KeyID {
			continue
		}
		// The escrow holds one wrapped copy (an embassy's, brought by
		// officials) or several, newest first (a home's, which rotated
		// the key it ships under): take the one the ledger names.
		escrow := filepath.Join(EscrowDir(layout), OuterKeyFile(site))
		w, err := os.ReadFile(escrow)
		var nk *seal.SiteKey
		if err == nil {
			var ks []*seal.SiteKey
			ks, err = keys.UnwrapSiteKeys(site, w)
			for i, k := range ks {
				if nk == nil && k.ID() == ev.KeyID {
					nk, w = k, w[i*seal.WrappedSiteKeyLen:(i+1)*seal.WrappedSiteKeyLen]
					continue
				}
				k.Wipe()
			}
		}
		if err == nil && nk != nil {
			if err := fsutil.Replace(filepath.Join(layout.Keys(), OuterKeyFile(site)), w, 0o600); err != nil {
				nk.Wipe()
				return fmt.Errorf("outer key of site %s: %w", site, err)
			}
			hk.set(site, nk)
			logger.Warn("adopted a site's rotated outer key from the escrow", "guest", guest, "site", site, "generation", ev.Generation)
			continue
		}
		hk.drop(site)
		logger.Error("a site rotated its outer key and the escrow here does not hold the new generation: nothing is shipped to it until its escrow copy is put there",
			"guest", guest, "site", site, "generation", ev.Generation, "escrow", escrow)
	}
	return nil
}

// outerLayout is where this site keeps its own outer key's wrapped copy,
// its rotation journal and its escrow out-tray: the guest's directory at
// an embassy (a home holds no outer key of its own).
func (t *Guest) outerLayout() state.Layout { return state.Layout{Dir: t.dir} }

// rotationLocked is the rotation of this site's outer key under keys,
// recording in the ledger this site writes in epoch. Under t.mu.
func (t *Guest) rotationLocked(keys *seal.Keyring, epoch uint64) *outerRotation {
	var regs []string
	for _, r := range t.charter.Registries {
		regs = append(regs, r.Name)
	}
	log := t.log
	current := func(ctx context.Context) (seal.KeyEvent, bool, error) {
		return lastSiteKeyEvent(ctx, log, t.id, t.site)
	}
	return &outerRotation{guest: t.id, site: t.site, keys: keys, layout: t.outerLayout(), blobs: t.blobs, registries: regs, logger: t.logger,
		current: current,
		record: func(ctx context.Context, ev seal.KeyEvent) error {
			if last, ok, err := current(ctx); err != nil {
				return err
			} else if ok && last.KeyID == ev.KeyID {
				return nil // recorded before a crash
			}
			return t.appendKeyEvent(ctx, log, ev, epoch)
		}}
}

// ownOuterKeyLocked settles this site's outer key as it unseals, before
// its registries open: of the copies at hand (handed over from the
// escrow, or this site's key store after a rotation here) it takes the
// generation the ledger's newest KeySiteKey event names; it finishes a
// rotation cut short or ordered while sealed; it counts the chunks the
// site's copy holds against the key's nonce budget and rotates when fewer
// than Options.OuterRotateBelow seals remain. Under t.mu.
func (t *Guest) ownOuterKeyLocked(ctx context.Context, keys *seal.Keyring, a *activation) (*seal.SiteKey, error) {
	if t.def.Role == charter.RoleHome {
		return nil, nil // a home's copy carries no outer layer
	}
	handed, _ := a.outer.get(t.site)
	r := t.rotationLocked(keys, a.epoch)
	local, err := os.ReadFile(filepath.Join(r.layout.Keys(), OuterKeyFile(t.site)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("outer key of site %s: %w", t.site, err)
	}
	var own *seal.SiteKey
	if len(local) > 0 {
		if own, err = keys.UnwrapSiteKey(t.site, local); err != nil {
			return nil, fmt.Errorf("outer key of site %s in %s: %w", t.site, r.layout.Keys(), err)
		}
	}
	last, found, err := r.current(ctx)
	if err != nil {
		own.Wipe()
		return nil, err
	}
	switch {
	case handed != nil && (!found || handed.ID() == last.KeyID):
		own.Wipe()
		own = handed
	case own != nil && (!found || own.ID() == last.KeyID):
	default:
		own.Wipe()
		own = nil
	}
	if own == nil && handed == nil && !found {
		return nil, nil // a site without an outer key of its own
	}
	if own == nil && !r.journalNames(last.KeyID) {
		return nil, fmt.Errorf("outer key of site %s: no copy at hand is generation %d (key %x), the one the ledger names: hand over the site's newest escrow copy", t.site, last.Generation, last.KeyID[:8])
	}
	if own != nil && !r.pending() {
		var n uint64
		for _, reg := range r.registries {
			c, err := store.CountChunks(ctx, store.Prefixed(t.blobs, registry.BlobPrefix(reg)))
			if err != nil {
				return nil, fmt.Errorf("outer key of site %s: count its seals: registry %s: %w", t.site, reg, err)
			}
			n += c
		}
		own.CountSealed(n)
		below := t.outerRotateBelow()
		if own.Remaining() >= below {
			a.outer.set(t.site, own)
			return own, nil
		}
		t.logger.Warn("the site's outer key is past its rotation threshold", "guest", t.id, "site", t.site, "sealed", n, "remaining", own.Remaining(), "threshold", below)
	}
	next, err := r.run(ctx, own, [32]byte{})
	if err != nil {
		return nil, err
	}
	a.outer.set(t.site, next) // wipes the old generation's key
	return next, nil
}

// rotateOnOrder acts on a rotate-keys order naming this site. An active
// site holding its key rotates at once, its registries closed meanwhile
// and opened again under the new key; a site without its key at hand
// marks the request, and rotates at its next unseal.
func (t *Guest) rotateOnOrder(ctx context.Context, o *continuity.Order) {
	order := orderHash(o)
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	var own *seal.SiteKey
	if a != nil && a.outer != nil {
		own, _ = a.outer.get(t.site)
	}
	if a == nil || a.local == nil || own == nil || t.log.IsMirror() {
		l := t.outerLayout()
		if err := os.MkdirAll(l.Keys(), 0o700); err == nil {
			err = fsutil.Replace(filepath.Join(l.Keys(), rotateRequestFile(t.site)), order[:], 0o600)
		}
		t.logger.Warn("rotate-keys order for this site's outer key: it rotates at its next unseal", "guest", t.id, "site", t.site, "order", o.ID)
		return
	}
	// What writes on its own (Options.Writer) stops before the registries
	// close, and starts again over the new ones.
	a.stopWriterLocked()
	if err := a.local.Registries.Close(); err != nil {
		t.logger.Error("rotate-keys: closing the registries", "guest", t.id, "err", err)
	}
	next, err := t.rotationLocked(a.local.Keys, a.epoch).run(ctx, own, order)
	if err != nil {
		t.logger.Error("rotate-keys: the site's outer key did not rotate; it resumes at the next unseal", "guest", t.id, "site", t.site, "order", o.ID, "err", err)
		next = own
	} else {
		a.outer.set(t.site, next)
	}
	regs, err := t.openRegistriesLocked(ctx, a.local.Keys, next)
	if err != nil {
		t.logger.Error("rotate-keys: cannot open the registries again; seal and unseal the site", "guest", t.id, "err", err)
		a.local.Registries = nil
		t.wipeKeysLocked()
		return
	}
	a.local.Registries = regs
	t.writerLocked()
}
