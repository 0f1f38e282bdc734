// Package guest is one guest state at one site: its ledger (a keyless
// mirror, or this site's writer log of the epoch the ledger names it
// for), its receiver, its shippers once it writes, and the continuity
// state machine over them — order submission, activation and take-over,
// hand-over, fencing, fill of withheld entries, revocation, unseal
// sessions, drills and host suspensions. A home is simply the site the
// charter names as the writer of epoch 1: one code path serves home and
// embassy alike.
//
// The package knows nothing of HTTP. Package site authenticates requests
// and calls the exported methods of Guest; this package reaches other
// sites only through the replica.Remote its Options.Remote hands it.
//
// # Goroutines and locks
//
// Every goroutine a Guest starts is owned: the transitions replication
// triggers (take-over, hand-over, revocation, drills, fencing) run through
// spawn under the guest's context, and the shippers under a context of
// their activation; Close cancels both and waits for them.
//
// Lock order, at most two levels: Guest.drill.mu, then Guest.mu. Guest.rmu
// (the receiver pointer), Guest.workMu (the spawn gate), Guest.drillMu (the
// drill-report index map) and the epochs' lock are leaves: nothing else is
// taken while one of them is held, except that epochWriters.accept runs
// its commit (which appends to the ledger) under the epochs' lock, inside
// Guest.mu.
package guest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/location"
)

// Config names one guest's files at this site.
type Config struct {
	// Charter is the guest's signed charter file.
	Charter string
	// Site is this site's id in that charter.
	Site string
	// CheckpointKey is the sealed file of the site's checkpoint key for
	// this guest: it signs the site's receipts, and checkpoints when it
	// writes.
	CheckpointKey string
	// Blobs is where the guest's sealed attachments are kept (default fs
	// under the guest's directory).
	Blobs location.Config
	// Custody is the guest's custody package, what unseal sessions check
	// the custodians' shares against ("": none, no unseal).
	Custody string
	// DataDir holds an embassy's guests, each under GuestDir.
	DataDir string

	// Set for a home: its site directory in the state directory (instead
	// of GuestDir), its sealed root key file, and whether it was started
	// in standby.
	Dir, RootFile string
	Standby       bool
}

// ReplicationOptions tune the shippers of a guest this site writes.
type ReplicationOptions struct {
	// Disabled ships to no site.
	Disabled        bool
	BytesPerSecond  int64
	MaxBatchEntries int
	BlobParallel    int
	// QuorumTimeout bounds a quorum write's wait for receipts (default 30s).
	QuorumTimeout time.Duration
}

// Options are what a Guest takes from the site that holds it.
type Options struct {
	Logger *slog.Logger
	// Now is the clock of orders, records and reports (default time.Now).
	Now func() time.Time
	// Ledger tunes the guest's ledger; origin, mirror and signer are set
	// here.
	Ledger ledger.Options
	// Passphrase opens the checkpoint key, and a home's root key file (at
	// start and when a failback names it the writer).
	Passphrase  []byte
	Replication ReplicationOptions
	// Remote is how this site reaches another site of the charter (to
	// ship, fence, fill, deliver drill reports); default: no site.
	Remote func(c *charter.Charter, def charter.Site) (*replica.Remote, error)
	// LedgerCheckInterval is how often the stored right edge of the
	// ledger is checked, and repaired from the other sites when damaged
	// (repair.go); default DefaultLedgerCheckInterval.
	LedgerCheckInterval time.Duration
	// RootsRebuilt, if set, counts the times a root key was held in this
	// process (an activation's shares combined, a home's key file opened).
	RootsRebuilt *atomic.Uint64
	// OuterRotateBelow: an activated site rotates its own outer key as it
	// unseals once fewer seals than this remain in the key's nonce budget
	// (default DefaultOuterRotateBelow; rotate.go).
	OuterRotateBelow uint64
	// Writer, if set, is called each time this site becomes a writer of
	// the guest that may write with its registries open — unsealed, not
	// read-only, not fenced nor handing over — to start what writes on
	// its own there (the PostgreSQL connector). Its context ends, and the
	// registries refuse its writes (registry.ErrFenced), the moment the
	// site is fenced or hands over; what it returns is closed, and waited
	// for, before the registries close (hand-over, seal, Close). It may
	// return nil.
	Writer func(ctx context.Context, l *Local) io.Closer
}

// RefusedError is a request the guest refuses as it stands: 422 over
// HTTP, or 409 when Conflict (it clashes with what the ledger holds).
type RefusedError struct {
	Conflict bool
	Msg      string
}

func (e *RefusedError) Error() string { return e.Msg }

// ID is the guest's id.
func (t *Guest) ID() string { return t.id }

// Site is this site's id in the guest's charter.
func (t *Guest) Site() string { return t.site }

// Charter is the guest's verified charter.
func (t *Guest) Charter() *charter.Charter { return t.charter }

// Dir is the guest's directory at this site (its ledger is Dir/ledger).
func (t *Guest) Dir() string { return t.dir }

// Quota is what the guest may hold here, in bytes.
func (t *Guest) Quota() int64 { return t.quota }

// Peers are the sites of the guest's charter, by pinned TLS key.
func (t *Guest) Peers() pintls.PeerKeys { return t.peers }

// Mode is the guest's mode at this site.
func (t *Guest) Mode() siteapi.Mode { return t.currentMode() }

// Ledger is the guest's current ledger (mirror or writer).
func (t *Guest) Ledger() *ledger.Log { return t.ledger() }

// Epochs are the epochs folded from the guest's ledger.
func (t *Guest) Epochs() *continuity.Epochs { return t.writers.ep }

// Receiver is the guest's current replication receiver: it changes when
// the ledger is reopened (activation, failback, hand-over).
func (t *Guest) Receiver() *replica.Receiver { return t.receiver() }

// Unsealed is the guest's state opened with its keys, or nil while sealed.
func (t *Guest) Unsealed() *Local { return t.unsealed() }

// Replicator is the shippers of a guest this site writes, or nil.
func (t *Guest) Replicator() *replica.Replicator { return t.replicator() }

// RegistryNames lists the registries served while unsealed.
func (t *Guest) RegistryNames() []string { return t.registryNames() }

// LastBatch is when the receiver last accepted a batch (zero: never).
func (t *Guest) LastBatch() time.Time {
	if n := t.lastBatch.Load(); n > 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

// Status is the guest's continuity status at this site.
func (t *Guest) Status() siteapi.ContinuityStatus { return t.status() }

// Submit decides where an order may be appended and acts on it. A refusal
// wraps ErrNotWriter, ErrBehind or ErrUnfenced when the order went to the
// wrong site or one behind another; otherwise the order does not verify.
func (t *Guest) Submit(ctx context.Context, so *continuity.SignedOrder, acceptUnfenced bool) (*continuity.Order, uint64, error) {
	return t.submit(ctx, so, acceptUnfenced)
}

// OpenSession opens the unseal session of an activation.
func (t *Guest) OpenSession() (*siteapi.UnsealResponse, error) { return t.openSession() }

// AddShare adds a custodian's sealed share to the activation's session.
func (t *Guest) AddShare(ctx context.Context, session string, sealed []byte) (*siteapi.UnsealResponse, error) {
	return t.addShare(ctx, session, sealed)
}

// OpenDrillSession opens the unseal session of the drill running here.
func (t *Guest) OpenDrillSession() (*siteapi.UnsealResponse, error) { return t.openDrillSession() }

// AddDrillShare adds a custodian's sealed share to the drill's session.
func (t *Guest) AddDrillShare(ctx context.Context, session string, sealed []byte) (*siteapi.UnsealResponse, error) {
	return t.addDrillShare(ctx, session, sealed)
}

// DrillStatus is the drill running here, or the last one's report.
func (t *Guest) DrillStatus() siteapi.DrillStatus { return t.drillStatus() }

// AcceptFence fences this site's receiver against epochs before an
// activation order shown to it, and reports its state.
func (t *Guest) AcceptFence(ctx context.Context, so *continuity.SignedOrder) (*replica.State, error) {
	return t.acceptFence(ctx, so)
}

// Notices are the guest's public notices, read from its ledger.
func (t *Guest) Notices(ctx context.Context) ([]continuity.Notice, error) { return t.notices.all(ctx) }

// Usage is what the guest holds here, as its receiver counts it.
func (t *Guest) Usage(ctx context.Context) (int64, error) { return t.usage(ctx) }

// Suspension is the host's suspension notice given for this guest, if any.
func (t *Guest) Suspension() *siteapi.Suspension { return t.susp.current() }

// Suspended says whether the guest is suspended at now (an error saying
// since when and why), or nil.
func (t *Guest) Suspended(now time.Time) error { return t.suspended(now) }

// Suspend keeps a host's suspension notice, to be shipped to the writer.
func (t *Guest) Suspend(sp *siteapi.Suspension) error { return t.susp.give(sp) }

// RecordAccess appends the access entries of a read by official before
// it is served; the read is refused if it returns an error.
func (t *Guest) RecordAccess(ctx context.Context, official string, rd *Read) error {
	return t.recordAccess(ctx, official, rd)
}

// Close ends the guest: the transitions in flight are cancelled and
// waited for, the shippers stop, the keys are wiped and the ledger closes.
func (t *Guest) Close() error { return t.close() }

// Read is what one read of plaintext is about to serve: at an activated
// site it becomes an access entry (continuity.AccessEntry) before a byte
// is served.
type Read struct {
	Kind     string // continuity.AccessRecord, continuity.AccessHistory, continuity.AccessFind or continuity.AccessAttachment
	Registry string
	ID       string // the record asked for (not a find)
	// Records: the version served (record, attachment), or every record
	// a find returns.
	Records []*registry.Record
	// Versions: what a history lists.
	Versions []registry.VersionInfo
	// Field and Value: a find's query.
	Field, Value string
	// Attachment: the one an attachment download serves.
	Attachment *registry.Attachment
}

// Served is what the officials' API serves while the guest is unsealed.
type Served struct {
	Local *Local
	// ReadOnly refuses writes: a site activated read-only.
	ReadOnly bool
	// RecordsAccess: every read of plaintext is an access entry
	// (RecordAccess). Once the state has been through an activation that
	// holds wherever it is served (the home after a failback too); a home
	// in its first epoch records none.
	RecordsAccess bool
}

// Served returns what the officials' API serves, or nil while sealed.
func (t *Guest) Served() *Served {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if a == nil || a.local == nil {
		return nil
	}
	return &Served{Local: a.local, ReadOnly: a.readOnly, RecordsAccess: a.epoch > 1}
}

// Host is the host that runs this site, as the charter names it.
func (t *Guest) Host() string { return t.def.Host }

// Seal wipes the keys at an active site and stops serving the registries
// (chancery seal); the ledger stays as it is.
func (t *Guest) Seal() siteapi.ContinuityStatus {
	t.mu.Lock()
	t.wipeKeysLocked()
	t.mu.Unlock()
	return t.status()
}

// SubmitSiteKey takes a site's wrapped outer key from the guest's escrow,
// handed over with the shares and sealed to the open session's recipient
// (continuity.SealSiteKey); at the threshold it is unwrapped with the
// rebuilt root, in memory only. A key for no open session, or one that
// does not open, is a *RefusedError.
func (t *Guest) SubmitSiteKey(session, site string, sealed []byte) (*siteapi.UnsealResponse, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.act
	if a == nil || a.session == nil || a.session.ID() != session {
		return nil, &RefusedError{Msg: fmt.Sprintf("no unseal session %q open for %s at site %s", session, t.id, t.site)}
	}
	wrapped, err := a.session.OpenSiteKey(site, sealed)
	if err != nil {
		return nil, &RefusedError{Msg: err.Error()}
	}
	if a.wrapped == nil {
		a.wrapped = map[string][]byte{}
	}
	a.wrapped[site] = wrapped
	have, need, _ := a.session.Status()
	return t.sessionResponse(a.session, continuity.PurposeActivation, have, need), nil
}

// Fill fetches the entries this guest's ledger holds only as withheld
// stubs from the sites that hold them, with their packs (fill.go), and
// returns how many it filled.
func (t *Guest) Fill(ctx context.Context) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fillWithheld(ctx)
}

// HasCustody says whether the guest has its custody package here: without
// it an embassy cannot be unsealed for an activation or a drill.
func (t *Guest) HasCustody() bool { return t.custody != nil }

// Blobs is the guest's blob backend at this site, sealed as the site holds
// it: what a scheduled scrub reads.
func (t *Guest) Blobs() store.Backend { return t.blobs }
