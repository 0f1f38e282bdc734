package guest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

// The tests here hold the rules that one writer path gives every site:
// what an active embassy does is what a home does, and the reverse.

// TestWriterRefusesActivationOfAnother: only the activated site appends
// its activation, after fencing the other embassies. A writer — here an
// active embassy, as the home always did — refuses one naming another
// site and appends nothing.
func TestWriterRefusesActivationOfAnother(t *testing.T) {
	f := startGuestFixture(t)
	so := f.order(t, continuity.Order{Action: charter.ActionActivate, Site: "embassy-south", Access: continuity.AccessReadWrite,
		Epoch: 3, Reason: "writer test"}, "min-interior", "cio")
	before := f.g.Ledger().Size()
	_, _, err := f.g.Submit(context.Background(), so, false)
	if !errors.Is(err, ErrNotWriter) || !strings.Contains(err.Error(), "submitted to the site it activates (embassy-south)") {
		t.Fatalf("activation of embassy-south submitted to the writer embassy-north: %v, want a refusal naming embassy-south", err)
	}
	if after := f.g.Ledger().Size(); after != before {
		t.Fatalf("the refused order changed the ledger: %d entries, then %d", before, after)
	}
	if cur := f.g.Epochs().Current(); cur != 2 {
		t.Fatalf("epoch %d after a refused activation, want 2", cur)
	}
}
