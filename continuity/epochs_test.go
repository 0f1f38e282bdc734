package continuity_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

// TestEpochsFold runs the continuity procedure as a ledger would record it:
// home writes epoch 1, embassy-north is activated (epoch 2), drilled
// orders and revocations stay in their epoch, failback returns the writer
// to home (epoch 3). Replaying the accepted orders into a fresh Epochs, as
// replication does from the ledger, gives the same answers.
func TestEpochsFold(t *testing.T) {
	r := demo(t)
	e, err := continuity.NewEpochs(r.c)
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := e.WriterAt(1); !ok || w != "home" || e.Current() != 1 {
		t.Fatalf("epoch 1 writer %q %v, current %d", w, ok, e.Current())
	}
	if _, ok := e.WriterAt(2); ok {
		t.Fatal("epoch 2 has a writer before any order")
	}
	var ledger [][]byte
	commit := func(o *continuity.Order) error { return nil }
	accept := func(so *continuity.SignedOrder) error {
		o, err := e.Accept(r.c, so, t0, func(o *continuity.Order) error {
			b, err := so.Marshal()
			if err != nil {
				return err
			}
			ledger = append(ledger, b)
			return nil
		})
		if err == nil && o.ID != so.Order.ID {
			t.Fatalf("accepted another order")
		}
		return err
	}

	act := r.sign(t, r.order(t, r.c, activateNorth), "min-interior", "cio")
	if err := accept(act); err != nil {
		t.Fatal(err)
	}
	if w, _ := e.WriterAt(2); w != "embassy-north" || e.Current() != 2 {
		t.Fatalf("after activate: epoch %d writer %q", e.Current(), w)
	}
	if err := accept(act); !errors.Is(err, continuity.ErrReplayed) {
		t.Fatalf("replayed activation: %v", err)
	}
	// A drill order is valid in the epoch it names, the current one.
	if err := accept(r.sign(t, r.order(t, r.c, continuity.Order{Action: charter.ActionDrill, Epoch: 2, Site: "embassy-south"}), "cio")); err != nil {
		t.Fatal(err)
	}
	if err := accept(r.sign(t, r.order(t, r.c, continuity.Order{Action: charter.ActionRevokeSite, Epoch: 2, Site: "embassy-north"}), "min-interior", "cio", "registrar")); !errors.Is(err, continuity.ErrInvalid) {
		t.Fatalf("revoking the writer: %v", err)
	}
	if err := accept(r.sign(t, r.order(t, r.c, failbackHome), "min-justice", "cio")); err != nil {
		t.Fatal(err)
	}
	if err := accept(r.sign(t, r.order(t, r.c, continuity.Order{Action: charter.ActionRevokeSite, Epoch: 3, Site: "embassy-south"}), "min-interior", "cio", "registrar")); err != nil {
		t.Fatal(err)
	}
	if err := accept(r.sign(t, r.order(t, r.c, continuity.Order{Action: charter.ActionActivate, Epoch: 4, Site: "embassy-south", Access: continuity.AccessReadOnly}), "min-interior", "cio")); !errors.Is(err, continuity.ErrInvalid) {
		t.Fatalf("activating a revoked site: %v", err)
	}
	// A commit that fails leaves the fold as it was.
	boom := errors.New("disk full")
	act2 := r.sign(t, r.order(t, r.c, continuity.Order{Action: charter.ActionActivate, Epoch: 4, Site: "embassy-north", Access: continuity.AccessReadOnly}), "min-interior", "cio")
	if _, err := e.Accept(r.c, act2, t0, func(*continuity.Order) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed commit: %v", err)
	}
	if e.Current() != 3 || e.HasOrderID(act2.Order.ID) {
		t.Fatal("a failed commit changed the fold")
	}
	if _, err := e.Accept(r.c, act2, t0, commit); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{1: "home", 2: "embassy-north", 3: "home", 4: "embassy-north"}
	for ep, site := range want {
		if w, ok := e.WriterAt(ep); !ok || w != site {
			t.Errorf("epoch %d: writer %q, want %s", ep, w, site)
		}
	}
	if rv := e.Revoked(); len(rv) != 1 || rv[0] != "embassy-south" {
		t.Errorf("revoked %v", rv)
	}

	// Replication rebuilds the same fold from the ledger's payloads.
	f, _ := continuity.NewEpochs(r.c)
	for _, b := range ledger {
		so, err := continuity.ParseSignedOrder(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Apply(&so.Order); err != nil {
			t.Fatal(err)
		}
	}
	for ep := uint64(1); ep <= 3; ep++ {
		a, _ := e.WriterAt(ep)
		b, _ := f.WriterAt(ep)
		if a != b {
			t.Errorf("epoch %d: %s live, %s from the ledger", ep, a, b)
		}
	}
	// The ledger cannot fold an order twice or out of epoch.
	so, _ := continuity.ParseSignedOrder(ledger[0])
	if err := f.Apply(&so.Order); !errors.Is(err, continuity.ErrReplayed) {
		t.Errorf("apply twice: %v", err)
	}
	late := r.order(t, r.c, continuity.Order{Action: charter.ActionFailback, Epoch: 9, Site: "home"})
	if err := f.Apply(late); !errors.Is(err, continuity.ErrEpoch) {
		t.Errorf("apply out of epoch: %v", err)
	}
}

// TestEpochsAcceptOnce: the same order submitted concurrently is accepted
// exactly once.
func TestEpochsAcceptOnce(t *testing.T) {
	r := demo(t)
	e, _ := continuity.NewEpochs(r.c)
	so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior", "cio")
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.Accept(r.c, so, t0.Add(time.Minute), nil); err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if accepted != 1 || e.Current() != 2 {
		t.Fatalf("accepted %d times, epoch %d", accepted, e.Current())
	}
	st := e.State()
	if st.Epoch != 2 || st.Writer != "embassy-north" || !st.History.HasOrderID(so.Order.ID) || !st.History.HasNonce(so.Order.Nonce) {
		t.Fatalf("state %+v", st)
	}
}
