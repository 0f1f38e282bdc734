package guest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestFailbackFencesWrites: at an activated, unsealed embassy a failback
// refused (one of its two signatures) leaves it active and writing; an
// accepted one fences writes as it is taken — by the order itself, not
// by the hand-over that follows it, which is held back here — and is
// written in the epoch the embassy wrote, the old one.
func TestFailbackFencesWrites(t *testing.T) {
	f := startGuestFixture(t)
	ctx := context.Background()
	failback := func(officials ...string) *continuity.SignedOrder {
		return f.order(t, continuity.Order{Action: charter.ActionFailback, Site: "home", Epoch: 3, Reason: "failback fence test"}, officials...)
	}
	if _, _, err := f.g.Submit(ctx, failback("cio"), false); err == nil {
		t.Fatal("failback with one of its two signatures taken")
	}
	if m := f.g.Mode(); m != siteapi.ModeActive {
		t.Fatalf("after a refused failback embassy-north is %s, want active", m)
	}
	drill := f.order(t, continuity.Order{Action: charter.ActionDrill, Site: "embassy-south", Epoch: 2, Reason: "after a refused failback"}, "cio")
	if _, _, err := f.g.Submit(ctx, drill, false); err != nil {
		t.Fatalf("an order after a refused failback: %v", err)
	}

	// Hold back the hand-over the accepted order starts.
	f.g.workMu.Lock()
	f.g.closing = true
	f.g.workMu.Unlock()
	_, idx, err := f.g.Submit(ctx, failback("min-interior", "cio"), false)
	if err != nil {
		t.Fatalf("failback: %v", err)
	}
	if m := f.g.Mode(); m != siteapi.ModeFenced {
		t.Fatalf("after an accepted failback embassy-north is %s, want fenced", m)
	}
	lg := f.g.Ledger()
	_, cp, err := lg.WaitPublished(ctx, idx+1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ledger.ReadEntry(ctx, ledger.DirFetcher(lg.Dir()), idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != ledger.TypeOrder || e.Epoch != 2 {
		t.Fatalf("the failback is a %s entry of epoch %d, want an order of epoch 2: the epoch of the writer it ends", e.Type, e.Epoch)
	}
}

// TestCloseJoinsTransitions: a transition the guest started (here one
// that waits for its context, as a hand-over waiting for the new writer
// does) ends before Close returns, and once the guest closes nothing new
// starts. No goroutine outlives its guest.
func TestCloseJoinsTransitions(t *testing.T) {
	f := startGuestFixture(t)
	started := make(chan struct{})
	var exited atomic.Bool
	f.g.spawn(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a transition winding down
		exited.Store(true)
	})
	<-started
	if err := f.g.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
		t.Fatal(err)
	}
	if !exited.Load() {
		t.Fatal("Close returned while a transition of the guest was still running")
	}
	ran := false
	f.g.spawn(func(context.Context) { ran = true })
	f.g.work.Wait() // had it started, this would wait for it
	if ran {
		t.Fatal("a transition started after Close")
	}
}
