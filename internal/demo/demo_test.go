package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRunTellsTheStory runs the demo small, in a fresh temporary state, and
// checks what it reports against what each step must have done.
func TestRunTellsTheStory(t *testing.T) {
	var out bytes.Buffer
	rep, err := Run(context.Background(), Options{Persons: 120, DeedPersons: 12, Updates: 40, Appenders: 8, WorkFactor: 10}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	switch {
	case rep.Imported < 120:
		t.Errorf("imported %d records for 120 persons", rep.Imported)
	case rep.Attachments == 0:
		t.Error("no deed was attached: the blob store went untested")
	case rep.PlaintextHits != 0:
		t.Errorf("%d plaintext hits at rest", rep.PlaintextHits)
	case rep.ScannedBytes == 0:
		t.Error("the plaintext search read nothing")
	case rep.ProofsChecked != 20:
		t.Errorf("%d proofs checked", rep.ProofsChecked)
	case rep.Entries != rep.CheckpointSize || rep.Entries < uint64(rep.Imported+40):
		t.Errorf("ledger holds %d entries (checkpoint %d) after %d imports and 40 updates", rep.Entries, rep.CheckpointSize, rep.Imported)
	}
	for _, step := range []string{"Founding the Demo Republic", "loads its registers", "scanned deeds", "address changes", "looks up national id", "sealed bytes only", "auditor verifies"} {
		if !strings.Contains(out.String(), step) {
			t.Errorf("the story lacks %q", step)
		}
	}
}
