package site

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestFailbackFencesWrites: at an activated, unsealed embassy a failback
// refused (one of its two signatures) leaves the officials' API writing;
// an accepted one fences writes as it is taken — by the order itself, not
// by the hand-over that follows it, which is held back here — and is
// written in the epoch the embassy wrote, the old one.
func TestFailbackFencesWrites(t *testing.T) {
	f := startAccessFixture(t)
	ctx := context.Background()
	l := state.Layout{Dir: f.dir}
	failback := func(officials ...string) *continuity.SignedOrder {
		o, err := continuity.NewOrder(f.tn.charter, continuity.Order{Action: charter.ActionFailback, Site: "home", Epoch: 3,
			NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "failback fence test"})
		if err != nil {
			t.Fatal(err)
		}
		so := &continuity.SignedOrder{Order: *o}
		for _, id := range officials {
			if err := continuity.Sign(so, id, accessKey(t, l, id)); err != nil {
				t.Fatal(err)
			}
		}
		return so
	}
	put := func(id string) error {
		_, err := f.api.Put(ctx, "business", id, json.RawMessage(`{"registration_no":"`+id+`","name":"Failback Trading"}`))
		return err
	}
	if _, _, err := f.tn.submit(ctx, failback("cio"), false); err == nil {
		t.Fatal("failback with one of its two signatures taken")
	}
	if err := put("BR-FAILBACK-1"); err != nil {
		t.Fatalf("a write after a refused failback: %v", err)
	}
	if m := f.tn.currentMode(); m != siteapi.ModeActive {
		t.Fatalf("after a refused failback embassy-north is %s, want active", m)
	}

	// Hold back the hand-over the accepted order starts.
	f.tn.workMu.Lock()
	f.tn.closing = true
	f.tn.workMu.Unlock()
	_, idx, err := f.tn.submit(ctx, failback("min-interior", "cio"), false)
	if err != nil {
		t.Fatalf("failback: %v", err)
	}
	if m := f.tn.currentMode(); m != siteapi.ModeFenced {
		t.Fatalf("after an accepted failback embassy-north is %s, want fenced", m)
	}
	var ae *siteapi.APIError
	if err := put("BR-FAILBACK-2"); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("a write after an accepted failback: %v, want 503", err)
	}
	lg := f.tn.ledger()
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
