package guest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store"
)

// Continuity at a site. Orders are ledger entries: whichever site writes
// an order's entry writes it in its own epoch. An activation is appended
// by the site it activates, which thereby becomes the writer of the next
// epoch; every other order (failback, drill, revoke-site, rotate-keys,
// amend) is appended by the current writer. A failback therefore ends the
// current writer's epoch in its own ledger: it stops writing, ships the
// order, and the site the order names takes over when the order reaches
// it. Every site folds the orders it holds into continuity.Epochs, which
// says whose checkpoint key signs each epoch: that is the fencing.

// epochWriters is replica.Learner over a guest's epochs: it learns, from
// the orders in a batch, who writes the epochs they open.
type epochWriters struct {
	c  *charter.Charter
	mu sync.Mutex
	ep *continuity.Epochs
	// orders folded so far, in ledger order, to replay into a scratch
	// Epochs when a batch must be checked without changing this one.
	orders []*continuity.Order
	// onFold is told of every order folded in (nil: none), and whether it
	// is still in force (see live).
	onFold func(o *continuity.Order, index uint64, live bool)
}

func newEpochWriters(c *charter.Charter) (*epochWriters, error) {
	ep, err := continuity.NewEpochs(c)
	if err != nil {
		return nil, err
	}
	return &epochWriters{c: c, ep: ep}, nil
}

// Verifiers implements replica.Writers.
func (w *epochWriters) Verifiers(epoch uint64) (note.Verifiers, error) {
	return writerVerifiers(w.c, w.ep, epoch)
}

func writerVerifiers(c *charter.Charter, ep *continuity.Epochs, epoch uint64) (note.Verifiers, error) {
	site, ok := ep.WriterAt(max(epoch, 1))
	if !ok {
		return nil, fmt.Errorf("no order opened epoch %d of %s", epoch, c.Guest.ID)
	}
	def, ok := c.Site(site)
	if !ok {
		return nil, fmt.Errorf("writer %s of epoch %d is not in the charter", site, epoch)
	}
	v, err := ledger.ParseVerifierKey(def.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key of site %s: %w", site, err)
	}
	return note.VerifierList(v), nil
}

// ordersIn returns the signed orders among encoded entries, with their
// entry times.
func ordersIn(first uint64, entries [][]byte) ([]foundOrder, error) {
	var out []foundOrder
	for i, raw := range entries {
		if len(raw) < ledger.EntryHeaderSize || raw[1] != byte(ledger.TypeOrder) {
			continue
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", first+uint64(i), err)
		}
		so, err := continuity.ParseSignedOrder(e.Payload)
		if err != nil {
			return nil, fmt.Errorf("entry %d: order: %w", first+uint64(i), err)
		}
		out = append(out, foundOrder{index: first + uint64(i), time: e.Time, so: so})
	}
	return out, nil
}

type foundOrder struct {
	index uint64
	time  time.Time
	so    *continuity.SignedOrder
}

// epochsView is the Writers a Learner hands back for one batch.
type epochsView struct {
	c  *charter.Charter
	ep *continuity.Epochs
}

func (v epochsView) Verifiers(epoch uint64) (note.Verifiers, error) {
	return writerVerifiers(v.c, v.ep, epoch)
}

// Learn implements replica.Learner: every order in the batch must verify
// — quorum of the charter, epoch, no replay — as of the time its entry
// was written.
func (w *epochWriters) Learn(first uint64, entries [][]byte) (replica.Writers, error) {
	found, err := ordersIn(first, entries)
	if err != nil || len(found) == 0 {
		return w, err
	}
	w.mu.Lock()
	scratch, err := continuity.NewEpochs(w.c)
	if err == nil {
		for _, o := range w.orders {
			if err = scratch.Apply(o); err != nil {
				break
			}
		}
	}
	w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		o, err := continuity.Verify(w.c, f.so, scratch.State(), f.time)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", f.index, err)
		}
		if err := scratch.Apply(o); err != nil {
			return nil, fmt.Errorf("entry %d: %w", f.index, err)
		}
	}
	return epochsView{w.c, scratch}, nil
}

// Commit implements replica.Learner.
func (w *epochWriters) Commit(first uint64, entries [][]byte, cp ledger.Checkpoint) {
	found, err := ordersIn(first, entries)
	if err != nil {
		return // Learn already refused such a batch
	}
	for _, f := range found {
		w.fold(&f.so.Order, f.index, live(&f.so.Order, cp.Epoch))
	}
}

// live reports whether an order a site receives is still in force, given
// the newest epoch its sender knew of (the batch checkpoint's). A site
// catching up on history — a home rebuilt from an embassy receives every
// order ever given — must not act again on orders that later ones have
// overtaken: an old failback naming it would make it the writer of an
// epoch long closed. A failback is appended in the epoch it closes, so it
// is in force only while no checkpoint of its own epoch exists; any other
// order only while no later epoch has begun.
func live(o *continuity.Order, senderEpoch uint64) bool {
	if o.Action == charter.ActionFailback {
		return senderEpoch < o.Epoch
	}
	return senderEpoch <= o.Epoch
}

func (w *epochWriters) fold(o *continuity.Order, index uint64, live bool) {
	w.mu.Lock()
	if err := w.ep.Apply(o); err != nil {
		w.mu.Unlock()
		return
	}
	w.orders = append(w.orders, o)
	cb := w.onFold
	w.mu.Unlock()
	if cb != nil {
		cb(o, index, live)
	}
}

// accept verifies a submitted order against the current epochs and, if
// commit succeeds (it appends the entry), folds it in.
func (w *epochWriters) accept(so *continuity.SignedOrder, now time.Time, commit func(*continuity.Order) (uint64, error)) (*continuity.Order, uint64, error) {
	var idx uint64
	o, err := w.ep.Accept(w.c, so, now, func(o *continuity.Order) error {
		var err error
		idx, err = commit(o)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	w.mu.Lock()
	w.orders = append(w.orders, o)
	cb := w.onFold
	w.mu.Unlock()
	if cb != nil {
		cb(o, idx, true)
	}
	return o, idx, nil
}

// foldLedger folds the orders already in a ledger.
// It reads every durable entry, not only those under the published
// checkpoint: a site that appended an order as the writer and stopped
// before its checkpoint was recorded must still know it wrote it.
func (w *epochWriters) foldLedger(ctx context.Context, l *ledger.Log) error {
	return ledger.Scan(ctx, ledger.DirFetcher(l.Dir()), 0, l.MirrorSize(), func(idx uint64, raw []byte) error {
		found, err := ordersIn(idx, [][]byte{raw})
		if err != nil {
			return err
		}
		for _, f := range found {
			w.mu.Lock()
			if err := w.ep.Apply(&f.so.Order); err != nil {
				w.mu.Unlock()
				return fmt.Errorf("ledger entry %d: %w", idx, err)
			}
			w.orders = append(w.orders, &f.so.Order)
			w.mu.Unlock()
		}
		return nil
	})
}

// activation is what an active guest holds beyond its mirror.
type activation struct {
	order    *continuity.Order
	readOnly bool
	local    *Local // nil until unsealed
	repl     *replica.Replicator
	stop     context.CancelFunc
	done     chan struct{}
	session  *continuity.UnsealSession

	// wrapped are the sites' wrapped outer keys handed over with the
	// shares (by site); outer holds them unwrapped once unsealed.
	wrapped map[string][]byte
	outer   *outerKeys

	// epoch is the epoch this site writes: the one its order opened.
	epoch uint64

	accepted, unsealed, indexed, firstRead time.Time
	handingOver                            bool

	// replP is repl for the registries' quorum wait, read without t.mu:
	// a writer that t.mu's holder waits for (svc) may be in that wait.
	replP atomic.Pointer[replica.Replicator]
	// svc is what Options.Writer started for this activation, svcCancel
	// its context's cancel (writerLocked).
	svc       io.Closer
	svcCancel context.CancelFunc
}

// fenceLocked stops this writer accepting writes: it is handing over.
// The registries refuse writes from here on, and what Options.Writer
// started is told to stop; it is waited for when the keys go.
func (a *activation) fenceLocked(t *Guest) {
	a.handingOver = true
	t.mode.Store(siteapi.ModeFenced)
	if a.local != nil {
		a.local.Registries.Fence(true)
	}
	if a.svcCancel != nil {
		a.svcCancel()
	}
}

// unfenceLocked lifts fenceLocked after a refused failback order, and
// starts Options.Writer again on a goroutine of the guest: the one it
// stopped may be waiting for the registries' exclusive lock, held now.
func (a *activation) unfenceLocked(t *Guest, mode siteapi.Mode) {
	a.handingOver = false
	t.mode.Store(mode)
	if a.local != nil {
		a.local.Registries.Fence(false)
	}
	if a.svc != nil {
		t.spawn(func(context.Context) {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.act == a {
				a.stopWriterLocked()
				t.writerLocked()
			}
		})
	}
}

// writerLocked starts Options.Writer if this site may write now with its
// registries open and it is not running.
func (t *Guest) writerLocked() {
	a := t.act
	if t.opts.Writer == nil || a == nil || a.local == nil || a.readOnly || a.handingOver || a.svc != nil || t.log.IsMirror() {
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	if svc := t.opts.Writer(ctx, a.local); svc != nil {
		a.svc, a.svcCancel = svc, cancel
		return
	}
	cancel()
}

// stopWriterLocked stops what Options.Writer started and waits for it.
func (a *activation) stopWriterLocked() {
	if a.svcCancel != nil {
		a.svcCancel()
		a.svcCancel = nil
	}
	if a.svc != nil {
		a.svc.Close()
		a.svc = nil
	}
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (t *Guest) status() siteapi.ContinuityStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.writers.ep.Current()
	wr, _ := t.writers.ep.WriterAt(cur)
	st := siteapi.ContinuityStatus{Guest: t.id, Site: t.site, Mode: t.currentMode(), Epoch: cur, Writer: wr, Size: t.log.MirrorSize()}
	if a := t.act; a != nil {
		if a.order != nil {
			st.Order = a.order.ID
		}
		st.ReadOnly = a.readOnly
		st.Unsealed = a.local != nil
		st.Accepted, st.Unsealed_, st.Indexed, st.FirstRead = tp(a.accepted), tp(a.unsealed), tp(a.indexed), tp(a.firstRead)
		if !a.firstRead.IsZero() && !a.unsealed.IsZero() {
			st.RTOSeconds = a.firstRead.Sub(later(a.accepted, a.unsealed)).Seconds()
		}
		if a.session != nil {
			have, need, _ := a.session.Status()
			st.Session, st.Shares, st.Threshold = a.session.ID(), have, need
		}
		if a.local != nil {
			st.Registries = a.local.Registries.Names()
		}
	}
	return st
}

var ErrNotWriter = errors.New("this site does not write the guest's ledger now")

// submit decides where an order may be appended and acts on it.
func (t *Guest) submit(ctx context.Context, so *continuity.SignedOrder, acceptUnfenced bool) (*continuity.Order, uint64, error) {
	var unfenced []string
	if so.Order.Action == charter.ActionActivate && so.Order.Site == t.site && t.ledger().IsMirror() {
		// Outside t.mu: it waits on the other embassies.
		var err error
		if unfenced, err = t.fencePeers(ctx, so, acceptUnfenced); err != nil {
			return nil, 0, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.opts.Now()
	o := &so.Order
	switch {
	case o.Action == charter.ActionActivate && o.Site == t.site:
		if !t.log.IsMirror() {
			return nil, 0, fmt.Errorf("site %s already writes %s's ledger", t.site, t.id)
		}
		o, idx, err := t.writers.accept(so, now, func(o *continuity.Order) (uint64, error) {
			return t.becomeWriter(ctx, so, o)
		})
		if err != nil {
			return nil, 0, err
		}
		if len(unfenced) > 0 {
			// The officials' choice to go ahead is part of the record.
			note, _ := json.Marshal(struct {
				Kind     string   `json:"kind"`
				Order    string   `json:"order"`
				Unfenced []string `json:"unfenced"`
			}{"activated-unfenced", o.ID, unfenced})
			if _, err := t.log.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: o.Epoch, Time: t.opts.Now(), Payload: note}); err != nil {
				t.logger.Error("activated, but cannot record the embassies not fenced", "guest", t.id, "err", err)
			}
		}
		// Outside the epochs' lock, which replication reads.
		if err := t.startReplication(); err != nil {
			t.logger.Error("activated, but cannot replicate to the other sites", "guest", t.id, "err", err)
		}
		return o, idx, nil
	case t.log.IsMirror():
		cur := t.writers.ep.Current()
		wr, _ := t.writers.ep.WriterAt(cur)
		return nil, 0, fmt.Errorf("%w: submit this %s order to site %s, the writer of epoch %d", ErrNotWriter, o.Action, wr, cur)
	case t.act != nil && t.act.handingOver:
		return nil, 0, fmt.Errorf("%w: site %s is handing over, or fenced: a newer epoch has another writer", ErrNotWriter, t.site)
	case o.Action == charter.ActionActivate:
		// Only the activated site appends its activation: it fences the
		// other embassies first (fence.go), which a writer appending it
		// on the activated site's behalf would skip.
		return nil, 0, fmt.Errorf("%w: an activation is submitted to the site it activates (%s), which appends it", ErrNotWriter, o.Site)
	}
	// This site writes: append the order in its own epoch, then act on it.
	raw, err := so.Marshal()
	if err != nil {
		return nil, 0, err
	}
	a := t.act
	epoch := t.writers.ep.Current()
	if a != nil && a.epoch != 0 {
		epoch = a.epoch
	}
	appendOrder := func() (*continuity.Order, uint64, error) {
		return t.writers.accept(so, now, func(o *continuity.Order) (uint64, error) {
			return t.log.Append(ctx, ledger.Entry{Type: ledger.TypeOrder, Epoch: epoch, Time: now, Payload: raw})
		})
	}
	if o.Action != charter.ActionFailback || a == nil {
		return appendOrder()
	}
	// A failback ends this site's epoch: nothing of its own may follow
	// the order in its ledger. Writes in progress finish first, new ones
	// are refused from here on; a refused order lifts the fence.
	var (
		got *continuity.Order
		idx uint64
	)
	run := func() error {
		mode := t.currentMode()
		a.fenceLocked(t)
		got, idx, err = appendOrder()
		if err != nil {
			a.unfenceLocked(t, mode)
		}
		return err
	}
	if a.local != nil {
		err = a.local.Registries.Exclusive(run)
	} else {
		err = run()
	}
	return got, idx, err
}

// becomeWriter turns the guest's mirror into the writer of the order's
// epoch: the mirror is closed and the ledger reopened with this site's
// checkpoint key, the order is its first entry of the new epoch, and
// the caller then starts replication to the other sites. It runs under
// t.mu, inside the epochs' lock (so it must not read the epochs): if it
// fails, the order is not accepted.
func (t *Guest) becomeWriter(ctx context.Context, so *continuity.SignedOrder, o *continuity.Order) (uint64, error) {
	raw, err := so.Marshal()
	if err != nil {
		return 0, err
	}
	if err := t.reopen(ctx, false, o.Epoch); err != nil {
		return 0, err
	}
	idx, err := t.log.Append(ctx, ledger.Entry{Type: ledger.TypeOrder, Epoch: o.Epoch, Time: t.opts.Now(), Payload: raw})
	if err != nil {
		return 0, fmt.Errorf("append the order: %w", err)
	}
	t.act = &activation{order: o, readOnly: o.Access == continuity.AccessReadOnly, accepted: t.opts.Now(), epoch: o.Epoch}
	t.mode.Store(siteapi.ModeActive)
	return idx, nil
}

// reopen closes the guest's ledger and opens it again, as a mirror or as
// this site's own writer log of epoch (and later ones), and swaps the
// replication handler over it. A writer's key signs no checkpoint of the
// earlier epochs its ledger holds: those are their writers' to sign.
func (t *Guest) reopen(ctx context.Context, mirror bool, epoch uint64) error {
	lo := t.opts.Ledger
	lo.Origin, lo.Mirror, lo.Signer, lo.FromEpoch = t.charter.Guest.Origin, mirror, nil, 0
	lo.Logger = t.logger.With("guest", t.id, "component", "ledger")
	if !mirror {
		if epoch > 1 {
			// Epoch 1 has no earlier writer: the home signs from the
			// start, the empty tree included, as any log does.
			lo.FromEpoch = epoch
		}
		signer, _, err := ledger.NewLogSigner(t.charter.Guest.Origin, t.key)
		if err != nil {
			return err
		}
		lo.Signer = signer
	}
	if err := t.recv.Close(); err != nil {
		return err
	}
	if err := t.log.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
		return fmt.Errorf("close the ledger of %s: %w", t.id, err)
	}
	l, err := ledger.Open(ctx, filepath.Join(t.dir, "ledger"), lo)
	if err != nil {
		return fmt.Errorf("reopen the ledger of %s: %w", t.id, err)
	}
	t.log = l
	t.notices.setLog(l)
	return t.newReceiver()
}

// startReplication ships from this site, now the writer, to every other
// site of the charter that is not revoked.
func (t *Guest) startReplication() error {
	rc := t.opts.Replication
	if rc.Disabled {
		t.logger.Warn("replication disabled by configuration: no site receives this guest's writes", "guest", t.id)
		return nil
	}
	var targets []replica.Target
	for _, def := range t.charter.Sites {
		if def.ID == t.site || slices.Contains(t.writers.ep.Revoked(), def.ID) {
			continue
		}
		sink, err := t.opts.Remote(t.charter, def)
		if err != nil {
			t.logger.Warn("not shipping to a site", "guest", t.id, "to_site", def.ID, "err", err)
			continue
		}
		targets = append(targets, replica.Target{Site: def.ID, Sink: sink})
	}
	repl, err := replica.NewReplicator(replica.ReplicatorOptions{
		Charter: t.charter, Self: t.site, Log: t.log, Targets: targets, Writers: t.writers,
		Source: guestSource{t: t, log: t.log},
		Shipper: replica.ShipperOptions{MaxBatchEntries: rc.MaxBatchEntries, BlobParallel: rc.BlobParallel,
			BytesPerSecond: rc.BytesPerSecond, OnState: t.fenceIfNewer, OnSuspension: t.recordSuspension,
			OuterKey: outerKeyFunc(t.charter, func(site string) (*seal.SiteKey, bool) {
				t.mu.Lock()
				defer t.mu.Unlock()
				a := t.act
				if a == nil || a.outer == nil {
					return nil, false
				}
				// Before each shipment: the writer rotates a key whose
				// budget passed the threshold while it ran.
				t.standbyRotationLocked(t.ctx, a, site, true, nil)
				return a.outer.get(site)
			})},
		Logger: t.logger.With("guest", t.id, "component", "replica"),
	})
	if err != nil {
		return err
	}
	// Under the guest's context: Close ends the shippers even if the
	// reseal that waits for them (resealLocked) were skipped.
	ctx, cancel := context.WithCancel(t.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = repl.Run(ctx)
	}()
	t.act.repl, t.act.stop, t.act.done = repl, cancel, done
	t.act.replP.Store(repl)
	return nil
}

// fenceIfNewer stops this site writing when another site reports a newer
// epoch than the one it writes, or a fence from one: officials activated
// another site while this one could not be reached.
//
// It runs on a shipper, which a reseal waits for under t.mu: the fencing
// itself goes to its own goroutine.
func (t *Guest) fenceIfNewer(site string, st *replica.State) {
	// Every state a site reports comes here: only one ahead of every
	// epoch this site has folded (its own, while it writes) is news.
	if max(st.Epoch, st.Fence) <= t.writers.ep.Current() {
		return
	}
	t.spawn(func(context.Context) { t.fenceIfNewerThan(site, st.Epoch, st.Fence) })
}

func (t *Guest) fenceIfNewerThan(site string, epoch, fenced uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if a == nil || a.handingOver || t.log.IsMirror() || max(epoch, fenced) <= a.epoch {
		return
	}
	a.fenceLocked(t)
	t.logger.Error("FENCED: a site reports a newer epoch; this site accepts no more writes", "guest", t.id, "reported_by", site,
		"site_epoch", epoch, "site_fenced_from", fenced, "own_epoch", a.epoch)
}

// guestSource is what an active guest ships from: its own ledger, and
// its packs — located through the unsealed registries' stores once they
// are open (they write new packs), else through the receiver's keyless
// ones.
type guestSource struct {
	t   *Guest
	log *ledger.Log
}

func (s guestSource) Next(ctx context.Context, size uint64) ([]byte, ledger.Checkpoint, error) {
	return s.log.WaitPublished(ctx, size+1)
}

func (s guestSource) Fetcher() ledger.Fetcher { return ledger.DirFetcher(s.log.Dir()) }

func (s guestSource) Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error) {
	if regs := s.t.registries(); regs != nil {
		return replica.LocalSource{Blobs: regs.Blobs}.Locate(ctx, reg, ids)
	}
	return s.t.receiver().Locate(ctx, reg, ids)
}

func (s guestSource) Object(ctx context.Context, reg, name string) ([]byte, error) {
	return replica.LocalSource{Backend: s.t.blobs}.Object(ctx, reg, name)
}

// registries returns the unsealed registries, or nil.
func (t *Guest) registries() *registry.Registries {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.act == nil || t.act.local == nil {
		return nil
	}
	return t.act.local.Registries
}

// receiver returns the current replication receiver.
func (t *Guest) receiver() *replica.Receiver {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	return t.recv
}

// newReceiver builds the receiver over the guest's current ledger and
// swaps the replication handler to it.
func (t *Guest) newReceiver() error {
	if old := t.receiver(); old != nil {
		t.usedAtOpen = old.Used()
	}
	recv, err := replica.NewReceiver(replica.ReceiverOptions{
		Charter: t.charter, Site: t.site, Log: t.log, Blobs: t.blobs, Cosigner: t.cosigner, Writers: t.writers,
		Quota: t.quota, Used: t.usedAtOpen, Logger: t.logger.With("guest", t.id),
		Suspended:  func() error { return t.suspended(t.opts.Now()) },
		Fence:      t.fence.get,
		Suspension: t.susp.pending,
		Accepted:   func(b *replica.Batch) { t.lastBatch.Store(t.opts.Now().UnixNano()) },
		Damaged:    func(error) { t.CheckLedger() },
		Stored:     t.BundleDamage,
	})
	if err != nil {
		return err
	}
	t.rmu.Lock()
	t.recv = recv
	t.rmu.Unlock()
	return nil
}

// onFold acts on an order once this site holds it: a failback or an
// activation of another site ends this site's epoch as writer; a failback
// naming this site makes it the writer. Of an order overtaken by later
// ones (not live), only a revocation is acted on: a home rebuilt from an
// embassy must still destroy its copies of a revoked site's key.
func (t *Guest) onFold(o *continuity.Order, index uint64, live bool) {
	if !live && o.Action != charter.ActionRevokeSite {
		t.logger.Info("order in the ledger's history, overtaken by later orders: not acted on", "guest", t.id, "order", o.ID, "action", o.Action, "epoch", o.Epoch, "ledger_index", index)
		return
	}
	switch o.Action {
	case charter.ActionActivate, charter.ActionFailback:
	case charter.ActionDrill:
		if o.Site == t.site && t.opts.Now().Before(o.Expires) {
			t.spawn(func(ctx context.Context) { t.startDrill(ctx, o, index) })
		}
		return
	case charter.ActionRevokeSite:
		t.spawn(func(ctx context.Context) { t.revoke(ctx, o, index) })
		return
	case charter.ActionRotateKeys:
		// A home writing the order's epoch rotates the key it ships to
		// the site under (homerotate.go); the site then re-seals nothing.
		// Otherwise the site rotates its own key (rotate.go).
		writer, _ := t.writers.ep.WriterAt(o.Epoch)
		wdef, _ := t.charter.Site(writer)
		byHome := wdef.Role == charter.RoleHome && writer != o.Site
		switch {
		case o.Site == t.site && !byHome:
			t.spawn(func(ctx context.Context) { t.rotateOnOrder(ctx, o) })
		case o.Site == t.site:
			t.logger.Info("rotate-keys order for this site's outer key: the home that writes rotates the key it ships here under", "guest", t.id, "site", t.site, "order", o.ID, "writer", writer)
		case byHome && writer == t.site:
			if def, ok := t.charter.Site(o.Site); ok && def.Role == charter.RoleEmbassy {
				t.spawn(func(ctx context.Context) { t.rotateStandbyOnOrder(ctx, o) })
			}
		}
		return
	default:
		return
	}
	if o.Site == t.site {
		if o.Action == charter.ActionFailback {
			t.spawn(func(ctx context.Context) { t.takeOver(ctx, o) })
		}
		return
	}
	// Another site writes the next epoch. If this site writes now, it
	// hands over: stop writing at once, ship up to the order, reseal.
	t.spawn(func(ctx context.Context) { t.handOver(ctx, o, index) })
}

// takeOver makes this site the writer after a failback order naming it
// arrived by replication: its mirror holds the order, written in the
// previous writer's epoch; this site writes from the order's epoch on.
func (t *Guest) takeOver(ctx context.Context, o *continuity.Order) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.log.IsMirror() {
		return
	}
	// A home rebuilt from one embassy holds stubs for the registries that
	// embassy may not hold: it fetches them from the sites that do before
	// it writes. What no site can supply stays a stub, and is logged:
	// refusing the failback here would leave the guest with no writer,
	// since the old one reseals regardless.
	if t.rootFile != "" {
		if n, err := t.fillWithheld(ctx); err != nil {
			t.logger.Error("failback: withheld entries not all filled; the home will not serve them", "guest", t.id, "filled", n, "err", err)
		} else if n > 0 {
			t.logger.Warn("failback: withheld entries filled from the sites that hold them", "guest", t.id, "filled", n)
		}
	}
	if err := t.reopen(ctx, false, o.Epoch); err != nil {
		t.logger.Error("failback: cannot become the writer", "guest", t.id, "err", err)
		return
	}
	t.act = &activation{order: o, readOnly: false, accepted: t.opts.Now(), epoch: o.Epoch}
	t.mode.Store(siteapi.ModeActive)
	// The order is in the previous writer's epoch; this site's first
	// entry opens its own, so that its checkpoints are of its epoch.
	note, _ := json.Marshal(struct {
		Kind  string `json:"kind"`
		Order string `json:"order"`
		Epoch uint64 `json:"epoch"`
		Site  string `json:"site"`
	}{"epoch-opened", o.ID, o.Epoch, t.site})
	if _, err := t.log.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: o.Epoch, Time: t.opts.Now(), Payload: note}); err != nil {
		t.logger.Error("failback: cannot open the epoch", "guest", t.id, "err", err)
		return
	}
	// Outer keys destroyed in standby are recorded now that this site
	// writes (the fingerprint is unknown: the copies were never opened).
	for _, r := range t.shredded {
		raw, _ := (&continuity.SignedOrder{Order: *r}).Marshal()
		fp := sha256.Sum256([]byte("no key at hand: " + r.Site))
		if err := recordShred(ctx, t.id, r.Site, fp, raw, t.log, o.Epoch, t.opts.Now); err != nil {
			t.logger.Error("failback: cannot record a destroyed outer key", "guest", t.id, "revoked", r.Site, "err", err)
		}
	}
	t.shredded = nil
	if err := t.startReplication(); err != nil {
		t.logger.Error("failback: cannot replicate", "guest", t.id, "err", err)
	}
	t.logger.Warn("failback: this site writes the guest's ledger again", "guest", t.id, "epoch", o.Epoch)
	if t.rootFile != "" {
		// A home keeps its root key sealed under its passphrase: it unseals
		// at once. An embassy taking over waits for the custodians.
		if err := t.unsealFromFile(ctx); err != nil {
			t.logger.Error("failback: cannot open the root key", "guest", t.id, "err", err)
		}
	}
}

// handOver ends this site's epoch as writer after an order naming another
// writer: writes stop, replication continues until every other site that
// can be reached holds the order (bounded), then the keys are wiped and the
// ledger becomes a mirror again.
func (t *Guest) handOver(ctx context.Context, o *continuity.Order, index uint64) {
	t.mu.Lock()
	a := t.act
	if a == nil || t.log.IsMirror() {
		t.mu.Unlock()
		return
	}
	a.fenceLocked(t)
	repl := a.repl
	t.mu.Unlock()
	// Reseal only once the new writer holds the order: until then this
	// site is the only one that can ship it, and its keys are what it
	// ships attachments with. It writes nothing meanwhile.
	for repl != nil {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := repl.Tracker().WaitSite(wctx, o.Site, index)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			// The site is closing: it reseals as it closes, and reopens as
			// the writer still handing over, where the ledger says so.
			return
		}
		t.logger.Warn("hand-over: waiting for the new writer to hold the failback order", "guest", t.id, "new_writer", o.Site, "order_index", index)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resealLocked()
	if err := t.reopen(ctx, true, 0); err != nil {
		t.logger.Error("hand-over: cannot reopen as a mirror", "guest", t.id, "err", err)
		return
	}
	t.act = nil
	t.mode.Store(siteapi.ModeStandby)
	t.logger.Warn("hand-over done: this site is a sealed mirror again", "guest", t.id, "new_writer", o.Site, "epoch", o.Epoch)
}

// resealLocked stops replication from this site and wipes the keys.
func (t *Guest) resealLocked() {
	a := t.act
	if a == nil {
		return
	}
	if a.stop != nil {
		a.stop()
		<-a.done
		a.stop = nil
	}
	t.wipeKeysLocked()
}

// wipeKeysLocked is chancery seal: the registries close and every key the
// activation held is wiped — the keyring derived from the root, the
// sites' outer keys, an open unseal session, the wrapped keys handed over.
// A site still writing the ledger ships entries on, but no attachments
// (those need the outer keys) until it is unsealed again.
func (t *Guest) wipeKeysLocked() {
	a := t.act
	if a == nil {
		return
	}
	if a.session != nil {
		a.session.Close()
		a.session = nil
	}
	if a.outer != nil {
		a.outer.wipe()
	}
	for k, w := range a.wrapped {
		clear(w)
		delete(a.wrapped, k)
	}
	// What writes on its own stops before the registries close.
	a.stopWriterLocked()
	if a.local != nil {
		if a.local.Registries != nil {
			a.local.Registries.Close()
		}
		if a.local.Keys != nil {
			a.local.Keys.Wipe()
		}
		a.local = nil
	}
}

// renewSession returns sess if it is open and unexpired, else (closing
// it) a new session over the guest's custody package, valid for ttl.
func (t *Guest) renewSession(sess *continuity.UnsealSession, ttl time.Duration) (*continuity.UnsealSession, error) {
	if t.custody == nil {
		return nil, fmt.Errorf("site %s has no custody package for %s (guests[].custody in its config)", t.site, t.id)
	}
	if sess != nil && !t.opts.Now().Before(sess.Expires()) {
		// An expired session is of no use: open a new one.
		sess.Close()
		sess = nil
	}
	if sess != nil {
		return sess, nil
	}
	sess, err := continuity.NewUnsealSession(t.custody, ttl)
	if err != nil {
		return nil, err
	}
	sess.OnCombine(func() { t.opts.RootsRebuilt.Add(1) })
	return sess, nil
}

// sessionResponse says where a session stands, with the session's
// recipient signed by the site's checkpoint key for the guest, for the
// custodians to check against the charter before they seal a share.
func (t *Guest) sessionResponse(sess *continuity.UnsealSession, purpose string, have, need int) *siteapi.UnsealResponse {
	st, err := sess.Statement(t.site, purpose, t.key)
	if err != nil {
		// A guest always holds its checkpoint key; without one the
		// custodians' tools refuse the recipient, which is the safe side.
		t.logger.Error("unseal session: cannot sign its recipient", "guest", t.id, "err", err)
	}
	return &siteapi.UnsealResponse{Session: sess.ID(), Recipient: sess.Recipient(), RecipientStatement: st, Expires: sess.Expires(), Have: have, Need: need}
}

func (t *Guest) openSession() (*siteapi.UnsealResponse, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if a == nil {
		return nil, fmt.Errorf("guest %s is not activated at site %s: submit an activation order first", t.id, t.site)
	}
	if a.local != nil {
		return nil, fmt.Errorf("guest %s is already unsealed at site %s", t.id, t.site)
	}
	sess, err := t.renewSession(a.session, time.Hour)
	if err != nil {
		return nil, err
	}
	a.session = sess
	have, need, _ := sess.Status()
	return t.sessionResponse(sess, continuity.PurposeActivation, have, need), nil
}

func (t *Guest) addShare(ctx context.Context, session string, sealed []byte) (*siteapi.UnsealResponse, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if a == nil || a.session == nil || a.session.ID() != session {
		return nil, fmt.Errorf("no unseal session %q open for %s at site %s", session, t.id, t.site)
	}
	have, need, err := a.session.Submit(sealed)
	if err != nil {
		return nil, err
	}
	resp := t.sessionResponse(a.session, continuity.PurposeActivation, have, need)
	if have < need {
		return resp, nil
	}
	root, err := a.session.Combine()
	a.session = nil
	if err != nil {
		return nil, err
	}
	err = t.openKeysLocked(ctx, root)
	root.Wipe()
	if err != nil {
		return nil, err
	}
	resp.Unsealed = true
	return resp, nil
}

// unsealFromFile opens the home's own sealed root key file.
func (t *Guest) unsealFromFile(ctx context.Context) error {
	root, err := seal.ReadRootKeyFile(t.rootFile, t.opts.Passphrase)
	if err != nil {
		return err
	}
	t.opts.RootsRebuilt.Add(1)
	defer root.Wipe()
	return t.openKeysLocked(ctx, root)
}

// openKeysLocked derives the keyring, opens the registries the order puts
// in scope (their index rebuilt from the ledger) and serves the API.
func (t *Guest) openKeysLocked(ctx context.Context, root *seal.RootKey) error {
	a := t.act
	a.unsealed = t.opts.Now()
	keys := seal.NewKeyring(t.id, root)
	a.outer = &outerKeys{}
	if err := t.handedOuterKeysLocked(ctx, keys, a); err != nil {
		keys.Wipe()
		return err
	}
	counted := map[string]bool{}
	if t.rootFile != "" {
		// A home unsealing from its own key store holds the embassies'
		// outer keys there too.
		hl := state.Layout{Dir: filepath.Dir(filepath.Dir(t.rootFile))}
		hk, err := loadHomeOuterKeys(t.charter, hl, keys, t.writers.ep.Revoked())
		if err == nil {
			err = adoptRotatedOuterKeys(ctx, t.log, t.id, hl, keys, hk, t.logger)
		}
		if err != nil {
			keys.Wipe()
			return err
		}
		for _, s := range t.charter.Sites {
			if k, ok := hk.get(s.ID); ok {
				known, err := armSealCount(hl, s.ID, k)
				if err != nil {
					keys.Wipe()
					return err
				}
				counted[s.ID] = known
				a.outer.set(s.ID, k)
			}
		}
	}
	own, err := t.ownOuterKeyLocked(ctx, keys, a)
	if err != nil {
		keys.Wipe()
		return err
	}
	regs, err := t.openRegistriesLocked(ctx, keys, own)
	if err != nil {
		keys.Wipe()
		return err
	}
	a.indexed = t.opts.Now()
	a.local = &Local{Site: t.site, Charter: t.charter, Log: t.log, Keys: keys, Blobs: t.blobs, Registries: regs}
	if t.rootFile != "" {
		a.local.Layout = state.Layout{Dir: filepath.Dir(filepath.Dir(t.rootFile))}
		for _, site := range slices.Sorted(maps.Keys(counted)) {
			t.standbyRotationLocked(ctx, a, site, counted[site], nil)
		}
	}
	t.logger.Warn("unsealed: serving the guest's registries", "guest", t.id, "registries", regs.Names(),
		"index_seconds", a.indexed.Sub(a.unsealed).Seconds())
	t.writerLocked()
	return nil
}

// openRegistriesLocked opens the registries the activation's order puts in
// scope (their index rebuilt from the ledger), own the site's outer key.
func (t *Guest) openRegistriesLocked(ctx context.Context, keys *seal.Keyring, own *seal.SiteKey) (*registry.Registries, error) {
	a := t.act
	c := t.charter
	if a.order != nil && len(a.order.Registries) > 0 {
		// Serve only the registries in scope: a narrowed copy of the
		// charter's placement for this site.
		cc := *c
		cc.Registries = nil
		for _, r := range c.Registries {
			if slices.Contains(a.order.Registries, r.Name) {
				cc.Registries = append(cc.Registries, r)
			}
		}
		c = &cc
	}
	regs, err := registry.Open(ctx, registry.Options{Charter: c, Site: t.site, Log: t.log, Keys: keys, Blobs: t.blobs,
		Now: t.opts.Now, Epoch: func() uint64 { return a.epoch }, Outer: own,
		Replicated: func(ctx context.Context, reg string, idx uint64) error {
			repl := a.replP.Load()
			if repl == nil {
				return nil
			}
			ctx, cancel := context.WithTimeout(ctx, cmp.Or(t.opts.Replication.QuorumTimeout, 30*time.Second))
			defer cancel()
			return repl.Replicated(ctx, reg, idx)
		}})
	if err != nil {
		return nil, fmt.Errorf("open the registries of %s: %w", t.id, err)
	}
	return regs, nil
}

// maxAccessResult bounds the JSON of one continuity.AccessResult: a 32-byte id in
// base64 (44), a uint64 (at most 20 digits), the names and punctuation.
const maxAccessResult = len(`{"blind_id":"","version":},`) + 44 + 20

// AttachmentDigest is the Digest an access entry gives an attachment
// served: its store reference's hash, blinded with the registry's keys
// (BlindIndex of the reserved field "\x00attachment-ref"), so whoever
// holds the keys can tell which bytes were served and a host cannot.
func AttachmentDigest(rk *seal.RegistryKeys, ref store.Ref) [32]byte {
	h := ref.Hash()
	return rk.BlindIndex("\x00attachment-ref", string(h[:]))
}

// accessPayloads turns a read into access entry payloads: one, or for a
// find too large for one entry, as many as its results need.
func accessPayloads(rk *seal.RegistryKeys, head continuity.AccessEntry, rd *Read) ([][]byte, error) {
	e := head
	e.Kind = rd.Kind
	switch rd.Kind {
	case continuity.AccessRecord, continuity.AccessHistory, continuity.AccessAttachment:
		b := rk.BlindID(rd.ID)
		e.BlindID = b[:]
		if len(rd.Records) == 1 {
			e.Version = rd.Records[0].Version
		}
		if n := len(rd.Versions); n > 0 {
			e.Version = rd.Versions[n-1].Version
		}
		if rd.Attachment != nil {
			n := rk.BlindIndex("\x00attachment", rd.Attachment.Name)
			// Keyed, like every other value in the entry: the bare
			// reference hash would let a host search the exact size and
			// chunk order out of the entry's chunk set.
			d := AttachmentDigest(rk, rd.Attachment.Ref)
			e.Attachment, e.Digest = n[:], d[:]
		}
		p, err := json.Marshal(e)
		return [][]byte{p}, err
	case continuity.AccessFind:
		v := rk.BlindIndex(rd.Field, rd.Value)
		e.Field, e.Value = rd.Field, v[:]
		res := make([]continuity.AccessResult, len(rd.Records))
		for i, rec := range rd.Records {
			b := rk.BlindID(rec.ID)
			res[i] = continuity.AccessResult{BlindID: b[:], Version: rec.Version}
		}
		p, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		// Room for the part numbers too, in case the results need parts.
		per := (ledger.MaxPayloadSize - len(p) - len(`,"results":[],"part":,"parts":`) - 2*20) / maxAccessResult
		if per < 1 {
			return nil, fmt.Errorf("access entry of a find in registry %s: the query alone fills an entry", rd.Registry)
		}
		parts := max(1, (len(res)+per-1)/per)
		var out [][]byte
		for i := 0; i < parts; i++ {
			pe := e
			pe.Results = res[i*per : min(len(res), (i+1)*per)]
			if parts > 1 {
				pe.Part, pe.Parts = i+1, parts
			}
			p, err := json.Marshal(pe)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	return nil, fmt.Errorf("access entry: unknown kind of read %q", rd.Kind)
}

// recordAccess appends the access entries of a read before it is served;
// the read is refused if it returns an error. The entries of one read are
// appended as one batch: all of them, or none.
func (t *Guest) recordAccess(ctx context.Context, official string, rd *Read) error {
	t.mu.Lock()
	a := t.act
	var keys *seal.Keyring
	if a != nil && a.local != nil {
		keys = a.local.Keys
	}
	t.mu.Unlock()
	if keys == nil {
		return errors.New("guest sealed while reading")
	}
	payloads, err := accessPayloads(keys.Registry(rd.Registry), continuity.AccessEntry{Official: official, Site: t.site, Registry: rd.Registry}, rd)
	if err != nil {
		return err
	}
	now := t.opts.Now()
	es := make([]ledger.Entry, len(payloads))
	for i, p := range payloads {
		es[i] = ledger.Entry{Type: ledger.TypeAccess, Epoch: a.epoch, Time: now, Payload: p}
	}
	if _, err := t.log.AppendBatch(ctx, es); err != nil {
		return fmt.Errorf("record the access in the ledger: %w", err)
	}
	t.mu.Lock()
	if t.act == a && a.firstRead.IsZero() {
		a.firstRead = t.opts.Now()
		t.logger.Warn("first read served", "guest", t.id, "rto_seconds", a.firstRead.Sub(later(a.accepted, a.unsealed)).Seconds())
	}
	t.mu.Unlock()
	return nil
}

// opener is the order that opened epoch — the activation or failback
// naming its writer — or nil for epoch 1, which the charter opens.
func (w *epochWriters) opener(epoch uint64) *continuity.Order {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.orders) - 1; i >= 0; i-- {
		o := w.orders[i]
		if o.Epoch == epoch && (o.Action == charter.ActionActivate || o.Action == charter.ActionFailback) {
			return o
		}
	}
	return nil
}

// ledger returns the guest's current ledger (mirror or writer).
func (t *Guest) ledger() *ledger.Log {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.log
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// revoke acts on a revoke-site order at this site. The writer stops
// shipping to the revoked site and forgets its outer key; a home (which
// keeps the guest's key store and escrow in its state directory) destroys
// every wrapped copy and records the shredding in the ledger.
func (t *Guest) revoke(ctx context.Context, o *continuity.Order, index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if t.log.IsMirror() && t.rootFile != "" {
		// A home in standby — rebuilt from an embassy, catching up on
		// orders given while it was gone — still holds the key store and
		// escrow of its state directory: it destroys the copies at once,
		// and records that in its ledger once it writes again.
		l := state.Layout{Dir: filepath.Dir(filepath.Dir(t.rootFile))}
		if err := destroyOuterKeyCopies(l, o.Site); err != nil {
			t.logger.Error("revocation: could not destroy every copy of the site's outer key", "guest", t.id, "revoked", o.Site, "err", err)
			return
		}
		t.shredded = append(t.shredded, o)
		t.logger.Warn("site revoked: this standby home destroyed its copies of the site's outer key (key store and escrow)", "guest", t.id, "revoked", o.Site, "order", o.ID, "ledger_index", index)
		return
	}
	if a == nil || t.log.IsMirror() {
		return // a mirror holds no key and ships nothing
	}
	if a.repl != nil {
		a.repl.Stop(o.Site)
	}
	var fp [32]byte
	if a.outer != nil {
		if k, ok := a.outer.get(o.Site); ok {
			fp = k.ID()
		}
		a.outer.drop(o.Site)
	}
	if fp == ([32]byte{}) {
		fp = sha256.Sum256([]byte("no key at hand: " + o.Site))
	}
	if t.rootFile != "" {
		l := state.Layout{Dir: filepath.Dir(filepath.Dir(t.rootFile))}
		raw, _ := (&continuity.SignedOrder{Order: *o}).Marshal()
		if err := shredOuterKey(ctx, l, t.id, o.Site, fp, raw, t.log, t.writers.ep.Current(), t.opts.Now); err != nil {
			t.logger.Error("revocation: could not destroy every copy of the site's outer key", "guest", t.id, "revoked", o.Site, "err", err)
			return
		}
	}
	if t.rootFile != "" {
		t.logger.Warn("site revoked: its outer key destroyed in the key store and escrow, nothing more is shipped to it", "guest", t.id, "revoked", o.Site, "order", o.ID, "ledger_index", index)
	} else {
		t.logger.Warn("site revoked: nothing more is shipped to it and this site forgot its outer key; the home's key store and the escrow still hold wrapped copies until the home destroys them", "guest", t.id, "revoked", o.Site, "order", o.ID, "ledger_index", index)
	}
}
