package site_test

// tenant.submit's guards the mutation rounds left open (see
// docs/testing.md, "Guards and mutation testing").

import (
	"fmt"
	"log/slog"
	"net/http/httptest"

	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

// TestOnlyOwnActivationFencesPeers: an embassy still mirroring fences the
// other embassies only for an order activating itself. Another order
// naming it (a drill) is sent to the writer, and no embassy is asked to
// fence over it: were it, an embassy that cannot be reached would turn
// the answer into a refusal to fence.
func TestOnlyOwnActivationFencesPeers(t *testing.T) {
	clock := &guardClock{t: time.Now().UTC().Truncate(time.Second)}
	g := startGuardEmbassy(t, clock)
	cc := g.continuity()
	cc.AcceptUnfenced = false
	ctx := context.Background()
	now := clock.Now()
	drill := g.signOrder(t, continuity.Order{Action: charter.ActionDrill, Site: "embassy-north", Epoch: 1,
		NotBefore: now.Add(-time.Minute), Expires: now.Add(time.Hour), Reason: "guard test: drill at a mirror"}, "cio")
	_, err := cc.Submit(ctx, drill)
	refusedWith(t, "drill order at an embassy that mirrors", err, http.StatusConflict)
	if !strings.Contains(err.Error(), "the writer of epoch 1") {
		t.Fatalf("drill order at an embassy that mirrors: %v, want to be sent to the writer of epoch 1", err)
	}
}

// TestActivationWithEveryEmbassyFenced: an embassy activated once the
// only other embassy was revoked has none to fence, so nothing went
// unfenced and its ledger records no "activated-unfenced" notice: the
// activation order alone is appended.
func TestActivationWithEveryEmbassyFenced(t *testing.T) {
	clock := &guardClock{t: time.Now().UTC().Truncate(time.Second)}
	ctx := context.Background()
	dir := newState(t)
	// The home revokes embassy-south, then goes.
	home, err := site.Open(ctx, &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true,
		Replication: site.ReplicationConfig{Disabled: true}},
		site.Options{Now: clock.Now, Logger: slog.New(slog.DiscardHandler), Local: guest.LocalOptions{Passphrase: []byte(testPass)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(home.Handler())
	h := &guardSite{dir: dir, c: nil, clock: clock, srv: srv}
	if h.c, err = charter.ReadVerified(state.Layout{Dir: dir}.Charter()); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	revoke := h.signOrder(t, continuity.Order{Action: charter.ActionRevokeSite, Site: "embassy-south", Epoch: 1,
		NotBefore: now.Add(-time.Minute), Expires: now.Add(time.Hour), Reason: "guard test: revoke south"}, "min-interior", "cio", "registrar")
	if _, err := h.continuity().Submit(ctx, revoke); err != nil {
		t.Fatalf("revoke-site order at the home: %v", err)
	}
	srv.Close()
	if err := home.Close(); err != nil {
		t.Fatal(err)
	}

	g := startGuardEmbassyOf(t, dir, clock)
	cc := g.continuity()
	cc.AcceptUnfenced = false
	act := g.signOrder(t, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite, Epoch: 2,
		NotBefore: now.Add(-time.Minute), Expires: now.Add(time.Hour), Reason: "guard test: activate, south revoked"}, "min-interior", "cio")
	st0, err := cc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Submit(ctx, act); err != nil {
		t.Fatalf("activation with no embassy to fence: %v", err)
	}
	st1, err := cc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Size != st0.Size+1 || st1.Writer != "embassy-north" {
		t.Fatalf("after an activation that left no embassy unfenced the ledger holds %d entries written by %s, want the order alone: %d by embassy-north",
			st1.Size, st1.Writer, st0.Size+1)
	}
}

// TestFailbackHandOver: at an activated embassy (sealed: no registries
// open), an order other than a failback does not fence the writer; a
// failback refused (one of its two signatures) leaves it writing and
// active; an accepted failback fences it at once, and it takes no
// further order while it hands over.
func TestFailbackHandOver(t *testing.T) {
	clock := &guardClock{t: time.Now().UTC().Truncate(time.Second)}
	g := startGuardEmbassy(t, clock)
	cc := g.continuity()
	ctx := context.Background()
	now := clock.Now()
	order := func(o continuity.Order, officials ...string) []byte {
		o.NotBefore, o.Expires = now.Add(-time.Minute), now.Add(time.Hour)
		return g.signOrder(t, o, officials...)
	}
	if _, err := cc.Submit(ctx, order(continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite, Epoch: 2,
		Reason: "guard test: activate"}, "min-interior", "cio")); err != nil {
		t.Fatalf("activation: %v", err)
	}
	drills := 0
	drill := func() []byte {
		drills++
		return order(continuity.Order{Action: charter.ActionDrill, Site: "embassy-south", Epoch: 2, Reason: fmt.Sprintf("guard test: drill %d", drills)}, "cio")
	}
	active := func(what string) {
		t.Helper()
		st, err := cc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode != siteapi.ModeActive || st.Writer != "embassy-north" || st.Epoch != 2 {
			t.Fatalf("%s: embassy-north is %s, epoch %d written by %s; want active, writing epoch 2", what, st.Mode, st.Epoch, st.Writer)
		}
		if _, err := cc.Submit(ctx, drill()); err != nil {
			t.Fatalf("%s: a drill order at the writer: %v", what, err)
		}
	}
	if _, err := cc.Submit(ctx, drill()); err != nil {
		t.Fatalf("drill order at the writer: %v", err)
	}
	active("after a drill order")

	failback := func(officials ...string) []byte {
		return order(continuity.Order{Action: charter.ActionFailback, Site: "home", Epoch: 3, Reason: "guard test: failback"}, officials...)
	}
	_, err := cc.Submit(ctx, failback("cio"))
	refusedWith(t, "failback with one of its two signatures", err, http.StatusUnprocessableEntity)
	active("after a refused failback")

	st0, err := cc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Submit(ctx, failback("min-interior", "cio")); err != nil {
		t.Fatalf("failback: %v", err)
	}
	st, err := cc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != siteapi.ModeFenced || st.Size != st0.Size+1 {
		t.Fatalf("after an accepted failback embassy-north is %s with %d entries, want fenced with %d (the order)", st.Mode, st.Size, st0.Size+1)
	}
	// The home is not reachable here: embassy-north is still handing
	// over, and takes no order.
	_, err = cc.Submit(ctx, drill())
	refusedWith(t, "a drill order at a writer handing over", err, http.StatusConflict)
	if !strings.Contains(err.Error(), "handing over") {
		t.Fatalf("a drill order at a writer handing over: %v", err)
	}
}
