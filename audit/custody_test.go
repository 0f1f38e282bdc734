package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// foundState founds the Demo Republic in a new directory.
func foundState(t *testing.T) (*charter.Charter, string, keyfile.Protector) {
	t.Helper()
	dir := t.TempDir()
	p := keyfile.Protector{Passphrase: []byte("audit test passphrase"), WorkFactor: 10}
	c, err := found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: p})
	if err != nil {
		t.Fatal(err)
	}
	return c, dir, p
}

// TestVerifyChecksCustodyAnchor: a founded ledger's custody event is
// reported and matches the package the charter pins; a later custody
// event naming another package (a swapped split) fails the audit.
func TestVerifyChecksCustodyAnchor(t *testing.T) {
	ctx := context.Background()
	c, dir, p := foundState(t)
	l := state.Layout{Dir: dir}
	v, err := verify(t, l.Ledger("home"), "")
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := seal.ReadCustodyPackageFile(l.Custody())
	if err != nil {
		t.Fatal(err)
	}
	cu := v.Custody
	if cu == nil || !cu.Pinned || !cu.Anchored || len(cu.Events) != 1 || cu.Events[0].Index != 1 || cu.Events[0].Package != pkg.PackageID() || cu.Events[0].Commitment != pkg.RootCommitment() {
		t.Fatalf("custody report %+v", cu)
	}

	// Another split anchored after it, which the charter does not pin.
	log, err := state.OpenLedger(ctx, l, c, "home", p, ledger.Options{CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := seal.KeyEvent{Kind: seal.KeyCustody, Guest: c.Guest.ID, KeyID: [32]byte{1}, Commitment: pkg.RootCommitment()}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, ledger.Entry{Type: ledger.TypeKeyEvent, Epoch: 1, Time: time.Now(), Payload: ev}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := log.WaitPublished(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, l.Ledger("home"), ""); !errors.Is(err, audit.ErrCustodyMismatch) {
		t.Fatalf("ledger anchoring an unpinned package: %v, want ErrCustodyMismatch", err)
	}
}
