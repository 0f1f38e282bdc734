package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"crypto/ed25519"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/location"
)

// Guest is one guest at this site: its verified charter, its ledger (a
// sealed mirror, or this site's writer log), its sealed blobs, the
// receiver that checks what the writer ships and, while it writes, the
// activation that holds its shippers and, once unsealed, its keys.
//
// Lock order, at most two levels: drill.mu, then mu. rmu, workMu and
// drillMu are leaves (nothing is locked under them); the epochs' lock is
// a leaf but for epochWriters.accept, which appends the order under it,
// inside mu (see the package comment and docs/architecture.md).
type Guest struct {
	opts    Options
	logger  *slog.Logger
	id      string // guest id
	charter *charter.Charter
	site    string // this site's id in the guest's charter
	def     *charter.Site
	dir     string
	blobs   store.Backend
	mode    atomic.Value // siteapi.Mode
	quota   int64
	peers   pintls.PeerKeys // sites of the guest's charter, by TLS key
	susp    *suspensions
	notices *noticeIndex
	writers *epochWriters

	key      ed25519.PrivateKey // the site's checkpoint key for this guest: receipts, and checkpoints when it writes
	cosigner *ledger.Cosigner
	custody  *seal.CustodyPackage // for unseal sessions; nil if not configured
	rootFile string               // a home's sealed root key file, if it has one
	shredded []*continuity.Order  // revocations a standby home acted on, to record once it writes (under mu)
	fence    fence                // refuses batches of epochs before an activation shown here (fence.go)

	// mu guards log (swapped between mirror and writer), act and the
	// transitions between standby and active.
	mu  sync.Mutex
	log *ledger.Log
	act *activation

	rmu        sync.Mutex
	recv       *replica.Receiver
	usedAtOpen int64

	lastBatch atomic.Int64 // unix nanos of the last accepted batch
	suspSeen  suspensionsSeen

	// The transitions that replication triggers (take-over, hand-over,
	// revocation, drills, fencing) run on goroutines the guest owns:
	// they run under ctx, which close cancels, and close waits for them,
	// so that none outlives its guest.
	ctx     context.Context
	cancel  context.CancelFunc
	workMu  sync.Mutex
	closing bool
	work    sync.WaitGroup

	drill drillState // the drill running here, and the last report

	// drillLedgers index the drill orders and reports of the ledgers this
	// site appends drill reports to (drillLedgerOf).
	drillMu      sync.Mutex
	drillLedgers map[*ledger.Log]*drillLedger

	procs procedureEngines // the procedure engine over the unsealed state (procedure.go)
	// noticeMu serializes PublishNotice's check for a used id and its
	// append, so one id is recorded once (notices.go). A leaf.
	noticeMu sync.Mutex
}

func (t *Guest) currentMode() siteapi.Mode { return t.mode.Load().(siteapi.Mode) }

// unsealed returns the guest's state opened with its keys, or nil while
// it is sealed.
func (t *Guest) unsealed() *Local {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.act == nil {
		return nil
	}
	return t.act.local
}

// replicator returns the shippers of a site that writes, or nil.
func (t *Guest) replicator() *replica.Replicator {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.act == nil {
		return nil
	}
	return t.act.repl
}

// registryNames lists the registries served while unsealed.
func (t *Guest) registryNames() []string {
	if l := t.unsealed(); l != nil {
		return l.Registries.Names()
	}
	return nil
}

// GuestDir is where an embassy keeps one guest: DataDir/guests/<guest>.
func GuestDir(dataDir, guest string) string { return filepath.Join(dataDir, "guests", guest) }

// Open opens one guest at a site: its ledger (a mirror, or this site's
// writer log when the ledger says this site writes the current epoch),
// its blobs, its checkpoint key, and its receiver. A writer starts
// shipping to the other sites at once, and a home unseals from its root
// key file.
func Open(ctx context.Context, gc Config, opts Options) (_ *Guest, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RootsRebuilt == nil {
		opts.RootsRebuilt = new(atomic.Uint64)
	}
	if opts.Remote == nil {
		opts.Remote = func(c *charter.Charter, def charter.Site) (*replica.Remote, error) {
			return nil, fmt.Errorf("site %s: this site reaches no other site", def.ID)
		}
	}
	c, err := charter.ReadVerified(gc.Charter)
	if err != nil {
		return nil, err
	}
	id := gc.Site
	def, ok := c.Site(id)
	if !ok {
		return nil, fmt.Errorf("guest %s: site %q is not in its charter", c.Guest.ID, id)
	}
	switch {
	case gc.Dir == "" && def.Role != charter.RoleEmbassy:
		return nil, fmt.Errorf("guest %s: site %s has role %q in its charter, not embassy", c.Guest.ID, id, def.Role)
	case gc.Dir != "" && def.Role != charter.RoleHome:
		return nil, fmt.Errorf("guest %s: site %s has role %q in its charter; a state directory serves the home (an embassy is configured with guests:)", c.Guest.ID, id, def.Role)
	}
	quota, err := def.QuotaBytes()
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", c.Guest.ID, err)
	}
	dir := GuestDir(gc.DataDir, c.Guest.ID)
	if gc.Dir != "" {
		dir = gc.Dir
	}
	t := &Guest{opts: opts, logger: opts.Logger, id: c.Guest.ID, charter: c, site: id, def: def, dir: dir, quota: quota, rootFile: gc.RootFile}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mode.Store(siteapi.ModeStandby)
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	lo := opts.Ledger
	lo.Origin, lo.Mirror, lo.Signer = c.Guest.Origin, true, nil
	lo.Logger = t.logger.With("guest", t.id, "component", "ledger")
	if t.log, err = ledger.Open(ctx, filepath.Join(t.dir, "ledger"), lo); err != nil {
		return nil, fmt.Errorf("guest %s: open mirror: %w", t.id, err)
	}
	if t.blobs, err = location.Open(ctx, gc.Blobs, location.Options{DefaultDir: filepath.Join(t.dir, "blobs"), Retention: c.Safeguards.RetentionPeriod()}); err != nil {
		return nil, fmt.Errorf("blob store of guest %s: %w", t.id, err)
	}
	if t.key, err = keyfile.ReadEd25519(gc.CheckpointKey, keyfile.Protector{Passphrase: opts.Passphrase}); err != nil {
		return nil, fmt.Errorf("guest %s: checkpoint key: %w", t.id, err)
	}
	if t.cosigner, err = replica.NewReceiptCosigner(c, id, t.key); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if gc.Custody != "" {
		if t.custody, err = seal.ReadCustodyPackageFile(gc.Custody); err != nil {
			return nil, fmt.Errorf("guest %s: custody: %w", t.id, err)
		}
		if t.custody.Guest() != t.id {
			return nil, fmt.Errorf("guest %s: custody package %s is for %s", t.id, gc.Custody, t.custody.Guest())
		}
		// The package must be the one the charter pins: shares of another
		// split (perhaps of another root) must not be combined here.
		if err := continuity.CheckCustody(c, t.custody); err != nil {
			return nil, fmt.Errorf("guest %s: custody package %s: %w", t.id, gc.Custody, err)
		}
	}
	if t.writers, err = newEpochWriters(c); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if err := t.writers.foldLedger(ctx, t.log); err != nil {
		return nil, fmt.Errorf("guest %s: orders in the ledger: %w", t.id, err)
	}
	t.writers.onFold = t.onFold
	if err := t.loadFence(); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if t.peers, err = pintls.SiteKeys(c); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if t.susp, err = openSuspensions(ctx, filepath.Join(t.dir, "suspension.json"), c, t.site, t.log, t.logger.With("guest", t.id)); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	t.notices = &noticeIndex{log: t.log}
	if gc.Dir == "" || gc.Standby {
		// What a guest holds counts against its quota at a host's site;
		// a home's own state has none, and is not walked at every start.
		used, err := t.usage(ctx)
		if err != nil {
			return nil, fmt.Errorf("guest %s: measure what it holds: %w", t.id, err)
		}
		t.usedAtOpen = used
	}
	if err := t.newReceiver(); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	// The site the ledger names as the writer of the current epoch writes:
	// a home in its normal life (epoch 1, or the epoch a failback gave it),
	// or an embassy that was active when it stopped. Every other site
	// follows as a sealed mirror.
	cur := t.writers.ep.Current()
	w, _ := t.writers.ep.WriterAt(cur)
	switch {
	case gc.Standby && (w != t.site || cur == 1):
		// A rebuilt home, empty or holding only its first epoch, follows
		// whichever site writes now.
	case w != t.site && gc.Dir != "" && !gc.Standby:
		// A home whose ledger says another site writes now: it must follow
		// that site, and say so in its config rather than have it guessed.
		return nil, fmt.Errorf("guest %s: this home's ledger says site %s writes epoch %d; start it with standby: true to follow that site until a failback names it", t.id, w, cur)
	case w != t.site:
	case gc.Standby:
		// A home started with standby: true whose ledger says it writes:
		// the operator asked it to follow, but no other site writes this
		// epoch. Refuse rather than guess.
		return nil, fmt.Errorf("guest %s: this home's ledger says it writes epoch %d; start it without standby: true (or, if another site writes now, run chancery reconcile first)", t.id, cur)
	default:
		if gc.Dir == "" {
			t.logger.Warn("this site writes the guest's ledger (it was active when it stopped); reopening as the writer, sealed", "guest", t.id, "epoch", cur)
		}
		if err := t.reopen(ctx, false, cur); err != nil {
			return nil, err
		}
		// The order that opened this epoch still scopes it: its registries
		// and its access.
		o := t.writers.opener(cur)
		t.act = &activation{order: o, readOnly: o != nil && o.Access == continuity.AccessReadOnly, accepted: opts.Now(), epoch: cur}
		t.mode.Store(siteapi.ModeActive)
		if err := t.startReplication(); err != nil {
			return nil, err
		}
		if t.rootFile != "" {
			// A home keeps its root key sealed under its passphrase: it
			// unseals at once. An embassy waits for the custodians.
			t.mu.Lock()
			err := t.unsealFromFile(ctx)
			t.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("guest %s: unseal the root key: %w", t.id, err)
			}
		}
	}
	return t, nil
}

// usage is what the guest holds here, as its receiver counts it.
func (t *Guest) usage(ctx context.Context) (int64, error) {
	return replica.Usage(ctx, filepath.Join(t.dir, "ledger"), t.blobs)
}

// spawn runs f on a goroutine the guest owns (see Guest.ctx); once the
// guest is closing it runs nothing.
func (t *Guest) spawn(f func(ctx context.Context)) {
	t.workMu.Lock()
	defer t.workMu.Unlock()
	if t.closing {
		return
	}
	t.work.Add(1)
	go func() {
		defer t.work.Done()
		f(t.ctx)
	}()
}

func (t *Guest) close() error {
	// The transitions in flight end first: their context is cancelled,
	// and they are waited for before the keys and the ledger go.
	t.workMu.Lock()
	t.closing = true
	t.workMu.Unlock()
	if t.cancel != nil {
		t.cancel()
	}
	t.work.Wait()
	var errs []error
	// A drill waiting for shares ends with the site: its one-time key
	// goes. (One already sampling holds keys for seconds and wipes them
	// itself when done.)
	t.drill.mu.Lock()
	if r := t.drill.run; r != nil && r.session != nil && r.unsealed.IsZero() {
		r.session.Close()
		t.drill.run = nil
	}
	t.drill.mu.Unlock()
	t.mu.Lock()
	t.resealLocked()
	t.mu.Unlock()
	if r := t.receiver(); r != nil {
		errs = append(errs, r.Close())
	}
	if t.log != nil {
		if err := t.log.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
			errs = append(errs, fmt.Errorf("guest %s: close mirror: %w", t.id, err))
		}
	}
	return errors.Join(errs...)
}

// noticeIndex keeps the guest's public notices, read from the mirror as it
// grows, for the feed every site serves even in standby.
type noticeIndex struct {
	mu      sync.Mutex
	log     *ledger.Log
	scanned uint64
	list    []continuity.Notice
}

func (n *noticeIndex) setLog(l *ledger.Log) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.log = l
}

func (n *noticeIndex) all(ctx context.Context) ([]continuity.Notice, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, cp := n.log.Checkpoint()
	if cp.Size > n.scanned {
		err := ledger.Scan(ctx, ledger.DirFetcher(n.log.Dir()), n.scanned, cp.Size, func(idx uint64, raw []byte) error {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			if e.Type == ledger.TypeNotice {
				n.list = append(n.list, continuity.Notice{Index: idx, Time: e.Time, Epoch: e.Epoch, Payload: append([]byte(nil), e.Payload...)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		n.scanned = cp.Size
	}
	return n.list, nil
}
