package registry

import (
	"context"
	"fmt"
	"reflect"
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

// TestCloseWipesChunking: the gear table the registries derived from the
// keys is key material, zeroed by Close.
func TestCloseWipesChunking(t *testing.T) {
	fx := newFixture(t)
	c := fx.reg.regs["land"].chunking
	if c == nil {
		t.Fatal("no chunking derived")
	}
	gear := reflect.ValueOf(c).Elem().FieldByName("gear")
	nonzero := func() int {
		n := 0
		for i := range gear.Len() {
			if gear.Index(i).Uint() != 0 {
				n++
			}
		}
		return n
	}
	if nonzero() == 0 {
		t.Fatal("gear table empty before Close")
	}
	fx.close(t)
	if n := nonzero(); n != 0 {
		t.Fatalf("%d gear entries survive Close", n)
	}
}
