package replica_test

// Tests that each guard a receiver keeps against a hostile sender is
// load-bearing: every one fails when its check is deleted or weakened (see
// docs/testing.md, "Mutation testing").

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// optReceiver is a receiver for site on a new, empty mirror and blob
// directory (returned), with options set as the test needs (quota, fence,
// writers, hooks).
func (f *fixture) optReceiver(site string, set func(*replica.ReceiverOptions)) (*replica.Receiver, string) {
	f.t.Helper()
	dir := f.t.TempDir()
	log := f.openMirror(filepath.Join(dir, "ledger"))
	be, err := storefs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		f.t.Fatal(err)
	}
	cs, err := replica.NewReceiptCosigner(f.c, site, f.siteKey(site))
	if err != nil {
		f.t.Fatal(err)
	}
	o := replica.ReceiverOptions{Charter: f.c, Site: site, Log: log, Blobs: be, Cosigner: cs}
	set(&o)
	r, err := replica.NewReceiver(o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		r.Close()
		log.Close()
	})
	return r, dir
}

// guardReceiver is optReceiver without the directory.
func (f *fixture) guardReceiver(site string, set func(*replica.ReceiverOptions)) *replica.Receiver {
	f.t.Helper()
	r, _ := f.optReceiver(site, set)
	return r
}

// TestFencedReceiverRefusesOlderEpoch: a site fenced from epoch 2 on (it
// was shown an activation order) refuses the old writer's epoch-1 batch,
// though its own mirror, still at epoch 1, would take it; the fence holds
// too for a batch already on its way in when the fence is set.
func TestFencedReceiverRefusesOlderEpoch(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	f.mustPut("business", "B-1", nil)
	s1, cp1 := f.published()
	f.mustPut("business", "B-2", nil)
	s2, cp2 := f.published()
	if cp2.Epoch != 1 {
		t.Fatalf("home at epoch %d, want 1", cp2.Epoch)
	}
	ctx := context.Background()

	t.Run("set before", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(north, func(o *replica.ReceiverOptions) {
			o.Fence = func() (uint64, string) { return 2, "activation order shown" }
		})
		_, err := r.Accept(ctx, f.batch(north, 0, cp1.Size, s1, false))
		if !errors.Is(err, ledger.ErrStaleEpoch) || !errors.Is(err, replica.ErrRefused) {
			t.Fatalf("epoch-1 batch at a site fenced from epoch 2: %v, want a stale-epoch refusal", err)
		}
		if got := r.Log().MirrorSize(); got != 0 {
			t.Fatalf("a fenced batch left %d entries in the mirror", got)
		}
	})

	t.Run("in flight", func(t *testing.T) {
		f := f.with(t)
		var fence atomic.Uint64
		var fenceCalls, arrivals atomic.Int32
		firstChecking, secondArrived, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
		r := f.guardReceiver(north, func(o *replica.ReceiverOptions) {
			// Suspended runs as a batch arrives, before it waits its
			// turn; Fence runs once it has the turn.
			o.Suspended = func() error {
				if arrivals.Add(1) == 2 {
					close(secondArrived)
				}
				return nil
			}
			o.Fence = func() (uint64, string) {
				min := fence.Load()
				if fenceCalls.Add(1) == 1 {
					// The first batch has read the fence (none yet) and
					// is held here, its turn taken.
					close(firstChecking)
					<-release
				}
				return min, "activation order shown"
			}
		})
		first, second := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := r.Accept(ctx, f.batch(north, 0, cp1.Size, s1, false))
			first <- err
		}()
		<-firstChecking
		go func() {
			_, err := r.Accept(ctx, f.batch(north, cp1.Size, cp2.Size, s2, false))
			second <- err
		}()
		<-secondArrived
		// The second batch is in: it waits behind the first, which was
		// checked against no fence. The activation begins now.
		fence.Store(2)
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("batch checked before the fence: %v", err)
		}
		if err := <-second; !errors.Is(err, ledger.ErrStaleEpoch) {
			t.Fatalf("epoch-1 batch in flight when the fence was set: %v, want ErrStaleEpoch", err)
		}
		if got := r.Log().MirrorSize(); got != cp1.Size {
			t.Fatalf("mirror holds %d entries, want the first batch's %d", got, cp1.Size)
		}
	})
}

// epochTable is Writers as a site knows them after an activation: a key
// per epoch.
type epochTable map[uint64]note.Verifiers

func (w epochTable) Verifiers(epoch uint64) (note.Verifiers, error) {
	vs, ok := w[epoch]
	if !ok {
		return nil, fmt.Errorf("no writer known for epoch %d", epoch)
	}
	return vs, nil
}

// TestWriterKeyFollowsCheckpointEpoch: with two epochs in the writers
// table (the home wrote epoch 1, an activated embassy writes epoch 2), a
// checkpoint of epoch 2 must carry the epoch-2 writer's signature. The
// home's signature over the same tree, which epoch 1's policy accepts, is
// refused, at Accept and when State cosigns the mirror's checkpoint.
func TestWriterKeyFollowsCheckpointEpoch(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	ctx := context.Background()
	f.mustPut("business", "B-1", nil)
	s1, cp1 := f.published()
	held := f.homeEntries(cp1.Size)
	e2, err := ledger.Entry{Type: ledger.TypeNotice, Epoch: 2, Time: time.Now(), Payload: []byte("the embassy writes")}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cp2 := ledger.Checkpoint{Origin: f.c.Guest.Origin, Size: cp1.Size + 1, Root: rootOf(t, append(held[:len(held):len(held)], e2)), Epoch: 2}
	signWith := func(site string) []byte {
		s, _, err := ledger.NewLogSigner(f.c.Guest.Origin, f.siteKey(site))
		if err != nil {
			t.Fatal(err)
		}
		signed, err := ledger.SignCheckpoint(cp2, s)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	n, _ := f.c.Site(north)
	nv, err := ledger.ParseVerifierKey(n.CheckpointKey)
	if err != nil {
		t.Fatal(err)
	}
	table := epochTable{1: f.homeVerifiers(), 2: note.VerifierList(nv)}
	r := f.guardReceiver(south, func(o *replica.ReceiverOptions) { o.Writers = table })
	if _, err := r.Accept(ctx, f.batch(south, 0, cp1.Size, s1, false)); err != nil {
		t.Fatalf("epoch-1 batch signed by the home: %v", err)
	}
	next := func(signed []byte) *replica.Batch {
		return &replica.Batch{First: cp1.Size, Checkpoint: signed, Entries: [][]byte{e2}}
	}
	if _, err := r.Accept(ctx, next(signWith(home))); !errors.Is(err, replica.ErrRefused) {
		t.Fatalf("epoch-2 checkpoint signed by the epoch-1 writer: %v, want a refusal", err)
	}
	if got := r.Log().MirrorSize(); got != cp1.Size {
		t.Fatalf("a refused batch left the mirror at %d entries, want %d", got, cp1.Size)
	}
	receipt, err := r.Accept(ctx, next(signWith(north)))
	if err != nil {
		t.Fatalf("epoch-2 checkpoint signed by the epoch-2 writer: %v", err)
	}
	if _, _, err := replica.OpenReceipt(f.c, table, south, receipt); err != nil {
		t.Fatalf("receipt for the epoch-2 checkpoint: %v", err)
	}
	// A receipt for the epoch-2 tree bearing the home's signature does not
	// open under the table either.
	cs, err := replica.NewReceiptCosigner(f.c, south, f.siteKey(south))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := ledger.Cosign(signWith(home), cs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replica.OpenReceipt(f.c, table, south, forged); err == nil {
		t.Fatal("opened a receipt whose epoch-2 checkpoint the home signed")
	}
	if _, err := r.State(ctx); err != nil {
		t.Fatalf("state after the epoch-2 batch: %v", err)
	}
}

// TestOpenReceiptRefusesCosignatureOnly: a site's cosignature over a
// checkpoint text the writer never signed is no receipt. Accepting it
// would let a host forge receipts for any size, and quorum writes would
// be acknowledged without being replicated.
func TestOpenReceiptRefusesCosignatureOnly(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	f.mustPut("business", "B-1", nil)
	signed, cp := f.published()
	cs, err := replica.NewReceiptCosigner(f.c, north, f.siteKey(north))
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := ledger.Cosign(signed, cs)
	if err != nil {
		t.Fatal(err)
	}
	w := replica.HomeWriter{Charter: f.c}
	if got, _, err := replica.OpenReceipt(f.c, w, north, genuine); err != nil || got.Size != cp.Size {
		t.Fatalf("genuine receipt: size %d, %v", got.Size, err)
	}
	big := cp
	big.Size += 1 << 20
	only, err := note.Sign(&note.Note{Text: string(big.Marshal())}, cs)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := replica.OpenReceipt(f.c, w, north, only); err == nil {
		t.Fatalf("opened a receipt of size %d bearing only the site's cosignature", got.Size)
	}
}

// TestOpenReceiptRefusesUnknowns: a receipt is refused, not a crash, when
// no writer is known for its checkpoint's epoch or the site is not in the
// charter. (Found by mutation testing.)
func TestOpenReceiptRefusesUnknowns(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	f.mustPut("business", "B-1", nil)
	signed, _ := f.published()
	cs, err := replica.NewReceiptCosigner(f.c, north, f.siteKey(north))
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := ledger.Cosign(signed, cs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replica.OpenReceipt(f.c, epochTable{2: f.homeVerifiers()}, north, receipt); err == nil {
		t.Error("opened a receipt of epoch 1 with no writer known for it")
	}
	if _, _, err := replica.OpenReceipt(f.c, replica.HomeWriter{Charter: f.c}, "nowhere", receipt); err == nil {
		t.Error("opened a receipt of a site not in the charter")
	}
	if _, _, err := replica.OpenReceipt(f.c, replica.HomeWriter{Charter: f.c}, north, receipt); err != nil {
		t.Errorf("the receipt itself: %v", err)
	}
}

// TestReceiverRefusesWhatItCannotPlace: a suspended guest's batch is
// refused; a batch whose checkpoint's epoch has no known writer is refused,
// not a crash; and placement answers for what is not in the charter or
// does not decode. (Found by mutation testing.)
func TestReceiverRefusesWhatItCannotPlace(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	ctx := context.Background()
	f.mustPut("business", "B-1", nil)
	signed, cp := f.published()
	b := f.batch(north, 0, cp.Size, signed, false)

	suspended := f.guardReceiver(north, func(o *replica.ReceiverOptions) {
		o.Suspended = func() error { return errors.New("suspended by the host") }
	})
	if _, err := suspended.Accept(ctx, b); !errors.Is(err, replica.ErrSuspended) {
		t.Errorf("batch for a suspended guest: %v, want ErrSuspended", err)
	}
	unknown := f.guardReceiver(north, func(o *replica.ReceiverOptions) { o.Writers = epochTable{2: f.homeVerifiers()} })
	if _, err := unknown.Accept(ctx, b); !errors.Is(err, replica.ErrRefused) {
		t.Errorf("batch of an epoch with no known writer: %v, want a refusal", err)
	}
	for _, r := range []*replica.Receiver{suspended, unknown} {
		if n := r.Log().MirrorSize(); n != 0 {
			t.Errorf("a refused batch left %d entries", n)
		}
	}

	p := replica.Placement{Charter: f.c, Site: north}
	if p.Registry("no-such-registry") {
		t.Error("a registry not in the charter is placed")
	}
	if _, _, _, err := p.Entry([]byte("not an entry")); err == nil {
		t.Error("an undecodable entry was placed")
	}
	junk, err := ledger.Entry{Type: ledger.TypeRecord, Epoch: 1, Time: time.Now(), Payload: []byte("no record")}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := p.Entry(junk); err == nil {
		t.Error("a record entry whose payload is no record was placed")
	}
}
