package guest

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// Drills (docs/continuity.md): a rehearsal of activation at an
// embassy under a drill order, without fencing anyone.
//
//  1. Officials sign a drill order (action drill, the site, the current
//     epoch, registries optional) and submit it to the writer, which
//     appends it like any order but the activation.
//  2. Replication brings it to the site; when its epochs fold it in,
//     startDrill puts the guest in siteapi.ModeDrill. The site stays a mirror: it
//     keeps receiving, nothing is fenced, and it never writes the ledger.
//     RPO is measured now, against the writer's signed checkpoint.
//  3. An official opens a drill unseal session (POST .../drill/unseal);
//     custodians reseal their shares to it and submit them
//     (POST .../drill/unseal/{session}).
//  4. Each share is opened with the session's one-time key and verified
//     against the custody package; at the threshold the session attests
//     that the site could rebuild the root key (continuity.UnsealSession.
//     Attest) and wipes the shares. The root key is never rebuilt at the
//     drilled site, no keyring is derived, nothing is decrypted: a host
//     that dumps the process during a drill finds no key of the guest's
//     (docs/threat-model.md). A random sample of record entries of the
//     registries in scope is checked keyless: each entry's inclusion in the
//     writer's signed tree, and that it is a well-formed sealed record
//     entry of its registry with a commitment. Decrypting a sample is the
//     guest's to do on its own machine (docs/continuity.md).
//  5. The shares and the session are wiped and the guest is in standby
//     again. The report, signed with the site's checkpoint key
//     for the guest, is sent to the writer, which checks it and appends it
//     as a drill-report entry. GET .../drill shows the last one.

// DrillSampleSize bounds how many record entries a drill opens and checks.
const DrillSampleSize = 100

const (
	// maxDrillReason bounds one failure's reason, so that a report of a
	// whole failed sample still fits in one ledger entry.
	maxDrillReason = 300
	// drillTimeout bounds the sandbox's life once the shares are in.
	drillTimeout = time.Hour
	// drillDeliveryWindow is how long a site keeps trying to have its
	// report recorded by the writer.
	drillDeliveryWindow = 30 * time.Minute
)

// drillLedgerOf returns the drill index of a writer's ledger. A guest is
// written by a site through at most a few ledgers over its life (reopened
// at an activation or a failback), so entries are kept until Close.
func (t *Guest) drillLedgerOf(l *ledger.Log) *drillLedger {
	t.drillMu.Lock()
	defer t.drillMu.Unlock()
	if t.drillLedgers == nil {
		t.drillLedgers = map[*ledger.Log]*drillLedger{}
	}
	d, ok := t.drillLedgers[l]
	if !ok {
		d = &drillLedger{}
		t.drillLedgers[l] = d
	}
	return d
}

// drillState is a guest's drill: the one running, and the last report.
// Lock order: drillState.mu before Guest.mu.
type drillState struct {
	mu   sync.Mutex
	run  *drillRun
	last *continuity.DrillReport
	// recorded is the last report's ledger index at the writer, once the
	// writer has appended it; recordErr why it is not yet.
	recorded  *uint64
	recordErr string
}

type drillRun struct {
	order    *continuity.Order
	index    uint64
	started  time.Time
	mirror   uint64
	rpo      drillRPO
	rpoDone  chan struct{}
	session  *continuity.UnsealSession
	unsealed time.Time // the threshold of verified shares was reached: sampling
	expiry   *time.Timer
}

type drillRPO struct {
	entries    uint64
	seconds    float64
	basis      string
	writerSize uint64
}

// startDrill begins a drill under an accepted drill order naming this site.
func (t *Guest) startDrill(ctx context.Context, o *continuity.Order, index uint64) {
	lg := t.logger.With("guest", t.id, "order", o.ID)
	now := t.opts.Now()
	if !now.Before(o.Expires) {
		lg.Warn("drill order reached this site after it expired: no drill", "expired", o.Expires)
		return
	}
	d := &t.drill
	d.mu.Lock()
	if d.run != nil {
		running := d.run.order.ID
		d.mu.Unlock()
		lg.Warn("drill order ignored: a drill is already running here", "running", running)
		return
	}
	t.mu.Lock()
	mode := t.currentMode()
	if t.act != nil || !t.log.IsMirror() || mode != siteapi.ModeStandby {
		t.mu.Unlock()
		d.mu.Unlock()
		lg.Warn("drill order ignored: a drill runs only at a sealed mirror in standby", "mode", mode)
		return
	}
	l := t.log
	run := &drillRun{order: o, index: index, started: now, mirror: l.MirrorSize(), rpoDone: make(chan struct{})}
	t.mode.Store(siteapi.ModeDrill)
	t.mu.Unlock()
	d.run = run
	d.last, d.recorded, d.recordErr = nil, nil, ""
	run.expiry = time.AfterFunc(o.Expires.Sub(now), func() { t.spawn(func(context.Context) { t.expireDrill(run) }) })
	d.mu.Unlock()
	lg.Warn("DRILL: a drill order names this site; waiting for the custodians' shares (nothing is fenced, the mirror keeps receiving)",
		"ledger_index", index, "registries", o.Registries, "expires", o.Expires)

	mctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	run.rpo = t.measureRPO(mctx, l, run)
	cancel()
	close(run.rpoDone)
	lg.Info("drill: RPO measured", "rpo_entries", run.rpo.entries, "rpo_seconds", run.rpo.seconds, "basis", run.rpo.basis)
}

// measureRPO compares the mirror as the drill began with the writer's
// signed checkpoint, fetched from the writer's public ledger; if the
// writer cannot be reached, it falls back to the order's own delay.
func (t *Guest) measureRPO(ctx context.Context, l *ledger.Log, run *drillRun) drillRPO {
	rpo, err := t.rpoFromWriter(ctx, run)
	if err == nil {
		return rpo
	}
	t.logger.Warn("drill: cannot reach the writer to measure RPO; measuring the order's delay instead", "guest", t.id, "err", err)
	rpo = drillRPO{basis: continuity.RPOBasisOrder}
	if _, _, err := l.WaitPublished(ctx, run.index+1); err != nil {
		return rpo
	}
	raw, err := ledger.ReadEntry(ctx, ledger.DirFetcher(l.Dir()), run.index, run.index+1)
	if err != nil {
		return rpo
	}
	if e, err := ledger.DecodeEntry(raw); err == nil {
		rpo.seconds = seconds(max(run.started.Sub(e.Time), 0))
	}
	return rpo
}

func (t *Guest) rpoFromWriter(ctx context.Context, run *drillRun) (drillRPO, error) {
	f, err := t.writerLedger()
	if err != nil {
		return drillRPO{}, err
	}
	signed, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return drillRPO{}, err
	}
	cp, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return drillRPO{}, err
	}
	v, err := writerVerifiers(t.charter, t.writers.ep, cp.Epoch)
	if err != nil {
		return drillRPO{}, err
	}
	if _, _, err := ledger.OpenCheckpoint(signed, t.charter.Guest.Origin, v); err != nil {
		return drillRPO{}, fmt.Errorf("the writer's checkpoint: %w", err)
	}
	rpo := drillRPO{basis: continuity.RPOBasisWriter, writerSize: cp.Size}
	if cp.Size > run.mirror {
		rpo.entries = cp.Size - run.mirror
		raw, err := ledger.ReadEntry(ctx, f, run.mirror, cp.Size)
		if err != nil {
			return drillRPO{}, err
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return drillRPO{}, fmt.Errorf("the writer's entry %d: %w", run.mirror, err)
		}
		rpo.seconds = seconds(max(run.started.Sub(e.Time), 0))
	}
	return rpo, nil
}

// writerLedger is the public ledger of the site writing the current epoch,
// reached as sinkFor reaches sites.
func (t *Guest) writerLedger() (ledger.HTTPFetcher, error) {
	_, c, err := t.writerClient()
	if err != nil {
		return ledger.HTTPFetcher{}, err
	}
	return ledger.HTTPFetcher{Base: strings.TrimSuffix(c.BaseURL, "/") + "/guests/" + t.id + "/ledger", Client: c.HTTP}, nil
}

// writerClient is a continuity client of the site writing the current
// epoch, and that site's id.
func (t *Guest) writerClient() (string, *siteapi.ContinuityClient, error) {
	cur := t.writers.ep.Current()
	wr, ok := t.writers.ep.WriterAt(cur)
	if !ok {
		return "", nil, fmt.Errorf("no writer of epoch %d", cur)
	}
	def, ok := t.charter.Site(wr)
	if !ok {
		return "", nil, fmt.Errorf("writer %s is not in the charter", wr)
	}
	sink, err := t.opts.Remote(t.charter, *def)
	if err != nil {
		return "", nil, err
	}
	return wr, &siteapi.ContinuityClient{BaseURL: sink.Base, Guest: t.id, HTTP: sink.Client}, nil
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// expireDrill ends a drill whose order expired before the threshold of
// shares was reached.
func (t *Guest) expireDrill(run *drillRun) {
	d := &t.drill
	d.mu.Lock()
	if d.run != run || !run.unsealed.IsZero() {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	<-run.rpoDone
	rep := t.baseReport(run)
	rep.Error = "the order expired before the threshold of custodians' shares was reached"
	t.finishDrill(run, rep)
}

func (t *Guest) drillStatus() siteapi.DrillStatus {
	d := &t.drill
	d.mu.Lock()
	defer d.mu.Unlock()
	st := siteapi.DrillStatus{Guest: t.id, Site: t.site, Mode: t.currentMode(), LastReport: d.last, LastReportIndex: d.recorded, LastReportError: d.recordErr}
	if run := d.run; run != nil {
		st.Running, st.Order, st.OrderIndex = true, run.order.ID, run.index
		st.Started, st.Expires = tp(run.started), tp(run.order.Expires)
		st.Unsealed = !run.unsealed.IsZero()
		if run.session != nil {
			have, need, _ := run.session.Status()
			st.Session, st.Recipient, st.Shares, st.Threshold = run.session.ID(), run.session.Recipient(), have, need
			st.RecipientStatement = t.sessionResponse(run.session, continuity.PurposeDrill, have, need).RecipientStatement
		}
	}
	return st
}

func (t *Guest) openDrillSession() (*siteapi.UnsealResponse, error) {
	d := &t.drill
	d.mu.Lock()
	defer d.mu.Unlock()
	run := d.run
	now := t.opts.Now()
	switch {
	case run == nil:
		return nil, fmt.Errorf("no drill is running for %s at site %s: a drill order naming this site must reach it first (submit it to the writer)", t.id, t.site)
	case !run.unsealed.IsZero():
		return nil, fmt.Errorf("the drill of order %s has its shares already", run.order.ID)
	}
	ttl := min(time.Hour, run.order.Expires.Sub(now))
	if ttl <= 0 {
		return nil, fmt.Errorf("the drill order %s has expired", run.order.ID)
	}
	sess, err := t.renewSession(run.session, ttl)
	if err != nil {
		return nil, err
	}
	run.session = sess
	have, need, _ := sess.Status()
	return t.sessionResponse(sess, continuity.PurposeDrill, have, need), nil
}

// addDrillShare takes one custodian's share sealed to the drill's
// session, opened and verified against the custody package. At the
// threshold the session attests and is wiped, without combining the
// shares, and the keyless sample check runs in the background; the answer
// says Unsealed (the threshold is proven), and GET .../drill shows the
// report when it is done.
func (t *Guest) addDrillShare(_ context.Context, session string, sealed []byte) (*siteapi.UnsealResponse, error) {
	d := &t.drill
	d.mu.Lock()
	defer d.mu.Unlock()
	run := d.run
	if run == nil || run.session == nil || run.session.ID() != session {
		return nil, fmt.Errorf("no drill unseal session %q open for %s at site %s", session, t.id, t.site)
	}
	have, need, err := run.session.Submit(sealed)
	if err != nil {
		return nil, err
	}
	resp := t.sessionResponse(run.session, continuity.PurposeDrill, have, need)
	if have < need {
		return resp, nil
	}
	// Attest, never Combine: the drilled site must not hold the root.
	_, err = run.session.Attest()
	run.session = nil
	if err != nil {
		return nil, err
	}
	run.unsealed = t.opts.Now()
	run.expiry.Stop()
	resp.Unsealed = true
	t.spawn(func(ctx context.Context) { t.runDrill(ctx, run) })
	return resp, nil
}

// runDrill checks the sample keyless, then reports.
func (t *Guest) runDrill(ctx context.Context, run *drillRun) {
	ctx, cancel := context.WithTimeout(ctx, drillTimeout)
	defer cancel()
	<-run.rpoDone
	rep := t.baseReport(run)
	if err := t.checkSample(ctx, run, rep); err != nil {
		rep.Error = clip(err.Error())
	}
	t.finishDrill(run, rep)
}

func (t *Guest) baseReport(run *drillRun) *continuity.DrillReport {
	o := run.order
	rep := &continuity.DrillReport{Guest: t.id, Site: t.site, Order: o.ID, OrderIndex: run.index, Epoch: o.Epoch, Registries: slices.Clone(o.Registries),
		Started: run.started, RPOEntries: run.rpo.entries, RPOSeconds: run.rpo.seconds, RPOBasis: run.rpo.basis,
		MirrorSize: run.mirror, WriterSize: run.rpo.writerSize, Check: continuity.DrillCheckKeyless}
	if !run.unsealed.IsZero() {
		u := run.unsealed
		rep.Unsealed = &u
	}
	return rep
}

// checkSample checks a random sample of the record entries of the
// registries in the order's scope against the mirror's signed tree,
// keyless, filling rep.
func (t *Guest) checkSample(ctx context.Context, run *drillRun, rep *continuity.DrillReport) error {
	l := t.ledger()
	if !l.IsMirror() {
		return errors.New("the site became a writer during the drill")
	}
	signed, cp := l.Checkpoint()
	v, err := writerVerifiers(t.charter, t.writers.ep, cp.Epoch)
	if err != nil {
		return err
	}
	if _, _, err := ledger.OpenCheckpoint(signed, t.charter.Guest.Origin, v); err != nil {
		return fmt.Errorf("the mirror's checkpoint of size %d does not verify: %w", cp.Size, err)
	}
	rep.LedgerSize = cp.Size
	// The registries this site holds (the charter places them here) that
	// are in the order's scope.
	rep.Registries = nil
	for _, r := range t.charter.Registries {
		if !slices.Contains(r.Sites, t.site) {
			continue
		}
		if regs := run.order.Registries; len(regs) == 0 || slices.Contains(regs, r.Name) {
			rep.Registries = append(rep.Registries, r.Name)
		}
	}
	f := ledger.DirFetcher(l.Dir())
	picked, total, err := sampleRecordEntries(ctx, f, cp.Size, rep.Registries, DrillSampleSize)
	if err != nil {
		return fmt.Errorf("draw the sample: %w", err)
	}
	rep.Records, rep.SampleSize = total, len(picked)
	prover := ledger.NewProver(f, 0)
	for _, p := range picked {
		if err := checkEntry(ctx, prover, cp, p); err != nil {
			rep.Failures = append(rep.Failures, continuity.DrillFailure{Index: p.index, Registry: p.registry, Reason: clip(err.Error())})
			continue
		}
		rep.Verified++
	}
	return nil
}

// checkEntry checks one sampled record entry keyless: it is the entry of
// the writer's signed tree (its inclusion proof), and a well-formed record
// entry of its registry carrying a sealed body and a commitment. Whether
// the body decrypts to what the commitment commits to takes the keys, and
// is the guest's to check on its own machine.
func checkEntry(ctx context.Context, prover *ledger.Prover, cp ledger.Checkpoint, p sampled) error {
	idx := p.index
	raw, err := prover.ReadProven(ctx, cp, idx)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		return err
	}
	re, err := registry.UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return err
	}
	switch {
	case re.Registry != p.registry:
		return fmt.Errorf("holds a record of registry %s", re.Registry)
	case len(re.Sealed) == 0:
		return errors.New("holds no sealed body")
	case re.Commitment == [32]byte{}:
		return errors.New("holds no commitment")
	}
	return nil
}

// sampled is a record entry drawn for a drill, and its registry as the
// entry names it.
type sampled struct {
	index    uint64
	registry string
}

// sampleRecordEntries draws up to k of the record entries of the named
// registries in the tree of the given size, uniformly (reservoir
// sampling, from a generator seeded by crypto/rand so that a host cannot
// foresee which entries a drill reads), and counts them all.
func sampleRecordEntries(ctx context.Context, f ledger.Fetcher, size uint64, regs []string, k int) ([]sampled, uint64, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, 0, err
	}
	rng := mrand.New(mrand.NewChaCha8(seed))
	inScope := map[string]bool{}
	for _, r := range regs {
		inScope[r] = true
	}
	var picked []sampled
	var n uint64
	err := ledger.Scan(ctx, f, 0, size, func(idx uint64, raw []byte) error {
		// The registry name is the record entry's third field.
		if len(raw) < ledger.EntryHeaderSize+4 || raw[1] != byte(ledger.TypeRecord) {
			return nil
		}
		p := raw[ledger.EntryHeaderSize:]
		l := int(binary.BigEndian.Uint16(p[2:4]))
		if 4+l > len(p) || !inScope[string(p[4:4+l])] {
			return nil
		}
		if len(picked) < k {
			picked = append(picked, sampled{idx, string(p[4 : 4+l])})
		} else if j := rng.Uint64N(n + 1); j < uint64(k) {
			picked[j] = sampled{idx, string(p[4 : 4+l])}
		}
		n++
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(picked, func(a, b sampled) int { return cmp.Compare(a.index, b.index) })
	return picked, n, nil
}

func clip(s string) string {
	if len(s) <= maxDrillReason {
		return s
	}
	return strings.ToValidUTF8(s[:maxDrillReason], "") + "…"
}

// finishDrill ends the drill: the session is closed, the guest back in
// standby, the report signed, kept, and sent to the writer.
func (t *Guest) finishDrill(run *drillRun, rep *continuity.DrillReport) {
	rep.Finished = t.opts.Now()
	signed, serr := continuity.SignDrillReport(rep, t.key)
	d := &t.drill
	d.mu.Lock()
	if d.run != run {
		d.mu.Unlock()
		return
	}
	d.run = nil
	if run.session != nil {
		run.session.Close()
		run.session = nil
	}
	run.expiry.Stop()
	d.last, d.recorded, d.recordErr = rep, nil, ""
	if serr != nil {
		d.recordErr = serr.Error()
	}
	t.mu.Lock()
	t.mode.CompareAndSwap(siteapi.ModeDrill, siteapi.ModeStandby)
	t.mu.Unlock()
	d.mu.Unlock()
	t.logger.Warn("drill done: shares wiped, no key was rebuilt, back in standby", "guest", t.id, "order", rep.Order, "sample", rep.SampleSize,
		"verified", rep.Verified, "failures", len(rep.Failures), "rto_seconds", rep.RTOSeconds,
		"rpo_entries", rep.RPOEntries, "rpo_seconds", rep.RPOSeconds, "error", rep.Error)
	if serr == nil {
		t.spawn(func(ctx context.Context) { t.deliverDrillReport(ctx, rep.Order, signed) })
	}
}

// deliverDrillReport has the writer record the report, retrying for a
// while: the writer may be busy, or not hold the order under its
// published checkpoint yet.
func (t *Guest) deliverDrillReport(ctx context.Context, order string, signed []byte) {
	d := &t.drill
	deadline := time.Now().Add(drillDeliveryWindow)
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, time.Minute) {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		wr, rc, err := t.recordAtWriter(rctx, signed)
		cancel()
		d.mu.Lock()
		if d.last == nil || d.last.Order != order {
			d.mu.Unlock()
			return // a newer drill's report supersedes this one here
		}
		if err == nil {
			i := rc.Index
			d.recorded, d.recordErr = &i, ""
			d.mu.Unlock()
			t.logger.Warn("drill report recorded in the ledger", "guest", t.id, "order", order, "writer", wr, "ledger_index", rc.Index)
			return
		}
		d.recordErr = err.Error()
		d.mu.Unlock()
		if time.Now().After(deadline) {
			t.logger.Error("drill report not recorded: giving up", "guest", t.id, "order", order, "writer", wr, "err", err)
			return
		}
		t.logger.Warn("drill report not recorded yet; retrying", "guest", t.id, "order", order, "writer", wr, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			t.logger.Warn("drill report not recorded: the site is closing", "guest", t.id, "order", order, "writer", wr)
			return
		case <-time.After(delay):
		}
	}
}

func (t *Guest) recordAtWriter(ctx context.Context, signed []byte) (string, *siteapi.DrillReportReceipt, error) {
	wr, c, err := t.writerClient()
	if err != nil {
		return wr, nil, err
	}
	rc, err := c.RecordDrillReport(ctx, signed)
	return wr, rc, err
}

// drillLedger indexes a writer's ledger for recording reports: the drill
// orders (a report must follow one for its site) and the reports (one per
// order). It reads the ledger as it grows.
type drillLedger struct {
	mu      sync.Mutex
	scanned uint64
	orders  map[string]drillOrderRef
	reports map[string]drillReportRef
}

type drillOrderRef struct {
	site  string
	index uint64
}

type drillReportRef struct {
	index  uint64
	digest [32]byte
}

func (d *drillLedger) refreshLocked(ctx context.Context, l *ledger.Log) error {
	if d.orders == nil {
		d.orders, d.reports = map[string]drillOrderRef{}, map[string]drillReportRef{}
	}
	_, cp := l.Checkpoint()
	if cp.Size <= d.scanned {
		return nil
	}
	err := ledger.Scan(ctx, ledger.DirFetcher(l.Dir()), d.scanned, cp.Size, func(idx uint64, raw []byte) error {
		if len(raw) < ledger.EntryHeaderSize {
			return nil
		}
		switch ledger.Type(raw[1]) {
		case ledger.TypeOrder:
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			if so, err := continuity.ParseSignedOrder(e.Payload); err == nil && so.Order.Action == charter.ActionDrill {
				d.orders[so.Order.ID] = drillOrderRef{site: so.Order.Site, index: idx}
			}
		case ledger.TypeDrillReport:
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			if r, _, _, err := continuity.ParseDrillReport(e.Payload); err == nil {
				if _, ok := d.reports[r.Order]; !ok {
					d.reports[r.Order] = drillReportRef{index: idx, digest: sha256.Sum256(e.Payload)}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.scanned = cp.Size
	return nil
}

// recordDrillReport checks a signed report and appends it to l, the
// writer's ledger, in epoch: it must verify under the charter, follow a
// drill order for its site in l, and be the only report of that order
// (the same report again is answered with the entry it is at).
func (t *Guest) recordDrillReport(ctx context.Context, c *charter.Charter, l *ledger.Log, epoch uint64, raw []byte) (*siteapi.DrillReportReceipt, error) {
	rep, err := continuity.VerifyDrillReport(c, raw)
	if err != nil {
		return nil, &RefusedError{Msg: err.Error()}
	}
	d := t.drillLedgerOf(l)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refreshLocked(ctx, l); err != nil {
		return nil, fmt.Errorf("read the ledger's drill orders: %w", err)
	}
	o, ok := d.orders[rep.Order]
	switch {
	case !ok:
		return nil, &RefusedError{Msg: fmt.Sprintf("no drill order %s in this ledger (up to entry %d): a report follows its order", rep.Order, d.scanned)}
	case o.site != rep.Site:
		return nil, &RefusedError{Msg: fmt.Sprintf("drill order %s names site %s, not %s", rep.Order, o.site, rep.Site)}
	}
	if prev, ok := d.reports[rep.Order]; ok {
		if prev.digest == sha256.Sum256(raw) {
			return &siteapi.DrillReportReceipt{Order: rep.Order, Index: prev.index, Duplicate: true}, nil
		}
		return nil, &RefusedError{Conflict: true, Msg: fmt.Sprintf("another report of drill order %s is recorded at entry %d", rep.Order, prev.index)}
	}
	idx, err := l.Append(ctx, ledger.Entry{Type: ledger.TypeDrillReport, Epoch: epoch, Time: t.opts.Now(), Payload: raw})
	if err != nil {
		return nil, fmt.Errorf("append the drill report: %w", err)
	}
	d.reports[rep.Order] = drillReportRef{index: idx, digest: sha256.Sum256(raw)}
	t.logger.Warn("drill report recorded", "guest", c.Guest.ID, "drilled_site", rep.Site, "order", rep.Order, "ledger_index", idx,
		"verified", rep.Verified, "sample", rep.SampleSize, "failures", len(rep.Failures), "rto_seconds", rep.RTOSeconds)
	return &siteapi.DrillReportReceipt{Order: rep.Order, Index: idx}, nil
}

// RecordDrillReport records a drilled site's signed report when this site
// writes the guest's ledger now, home or embassy: the report's signature
// is its authority. A site that does not write refuses it with
// ErrNotWriter, naming the writer; a report that does not verify, or
// follows no drill order of this ledger, is a *RefusedError.
func (t *Guest) RecordDrillReport(ctx context.Context, raw []byte) (*siteapi.DrillReportReceipt, error) {
	t.mu.Lock()
	l := t.log
	cur := t.writers.ep.Current()
	wr, _ := t.writers.ep.WriterAt(cur)
	writes := !l.IsMirror() && (t.act == nil || !t.act.handingOver)
	t.mu.Unlock()
	if !writes {
		return nil, fmt.Errorf("%w: submit the drill report to site %s, the writer of epoch %d", ErrNotWriter, wr, cur)
	}
	return t.recordDrillReport(ctx, t.charter, l, cur, raw)
}
