package site

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
)

// Drills (DESIGN.md, "Flows: Drill"): a rehearsal of activation at an
// embassy under a drill order, without fencing anyone.
//
//  1. Officials sign a drill order (action drill, the site, the current
//     epoch, registries optional) and submit it to the writer, which
//     appends it like any order but the activation.
//  2. Replication brings it to the site; when its epochs fold it in,
//     startDrill puts the guest in ModeDrill. The site stays a mirror: it
//     keeps receiving, nothing is fenced, and it never writes the ledger.
//     RPO is measured now, against the writer's signed checkpoint.
//  3. An official opens a drill unseal session (POST .../drill/unseal);
//     custodians reseal their shares to it and submit them
//     (POST .../drill/unseal/{session}).
//  4. At the threshold the root key is rebuilt in memory, the keyring
//     derived and the registries in scope opened read-only over the
//     mirror. A random sample of record entries is read back: each entry's
//     inclusion in the writer's signed tree is checked, it is unsealed, its
//     plaintext checked against the entry's commitment, and the record
//     read as an active site would serve it. RTO is the time from the
//     later of the order's arrival and the threshold to the first read.
//  5. Everything is wiped (keyring, registries, session) and the guest is
//     in standby again. The report, signed with the site's checkpoint key
//     for the guest, is sent to the writer, which checks it and appends it
//     as a drill-report entry. GET .../drill shows the last one.

// DrillReportFormat names the signed report and, followed by "\n", is the
// domain-separation prefix of its signature.
const DrillReportFormat = "chancery-drill-report/v1"

const drillSigningPrefix = DrillReportFormat + "\n"

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

// How a report's RPO was measured.
const (
	// RPOBasisWriter: against the writer's signed checkpoint, fetched from
	// the writer when the drill began. rpo_entries is how many entries the
	// writer had that the site lacked; rpo_seconds how long before the
	// drill began the first of them was written (0 when none).
	RPOBasisWriter = "writer-checkpoint"
	// RPOBasisOrder: the writer could not be reached. rpo_seconds is how
	// long the drill order took from its entry at the writer to this site,
	// a lower bound of the lag; rpo_entries is 0, not measured.
	RPOBasisOrder = "order-delay"
)

// DrillReport is what a drill found. Its canonical encoding is what
// encoding/json writes for it with HTML escaping off: members in this
// order, times in UTC to the millisecond.
type DrillReport struct {
	Guest      string   `json:"guest"`
	Site       string   `json:"site"`
	Order      string   `json:"order"`
	OrderIndex uint64   `json:"order_index"` // the order's ledger entry
	Epoch      uint64   `json:"epoch"`
	Registries []string `json:"registries"` // opened and sampled
	// Started is when the order reached the site: the drill began.
	Started time.Time `json:"started"`
	// Unsealed is when the threshold of shares was reached.
	Unsealed *time.Time `json:"unsealed,omitempty"`
	// FirstRead is when the first sampled record was served.
	FirstRead *time.Time `json:"first_read,omitempty"`
	Finished  time.Time  `json:"finished"`
	// RTOSeconds is FirstRead minus the later of Started and Unsealed.
	RTOSeconds float64 `json:"rto_seconds"`
	RPOEntries uint64  `json:"rpo_entries"`
	RPOSeconds float64 `json:"rpo_seconds"`
	RPOBasis   string  `json:"rpo_basis"` // RPOBasisWriter or RPOBasisOrder
	// MirrorSize is the site's mirror when the drill began, WriterSize the
	// writer's checkpoint it was compared with (0 if not reached).
	MirrorSize uint64 `json:"mirror_size"`
	WriterSize uint64 `json:"writer_size"`
	// LedgerSize is the signed tree the sample was drawn from and checked
	// against; Records the record entries in scope under it.
	LedgerSize uint64         `json:"ledger_size"`
	Records    uint64         `json:"records"`
	SampleSize int            `json:"sample_size"`
	Verified   int            `json:"verified"`
	Failures   []DrillFailure `json:"failures"`
	// Error says why the drill did not run to its end (no shares before
	// the order expired, the registries did not open, ...).
	Error string `json:"error,omitempty"`
}

// DrillFailure is one sampled record entry that did not check out.
type DrillFailure struct {
	Index    uint64 `json:"index"`
	Registry string `json:"registry,omitempty"`
	Reason   string `json:"reason"`
}

// signedDrillReport is the ledger payload:
//
//	{"format":"chancery-drill-report/v1","report":<canonical report>,"signature":<base64>}
//
// the signature being Ed25519 over DrillReportFormat + "\n" + the canonical
// report, by the site's checkpoint key for the guest (the charter's
// sites[].checkpoint_key).
type signedDrillReport struct {
	Format    string          `json:"format"`
	Report    json.RawMessage `json:"report"`
	Signature []byte          `json:"signature"`
}

func canonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// normalize puts times in UTC to the millisecond and lists as [] rather
// than null, so that the report reads the same after a round trip.
func (r *DrillReport) normalize() {
	ms := func(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
	r.Started, r.Finished = ms(r.Started), ms(r.Finished)
	for _, p := range []**time.Time{&r.Unsealed, &r.FirstRead} {
		if *p != nil {
			t := ms(**p)
			*p = &t
		}
	}
	if r.Registries == nil {
		r.Registries = []string{}
	}
	if r.Failures == nil {
		r.Failures = []DrillFailure{}
	}
}

// SignDrillReport normalizes r and returns the signed report, the payload
// of a drill-report entry, signed with key (the site's checkpoint key).
func SignDrillReport(r *DrillReport, key ed25519.PrivateKey) ([]byte, error) {
	r.normalize()
	canon, err := canonicalJSON(r)
	if err != nil {
		return nil, fmt.Errorf("drill report: %w", err)
	}
	sig := ed25519.Sign(key, append([]byte(drillSigningPrefix), canon...))
	out, err := canonicalJSON(signedDrillReport{Format: DrillReportFormat, Report: canon, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("drill report: %w", err)
	}
	if len(out) > ledger.MaxPayloadSize {
		return nil, fmt.Errorf("drill report of order %s: %d bytes, more than a ledger entry holds", r.Order, len(out))
	}
	return out, nil
}

// ParseDrillReport decodes a signed drill report without checking its
// signature (VerifyDrillReport does). It is strict: unknown members, or a
// report not in its canonical encoding, are refused.
func ParseDrillReport(payload []byte) (r *DrillReport, canonical, sig []byte, err error) {
	var env signedDrillReport
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, nil, nil, fmt.Errorf("drill report: %w", err)
	}
	if dec.More() {
		return nil, nil, nil, errors.New("drill report: trailing data")
	}
	if env.Format != DrillReportFormat {
		return nil, nil, nil, fmt.Errorf("drill report: format %q, want %q", env.Format, DrillReportFormat)
	}
	r = new(DrillReport)
	dec = json.NewDecoder(bytes.NewReader(env.Report))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, nil, nil, fmt.Errorf("drill report: %w", err)
	}
	canon, err := canonicalJSON(r)
	if err != nil || !bytes.Equal(canon, env.Report) {
		return nil, nil, nil, errors.New("drill report: report not in its canonical encoding")
	}
	if len(env.Signature) != ed25519.SignatureSize {
		return nil, nil, nil, fmt.Errorf("drill report of order %s: signature of %d bytes", r.Order, len(env.Signature))
	}
	return r, canon, env.Signature, nil
}

// VerifyDrillReport parses a signed drill report and checks it against
// charter c: the guest is c's, the site is in c, and the signature is by
// that site's checkpoint key. Whether a drill order for the site is in
// the ledger is the caller's to check.
func VerifyDrillReport(c *charter.Charter, payload []byte) (*DrillReport, error) {
	r, canon, sig, err := ParseDrillReport(payload)
	if err != nil {
		return nil, err
	}
	if r.Guest != c.Guest.ID {
		return nil, fmt.Errorf("drill report of order %s: for guest %q, not %s", r.Order, r.Guest, c.Guest.ID)
	}
	def, ok := c.Site(r.Site)
	if !ok {
		return nil, fmt.Errorf("drill report of order %s: site %q is not in the charter", r.Order, r.Site)
	}
	_, _, pub, err := ledger.SplitVerifierKey(def.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("drill report of order %s: checkpoint key of site %s: %w", r.Order, r.Site, err)
	}
	if !ed25519.Verify(pub, append([]byte(drillSigningPrefix), canon...), sig) {
		return nil, fmt.Errorf("drill report of order %s: the signature is not site %s's checkpoint key's", r.Order, r.Site)
	}
	return r, nil
}

// drillLedgerOf returns the drill index of a writer's ledger. A site
// writes at most a few ledgers over its life (its home ledger, or a
// tenant's after an activation), so entries are kept until Close.
func (s *Site) drillLedgerOf(l *ledger.Log) *drillLedger {
	s.drillMu.Lock()
	defer s.drillMu.Unlock()
	if s.drillLedgers == nil {
		s.drillLedgers = map[*ledger.Log]*drillLedger{}
	}
	d, ok := s.drillLedgers[l]
	if !ok {
		d = &drillLedger{}
		s.drillLedgers[l] = d
	}
	return d
}

// drillState is a tenant's drill: the one running, and the last report.
// Lock order: drillState.mu before tenant.mu.
type drillState struct {
	mu   sync.Mutex
	run  *drillRun
	last *DrillReport
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
	unsealed time.Time // the threshold was reached: sampling
	expiry   *time.Timer
}

type drillRPO struct {
	entries    uint64
	seconds    float64
	basis      string
	writerSize uint64
}

// startDrill begins a drill under an accepted drill order naming this site.
func (t *tenant) startDrill(o *continuity.Order, index uint64) {
	s := t.s
	lg := s.log.With("guest", t.id, "order", o.ID)
	now := s.opts.Now()
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
	if t.act != nil || !t.log.IsMirror() || mode != ModeStandby {
		t.mu.Unlock()
		d.mu.Unlock()
		lg.Warn("drill order ignored: a drill runs only at a sealed mirror in standby", "mode", mode)
		return
	}
	l := t.log
	run := &drillRun{order: o, index: index, started: now, mirror: l.MirrorSize(), rpoDone: make(chan struct{})}
	t.mode.Store(ModeDrill)
	t.mu.Unlock()
	d.run = run
	d.last, d.recorded, d.recordErr = nil, nil, ""
	run.expiry = time.AfterFunc(o.Expires.Sub(now), func() { t.expireDrill(run) })
	d.mu.Unlock()
	lg.Warn("DRILL: a drill order names this site; waiting for the custodians' shares (nothing is fenced, the mirror keeps receiving)",
		"ledger_index", index, "registries", o.Registries, "expires", o.Expires)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	run.rpo = t.measureRPO(ctx, l, run)
	cancel()
	close(run.rpoDone)
	lg.Info("drill: RPO measured", "rpo_entries", run.rpo.entries, "rpo_seconds", run.rpo.seconds, "basis", run.rpo.basis)
}

// measureRPO compares the mirror as the drill began with the writer's
// signed checkpoint, fetched from the writer's public ledger; if the
// writer cannot be reached, it falls back to the order's own delay.
func (t *tenant) measureRPO(ctx context.Context, l *ledger.Log, run *drillRun) drillRPO {
	rpo, err := t.rpoFromWriter(ctx, run)
	if err == nil {
		return rpo
	}
	t.s.log.Warn("drill: cannot reach the writer to measure RPO; measuring the order's delay instead", "guest", t.id, "err", err)
	rpo = drillRPO{basis: RPOBasisOrder}
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

func (t *tenant) rpoFromWriter(ctx context.Context, run *drillRun) (drillRPO, error) {
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
	rpo := drillRPO{basis: RPOBasisWriter, writerSize: cp.Size}
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
func (t *tenant) writerLedger() (ledger.HTTPFetcher, error) {
	_, c, err := t.writerClient()
	if err != nil {
		return ledger.HTTPFetcher{}, err
	}
	return ledger.HTTPFetcher{Base: strings.TrimSuffix(c.BaseURL, "/") + "/guests/" + t.id + "/ledger", Client: c.HTTP}, nil
}

// writerClient is a continuity client of the site writing the current
// epoch, and that site's id.
func (t *tenant) writerClient() (string, *ContinuityClient, error) {
	cur := t.writers.ep.Current()
	wr, ok := t.writers.ep.WriterAt(cur)
	if !ok {
		return "", nil, fmt.Errorf("no writer of epoch %d", cur)
	}
	def, ok := t.charter.Site(wr)
	if !ok {
		return "", nil, fmt.Errorf("writer %s is not in the charter", wr)
	}
	sink, err := t.s.sinkFor(t.charter, *def)
	if err != nil {
		return "", nil, err
	}
	return wr, &ContinuityClient{BaseURL: sink.Base, Guest: t.id, HTTP: sink.Client}, nil
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// expireDrill ends a drill whose order expired before the threshold of
// shares was reached.
func (t *tenant) expireDrill(run *drillRun) {
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

// DrillStatus is GET /continuity/v1/guests/{guest}/drill.
type DrillStatus struct {
	Guest      string     `json:"guest"`
	Site       string     `json:"site"`
	Mode       Mode       `json:"mode"`
	Running    bool       `json:"running"`
	Order      string     `json:"order,omitempty"`
	OrderIndex uint64     `json:"order_index,omitempty"`
	Started    *time.Time `json:"started_at,omitempty"`
	Expires    *time.Time `json:"order_expires,omitempty"`
	Session    string     `json:"unseal_session,omitempty"`
	Recipient  string     `json:"recipient,omitempty"`
	Shares     int        `json:"shares,omitempty"`
	Threshold  int        `json:"threshold,omitempty"`
	// Unsealed: the sandbox holds keys now (the sample is being checked).
	Unsealed bool `json:"unsealed"`
	// LastReport is the last drill's report; LastReportIndex its entry in
	// the writer's ledger once recorded, LastReportError why it is not yet.
	LastReport      *DrillReport `json:"last_report,omitempty"`
	LastReportIndex *uint64      `json:"last_report_index,omitempty"`
	LastReportError string       `json:"last_report_error,omitempty"`
}

func (t *tenant) drillStatus() DrillStatus {
	d := &t.drill
	d.mu.Lock()
	defer d.mu.Unlock()
	st := DrillStatus{Guest: t.id, Site: t.site, Mode: t.currentMode(), LastReport: d.last, LastReportIndex: d.recorded, LastReportError: d.recordErr}
	if run := d.run; run != nil {
		st.Running, st.Order, st.OrderIndex = true, run.order.ID, run.index
		st.Started, st.Expires = tp(run.started), tp(run.order.Expires)
		st.Unsealed = !run.unsealed.IsZero()
		if run.session != nil {
			have, need, _ := run.session.Status()
			st.Session, st.Recipient, st.Shares, st.Threshold = run.session.ID(), run.session.Recipient(), have, need
		}
	}
	return st
}

// mountDrill adds the drill routes of an embassy (or a standby home): the
// drilled site's status and unseal session, and, for a site that writes
// now, the route where drilled sites record their reports.
func (s *Site) mountDrill(mux *http.ServeMux) {
	mux.HandleFunc("GET /continuity/v1/guests/{guest}/drill", s.getDrill)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill/unseal", s.openSessionHandler((*tenant).openDrillSession))
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill/unseal/{session}", s.shareHandler((*tenant).addDrillShare))
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill-reports", s.tenantDrillReport)
}

// mountDrillReports adds, at a home that writes, the route where drilled
// sites record their reports.
func (s *Site) mountDrillReports(mux *http.ServeMux) {
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill-reports", s.homeDrillReport)
}

func (s *Site) getDrill(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, t.drillStatus())
}

func (t *tenant) openDrillSession() (*UnsealResponse, error) {
	d := &t.drill
	d.mu.Lock()
	defer d.mu.Unlock()
	run := d.run
	now := t.s.opts.Now()
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
	return sessionResponse(sess, have, need), nil
}

// addDrillShare takes one custodian's share sealed to the drill's
// session. At the threshold the drill runs in the background; the answer
// says Unsealed, and GET .../drill shows the report when it is done.
func (t *tenant) addDrillShare(_ context.Context, session string, sealed []byte) (*UnsealResponse, error) {
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
	resp := sessionResponse(run.session, have, need)
	if have < need {
		return resp, nil
	}
	root, err := run.session.Combine()
	run.session = nil
	if err != nil {
		return nil, err
	}
	run.unsealed = t.s.opts.Now()
	run.expiry.Stop()
	resp.Unsealed = true
	go t.runDrill(run, root)
	return resp, nil
}

// runDrill is the sandbox: keys in memory, the registries read-only over
// the mirror, the sample checked, everything wiped.
func (t *tenant) runDrill(run *drillRun, root *seal.RootKey) {
	keys := seal.NewKeyring(t.id, root)
	root.Wipe()
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	<-run.rpoDone
	rep := t.baseReport(run)
	err := t.checkSample(ctx, run, keys, rep)
	keys.Wipe()
	if err != nil {
		rep.Error = clip(err.Error())
	}
	t.finishDrill(run, rep)
}

func (t *tenant) baseReport(run *drillRun) *DrillReport {
	o := run.order
	rep := &DrillReport{Guest: t.id, Site: t.site, Order: o.ID, OrderIndex: run.index, Epoch: o.Epoch, Registries: slices.Clone(o.Registries),
		Started: run.started, RPOEntries: run.rpo.entries, RPOSeconds: run.rpo.seconds, RPOBasis: run.rpo.basis,
		MirrorSize: run.mirror, WriterSize: run.rpo.writerSize}
	if !run.unsealed.IsZero() {
		u := run.unsealed
		rep.Unsealed = &u
	}
	return rep
}

// checkSample opens the registries in the order's scope over the mirror
// and checks a random sample of their record entries, filling rep.
func (t *tenant) checkSample(ctx context.Context, run *drillRun, keys *seal.Keyring, rep *DrillReport) error {
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
	c := t.charter
	if regs := run.order.Registries; len(regs) > 0 {
		cc := *c
		cc.Registries = nil
		for _, r := range c.Registries {
			if slices.Contains(regs, r.Name) {
				cc.Registries = append(cc.Registries, r)
			}
		}
		c = &cc
	}
	// No blob backend: the sample reads record entries only, and a
	// keyed store would write its own files into the guest's blobs.
	regs, err := registry.Open(ctx, registry.Options{Charter: c, Site: t.site, Log: l, Keys: keys, Now: t.s.opts.Now})
	if err != nil {
		return fmt.Errorf("open the registries read-only over the mirror: %w", err)
	}
	defer regs.Close()
	rep.Registries = regs.Names()
	f := ledger.DirFetcher(l.Dir())
	picked, total, err := sampleRecordEntries(ctx, f, cp.Size, rep.Registries, DrillSampleSize)
	if err != nil {
		return fmt.Errorf("draw the sample: %w", err)
	}
	rep.Records, rep.SampleSize = total, len(picked)
	prover := ledger.NewProver(f, 0)
	var firstRead time.Time
	for _, p := range picked {
		readAt, err := t.checkEntry(ctx, regs, keys, f, prover, cp, p)
		if firstRead.IsZero() && !readAt.IsZero() {
			firstRead = readAt
		}
		if err != nil {
			rep.Failures = append(rep.Failures, DrillFailure{Index: p.index, Registry: p.registry, Reason: clip(err.Error())})
			continue
		}
		rep.Verified++
	}
	if !firstRead.IsZero() {
		rep.FirstRead = &firstRead
		rep.RTOSeconds = seconds(firstRead.Sub(later(run.started, run.unsealed)))
	}
	return nil
}

// checkEntry checks one sampled record entry: it is the entry of the
// writer's signed tree, it unseals, its plaintext is what the entry's
// commitment commits to, and the registries serve that very version.
// readAt is when the record was served.
func (t *tenant) checkEntry(ctx context.Context, regs *registry.Registries, keys *seal.Keyring, f ledger.Fetcher, prover *ledger.Prover,
	cp ledger.Checkpoint, p sampled) (readAt time.Time, err error) {
	idx := p.index
	raw, err := ledger.ReadEntry(ctx, f, idx, cp.Size)
	if err != nil {
		return time.Time{}, fmt.Errorf("read: %w", err)
	}
	prf, err := prover.Inclusion(ctx, idx, cp.Size)
	if err != nil {
		return time.Time{}, fmt.Errorf("inclusion proof: %w", err)
	}
	if ledger.VerifyInclusion(idx, cp.Size, ledger.LeafHash(raw), prf, cp.Root) != nil {
		return time.Time{}, fmt.Errorf("the stored entry is not the one in the writer's signed tree of size %d (its inclusion proof fails)", cp.Size)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		return time.Time{}, err
	}
	re, err := registry.UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return time.Time{}, err
	}
	if re.Registry != p.registry {
		return time.Time{}, fmt.Errorf("holds a record of registry %s", re.Registry)
	}
	rk := keys.Registry(re.Registry)
	ad := re.AD(t.id, e.Epoch)
	plain, err := rk.Open(ad, re.Sealed)
	if err != nil {
		return time.Time{}, fmt.Errorf("does not unseal: %w", err)
	}
	defer clear(plain)
	if !rk.VerifyCommitRecord(ad, plain, re.Commitment) {
		return time.Time{}, errors.New("the unsealed record does not match the entry's commitment")
	}
	var body struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(plain, &body); err != nil {
		return time.Time{}, errors.New("the unsealed body is not a record")
	}
	defer clear(body.Data)
	if rk.BlindID(body.ID) != re.BlindID {
		return time.Time{}, errors.New("the unsealed record's id does not match the entry's blind id")
	}
	rec, err := regs.Get(ctx, re.Registry, body.ID, registry.AsOf{Index: &idx})
	if err != nil {
		return time.Time{}, fmt.Errorf("served read: %w", err)
	}
	readAt = t.s.opts.Now()
	defer clear(rec.Data)
	if rec.Index != idx || rec.Version != re.Version {
		return readAt, fmt.Errorf("served read returned version %d at entry %d, not version %d", rec.Version, rec.Index, re.Version)
	}
	if !bytes.Equal(rec.Data, body.Data) {
		return readAt, errors.New("the served record differs from the sealed one")
	}
	return readAt, nil
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
// standby, the report signed, kept, and sent to the writer. The keys are
// wiped before it is called.
func (t *tenant) finishDrill(run *drillRun, rep *DrillReport) {
	rep.Finished = t.s.opts.Now()
	signed, serr := SignDrillReport(rep, t.key)
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
	t.mode.CompareAndSwap(ModeDrill, ModeStandby)
	t.mu.Unlock()
	d.mu.Unlock()
	t.s.log.Warn("drill done: keys wiped, back in standby", "guest", t.id, "order", rep.Order, "sample", rep.SampleSize,
		"verified", rep.Verified, "failures", len(rep.Failures), "rto_seconds", rep.RTOSeconds,
		"rpo_entries", rep.RPOEntries, "rpo_seconds", rep.RPOSeconds, "error", rep.Error)
	if serr == nil {
		go t.deliverDrillReport(rep.Order, signed)
	}
}

// deliverDrillReport has the writer record the report, retrying for a
// while: the writer may be busy, or not hold the order under its
// published checkpoint yet.
func (t *tenant) deliverDrillReport(order string, signed []byte) {
	d := &t.drill
	deadline := time.Now().Add(drillDeliveryWindow)
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, time.Minute) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		wr, rc, err := t.recordAtWriter(ctx, signed)
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
			t.s.log.Warn("drill report recorded in the ledger", "guest", t.id, "order", order, "writer", wr, "ledger_index", rc.Index)
			return
		}
		d.recordErr = err.Error()
		d.mu.Unlock()
		if time.Now().After(deadline) {
			t.s.log.Error("drill report not recorded: giving up", "guest", t.id, "order", order, "writer", wr, "err", err)
			return
		}
		t.s.log.Warn("drill report not recorded yet; retrying", "guest", t.id, "order", order, "writer", wr, "err", err, "in", delay)
		time.Sleep(delay)
	}
}

func (t *tenant) recordAtWriter(ctx context.Context, signed []byte) (string, *DrillReportReceipt, error) {
	wr, c, err := t.writerClient()
	if err != nil {
		return wr, nil, err
	}
	rc, err := c.RecordDrillReport(ctx, signed)
	return wr, rc, err
}

// DrillReportReceipt answers POST .../drill-reports.
type DrillReportReceipt struct {
	Order string `json:"order"`
	Index uint64 `json:"ledger_index"`
	// Duplicate: this very report was recorded before, at Index.
	Duplicate bool `json:"duplicate,omitempty"`
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
			if r, _, _, err := ParseDrillReport(e.Payload); err == nil {
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
func (s *Site) recordDrillReport(ctx context.Context, c *charter.Charter, l *ledger.Log, epoch uint64, raw []byte) (*DrillReportReceipt, error) {
	rep, err := VerifyDrillReport(c, raw)
	if err != nil {
		return nil, newHTTPError(http.StatusUnprocessableEntity, "", err.Error())
	}
	d := s.drillLedgerOf(l)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refreshLocked(ctx, l); err != nil {
		return nil, fmt.Errorf("read the ledger's drill orders: %w", err)
	}
	o, ok := d.orders[rep.Order]
	switch {
	case !ok:
		return nil, newHTTPError(http.StatusUnprocessableEntity, "", fmt.Sprintf("no drill order %s in this ledger (up to entry %d): a report follows its order", rep.Order, d.scanned))
	case o.site != rep.Site:
		return nil, newHTTPError(http.StatusUnprocessableEntity, "", fmt.Sprintf("drill order %s names site %s, not %s", rep.Order, o.site, rep.Site))
	}
	if prev, ok := d.reports[rep.Order]; ok {
		if prev.digest == sha256.Sum256(raw) {
			return &DrillReportReceipt{Order: rep.Order, Index: prev.index, Duplicate: true}, nil
		}
		return nil, newHTTPError(http.StatusConflict, "", fmt.Sprintf("another report of drill order %s is recorded at entry %d", rep.Order, prev.index))
	}
	idx, err := l.Append(ctx, ledger.Entry{Type: ledger.TypeDrillReport, Epoch: epoch, Time: s.opts.Now(), Payload: raw})
	if err != nil {
		return nil, fmt.Errorf("append the drill report: %w", err)
	}
	d.reports[rep.Order] = drillReportRef{index: idx, digest: sha256.Sum256(raw)}
	s.log.Warn("drill report recorded", "guest", c.Guest.ID, "drilled_site", rep.Site, "order", rep.Order, "ledger_index", idx,
		"verified", rep.Verified, "sample", rep.SampleSize, "failures", len(rep.Failures), "rto_seconds", rep.RTOSeconds)
	return &DrillReportReceipt{Order: rep.Order, Index: idx}, nil
}

func readDrillReport(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, ledger.MaxPayloadSize+1))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: "drill report: " + err.Error()})
		return nil, false
	}
	return raw, true
}

func (s *Site) answerDrillReport(w http.ResponseWriter, rc *DrillReportReceipt, err error) {
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			writeJSON(w, he.status, he.body)
			return
		}
		s.log.Error("drill report not recorded", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rc)
}

// homeDrillReport records a report at a home that writes. The report's
// signature is its authority: the request itself needs none.
func (s *Site) homeDrillReport(w http.ResponseWriter, r *http.Request) {
	l := s.home.local
	if r.PathValue("guest") != l.Charter.Guest.ID {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("guest %q is not held at this site", r.PathValue("guest"))})
		return
	}
	if s.home.currentMode() == ModeFenced {
		writeJSON(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("%v: this home is fenced: a newer epoch has another writer", errNotWriter)})
		return
	}
	raw, ok := readDrillReport(w, r)
	if !ok {
		return
	}
	rc, err := s.recordDrillReport(r.Context(), l.Charter, l.Log, max(l.Log.Epoch(), 1), raw)
	s.answerDrillReport(w, rc, err)
}

// tenantDrillReport records a report at an embassy (or a home after a
// failback) that writes the guest's ledger now.
func (s *Site) tenantDrillReport(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	raw, ok := readDrillReport(w, r)
	if !ok {
		return
	}
	t.mu.Lock()
	l := t.log
	cur := t.writers.ep.Current()
	wr, _ := t.writers.ep.WriterAt(cur)
	writes := !l.IsMirror() && (t.act == nil || !t.act.handingOver)
	t.mu.Unlock()
	if !writes {
		writeJSON(w, http.StatusConflict, ErrorBody{Error: fmt.Sprintf("%v: submit the drill report to site %s, the writer of epoch %d", errNotWriter, wr, cur)})
		return
	}
	rc, err := s.recordDrillReport(r.Context(), t.charter, l, cur, raw)
	s.answerDrillReport(w, rc, err)
}
