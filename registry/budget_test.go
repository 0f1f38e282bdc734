package registry

import (
	"context"
	"fmt"
	"testing"
)

// TestNonceBudgetSurvivesRestart: a site that restarts counts the records
// each generation sealed before (from the ledger), so the nonce budget is
// not reset by a restart.
func TestNonceBudgetSurvivesRestart(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	for i := range 5 {
		id := fmt.Sprintf("DR-%d", i)
		if _, err := fx.reg.Put(ctx, "population", id, person(id, "Berg"), nil); err != nil {
			t.Fatal(err)
		}
	}
	fx.reopen(t)
	if got, _ := fx.keys.Registry("population").SealCount(1); got != 5 {
		t.Fatalf("after restart generation 1 counts %d seals, want 5", got)
	}
}
