package system_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestActivationFencesOtherEmbassies: the home, cut off from north, takes
// quorum writes that south alone cosigns (population needs one site).
// Then it is cut off from south as well, and keeps running. The officials
// activate north first: north shows the order to south, which fences
// itself and reports that it holds more, so north refuses, naming south.
// South, killed and restarted, keeps its fence. When the home gets back
// in touch with south, south refuses its batches
// and reports the fence: the home fences itself and acknowledges no more
// quorum writes. The officials activate south, and every quorum write the
// home acknowledged reads back there.
func TestActivationFencesOtherEmbassies(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	s := newSched(t, testnet.BuildChancery(t), 4242, schedOptions{hazards: map[string]bool{}, rounds: 1})
	s.burst(schedHome, time.Second, 2, 0.5) // both embassies hold these
	s.partition(schedHome, procNorth, "cut")
	s.burst(schedHome, 1500*time.Millisecond, 2, 1)
	s.partition(schedHome, procSouth, "cut")
	s.oldHome = true

	north, err := s.status(procNorth)
	if err != nil {
		t.Fatal(err)
	}
	south := s.waitStatus(procSouth, 20*time.Second, "south ahead of north", func(st *siteapi.ContinuityStatus) bool { return st.Size > north.Size })

	err = s.tryActivate(procNorth)
	var ae *siteapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(err.Error(), procSouth) {
		t.Fatalf("activation of north, behind south (%d < %d entries): got %v, want a 409 naming %s", north.Size, south.Size, err, procSouth)
	}
	t.Logf("north refuses: %v", err)
	if st, err := s.status(procNorth); err != nil || st.Mode != siteapi.ModeStandby || st.Epoch != 1 {
		t.Fatalf("north after refusing: %+v, %v", st, err)
	}

	// South is fenced, durably: killed and restarted, it still is. The
	// home, back in touch, must fence itself and get no quorum write
	// acknowledged.
	s.kill(procSouth)
	s.restart(procSouth)
	s.heal(schedHome, procSouth)
	s.waitStatus(schedHome, 30*time.Second, "the home fenced", func(st *siteapi.ContinuityStatus) bool { return st.Mode == siteapi.ModeFenced })
	s.fenced = time.Now()
	client := s.api(schedHome)
	for i := range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		rec, err := client.Put(ctx, "population", "FENCE-"+string(rune('a'+i)), procRecord("population", "FENCE", "after"))
		cancel()
		if err == nil {
			t.Fatalf("the fenced home acknowledged a quorum write at index %d", rec.Index)
		}
	}
	if st, err := s.status(procSouth); err != nil || st.Size != south.Size {
		t.Fatalf("south took more of the old home's ledger after its fence: %+v (was %d), %v", st, south.Size, err)
	}

	s.activate(procSouth)
	api := s.api(procSouth)
	n := 0
	for _, a := range s.acks {
		if a.Reg != "population" {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		rec, err := api.Get(ctx, a.Reg, a.ID, registry.AsOf{})
		cancel()
		if err != nil {
			t.Fatalf("quorum write %s %s v%d (index %d), acknowledged by the home, at south: %v", a.Reg, a.ID, a.Version, a.Index, err)
		}
		if rec.Version < a.Version {
			t.Fatalf("%s %s at south is v%d, the home acknowledged v%d", a.Reg, a.ID, rec.Version, a.Version)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no quorum write was acknowledged: the test proves nothing")
	}
	t.Logf("%d quorum writes acknowledged by the home read back at south", n)
}
