package continuity_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

// TestEpochsApplyRefusesMalformed: folding an order in from the ledger
// checks what the fold needs, and the order's own well-formedness: a nil
// order or a malformed one (here: expiring before it is valid) is refused
// and leaves the epochs as they were. (Found by mutation testing.)
func TestEpochsApplyRefusesMalformed(t *testing.T) {
	r := demo(t)
	e, err := continuity.NewEpochs(r.c)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(nil); err == nil {
		t.Fatal("folded in no order")
	}
	o := r.order(t, r.c, activateNorth)
	o.Expires = o.NotBefore.Add(-time.Minute)
	if err := e.Apply(o); err == nil || !strings.Contains(err.Error(), "expires") {
		t.Fatalf("malformed activation folded in: %v", err)
	}
	if e.Current() != 1 || e.HasOrderID(o.ID) {
		t.Fatalf("a refused order changed the epochs: current %d", e.Current())
	}
	if err := e.Apply(r.order(t, r.c, activateNorth)); err != nil || e.Current() != 2 {
		t.Fatalf("well-formed activation: %v, current %d", err, e.Current())
	}
}

// TestUnsealRefusesOversizedShare: a sealed share larger than any real one
// is refused before it is opened, with the limit named; one of exactly the
// limit is opened (and fails as the garbage it is). (Found by mutation
// testing.)
func TestUnsealRefusesOversizedShare(t *testing.T) {
	_, s := guardSession(t)
	const limit = 64 << 10
	if _, _, err := s.Submit(bytes.Repeat([]byte{'x'}, limit+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("share of %d bytes: %v, want a refusal naming the limit", limit+1, err)
	}
	if _, _, err := s.Submit(bytes.Repeat([]byte{'x'}, limit)); err == nil || strings.Contains(err.Error(), "at most") {
		t.Fatalf("share of %d bytes: %v, want it opened and refused as unreadable", limit, err)
	}
	if have, _, _ := s.Status(); have != 0 {
		t.Fatalf("session holds %d shares after refusals", have)
	}
}

// TestUnsealCombineRefusesExpiredSession: a session that expired holding
// the threshold of shares does not rebuild the root: its time bounds how
// long the shares may be used, not only how long they may be submitted.
// (Found by mutation testing.)
func TestUnsealCombineRefusesExpiredSession(t *testing.T) {
	c, s := guardSession(t)
	for _, i := range []int{0, 1, 2} {
		if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[i], s.Recipient())); err != nil {
			t.Fatal(err)
		}
	}
	s.SetClock(func() time.Time { return s.Expires().Add(time.Second) })
	if root, err := s.Combine(); err == nil {
		root.Wipe()
		t.Fatal("an expired session rebuilt the root")
	}
}

// TestCheckRefusesNothing: no charter or no order is a refusal, not a
// crash. (Found by mutation testing.)
func TestCheckRefusesNothing(t *testing.T) {
	r := demo(t)
	so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior", "cio")
	if _, _, err := continuity.Check(nil, so, t0); err == nil {
		t.Error("checked an order against no charter")
	}
	if _, _, err := continuity.Check(r.c, nil, t0); err == nil {
		t.Error("checked no order")
	}
	if _, _, err := continuity.Check(r.c, so, t0); err != nil {
		t.Errorf("the order itself: %v", err)
	}
}

// guardSession is an unseal session of the Demo Republic's custody
// package, closed when the test ends.
func guardSession(t *testing.T) (custody, *continuity.UnsealSession) {
	t.Helper()
	c := demo(t).custody(t)
	s, err := continuity.NewUnsealSession(c.pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return c, s
}

// TestVerifyLastEpochAndDrillPlacement: no order raises the epoch past
// the last there is; a drill names only registries the charter places at
// the site it drills. (Found by mutation testing.)
func TestVerifyLastEpochAndDrillPlacement(t *testing.T) {
	r := demo(t)
	last := continuity.State{Epoch: math.MaxUint64, Writer: "embassy-north", History: history{}}
	act := r.order(t, r.c, continuity.Order{Action: charter.ActionActivate, Epoch: math.MaxUint64, Site: "embassy-south", Access: continuity.AccessReadWrite})
	if _, err := continuity.Verify(r.c, r.sign(t, act, "min-interior", "cio"), last, t0); !errors.Is(err, continuity.ErrEpoch) {
		t.Errorf("activation past the last epoch: %v, want ErrEpoch", err)
	}
	st := continuity.State{Epoch: 1, Writer: "home", History: history{}}
	// land is placed at home and embassy-north only.
	for site, ok := range map[string]bool{"embassy-north": true, "embassy-south": false} {
		// NewOrder refuses the misplaced drill: made for north, then
		// retargeted, as a hand-written order could be.
		d := r.order(t, r.c, continuity.Order{Action: charter.ActionDrill, Epoch: 1, Site: "embassy-north", Registries: []string{"land"}})
		d.Site = site
		_, err := continuity.Verify(r.c, r.sign(t, d, "cio"), st, t0)
		if ok && err != nil || !ok && err == nil {
			t.Errorf("drill of land at %s: %v", site, err)
		}
	}
}
