package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/testnet"
)

// TestRunTellsTheStory runs the demo small, in a fresh temporary state, and
// checks what it reports against what each step must have done.
func TestRunTellsTheStory(t *testing.T) {
	var out bytes.Buffer
	bin := testnet.BuildChancery(t)
	rep, err := Run(context.Background(), Options{Persons: 120, DeedPersons: 12, Updates: 40, Appenders: 8, WorkFactor: 10, Binary: bin}, &out)
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
	switch {
	case rep.CatchUp == 0:
		t.Error("the embassies never caught up")
	case rep.RTO <= 0:
		t.Error("no RTO measured: the embassy served no read after unsealing")
	case rep.Epochs != 3:
		t.Errorf("epoch %d after failback, want 3 (home, embassy-north, home)", rep.Epochs)
	case rep.FinalSize < rep.Entries+50:
		t.Errorf("home holds %d entries after failback, fewer than the %d before the disaster plus the 50 written", rep.FinalSize, rep.Entries)
	case rep.ActiveSite != "home" || rep.Front != nil:
		t.Errorf("at the end: active site %q, issuer front %v (only with Keep)", rep.ActiveSite, rep.Front)
	}
	for _, step := range []string{"Founding the Demo Republic", "loads its registers", "scanned deeds", "address changes", "looks up national id", "sealed bytes only", "auditor verifies",
		"Two embassies open", "Disaster", "activation order", "custodians unseal", "serves the state's operational core", "pensions register", "through the register-birth procedure", "opens a payment run", "pensions.pain001.xml", "embassy-south (standby) serves it", "home is rebuilt", "Failback", "no record lost",
		"signs her in with the eID at home", "dial", "refused there: 401 invalid_token", "eID sign-in at embassy-north", "passkey sign-in at embassy-north",
		"data tracker at embassy-north lists", "reads her tracker over the signed API", "tax office's reads and the auditor's at embassy-north are there",
		"citizen portal        https://id.demo-republic.example/portal/", "officials' desk       http://", "continuity dashboard  http://", "`chancery demo --keep` leaves them running"} {
		if !strings.Contains(out.String(), step) {
			t.Errorf("the story lacks %q", step)
		}
	}
}

// TestRunOnAGivenDir runs the demo on a state given by a relative path,
// as "chancery init" suggests it, and then refuses to run it again on
// that state, which now holds records, unless forced: the story destroys
// the home and revokes a site.
func TestRunOnAGivenDir(t *testing.T) {
	bin := testnet.BuildChancery(t)
	t.Chdir(t.TempDir())
	opts := Options{Dir: "dr", Passphrase: []byte("demo test passphrase"), Persons: 60, DeedPersons: 2, Updates: 10, Appenders: 4, WorkFactor: 10, Binary: bin}
	var out bytes.Buffer
	if _, err := Run(context.Background(), opts, &out); err != nil {
		t.Fatalf("relative --dir: %v\n%s", err, out.String())
	}
	out.Reset()
	_, err := Run(context.Background(), opts, &out)
	if err == nil || !strings.Contains(err.Error(), "already holds") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second run on a state with records: err %v, want a refusal naming --force", err)
	}
	opts.Force, opts.Binary = true, ""
	if _, err := Run(context.Background(), opts, &out); err != nil {
		t.Fatalf("--force: %v\n%s", err, out.String())
	}
}
