package site_test

// tenant.submit's guards the mutation rounds left open (see
// docs/testing.md, "Guards and mutation testing").

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

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
