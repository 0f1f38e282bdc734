package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// TestReconcile forks a home's ledger from an active site's: both share
// the first K entries, then the home goes on writing (cut off) while the
// active site appends its own. Reconcile must report exactly the home's
// entries past K, decrypt the records among them, move the home's ledger
// aside without deleting it, and leave the active ledger untouched.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	dir := newState(t)
	l := state.Layout{Dir: dir}
	put := func(from, n int) {
		t.Helper()
		loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(testPass)})
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < from+n; i++ {
			id := fmt.Sprintf("DR-R-%03d", i)
			rec := json.RawMessage(fmt.Sprintf(`{"national_id":%q,"last_name":"Fork%d","first_name":"A"}`, id, i))
			if _, err := loc.Registries.Put(ctx, "population", id, rec, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := loc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 10)
	k := uint64(10)

	// The active site: a copy of the shared prefix that goes on in its
	// own epoch, signed with embassy-north's key.
	active := filepath.Join(t.TempDir(), "north-ledger")
	if err := copyDir(l.Ledger("home"), active); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(active, "wal", "lock"))
	nk, err := keyfile.ReadEd25519(l.Key("site-checkpoint", "embassy-north"), keyfile.Protector{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := ledger.NewLogSigner(c.Guest.Origin, nk)
	if err != nil {
		t.Fatal(err)
	}
	al, err := ledger.Open(ctx, active, ledger.Options{Origin: c.Guest.Origin, Signer: signer, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := al.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: 2, Time: time.Now(), Payload: []byte(`{"kind":"active"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := al.WaitPublished(ctx, k+1); err != nil {
		t.Fatal(err)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	activeCp, _ := os.ReadFile(filepath.Join(active, ledger.CheckpointPath))

	put(10, 7) // the home, cut off, writes 7 more

	pass := []byte(testPass)
	root, err := seal.ReadRootKeyFile(l.RootKey(), pass)
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring(c.Guest.ID, root)
	rep, err := guest.Reconcile(ctx, guest.ReconcileOptions{StateDir: dir, Site: "home", From: active, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fork != k || rep.HomeSize != k+7 || len(rep.Entries) != 7 || rep.Decrypted != 7 {
		t.Fatalf("fork %d (want %d), home %d, %d entries, %d decrypted; want 7 and 7", rep.Fork, k, rep.HomeSize, len(rep.Entries), rep.Decrypted)
	}
	for i, e := range rep.Entries {
		if e.Index != k+uint64(i) || e.ID != fmt.Sprintf("DR-R-%03d", 10+i) {
			t.Errorf("entry %d: index %d id %q", i, e.Index, e.ID)
		}
	}
	reapply, err := os.ReadFile(rep.ReapplyFile)
	if err != nil || strings.Count(string(reapply), "\n") != 7 || !strings.Contains(string(reapply), `"Fork16"`) {
		t.Fatalf("re-apply file: %v\n%s", err, reapply)
	}
	if fi, err := os.Stat(rep.ReapplyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("re-apply file holds plaintext: mode %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(rep.MovedTo, ledger.CheckpointPath)); err != nil {
		t.Fatalf("the home's ledger was not kept aside: %v", err)
	}
	if _, err := os.Stat(l.Ledger("home")); !os.IsNotExist(err) {
		t.Fatalf("the home's ledger is still in place: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(active, ledger.CheckpointPath)); string(b) != string(activeCp) {
		t.Fatal("reconcile changed the active site's ledger")
	}
	// Nothing forked: a second run finds an empty home and does nothing.
	rep, err = guest.Reconcile(ctx, guest.ReconcileOptions{StateDir: dir, Site: "home", From: active})
	if err != nil || rep.MovedTo != "" || rep.Fork != 0 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
}
