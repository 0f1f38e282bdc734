package guest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// TestHomeSealCountSurvivesRestart: the seals a home makes under a site's
// outer key are counted from the file it persists ahead of use, so a key
// opened again (a restart) starts from at least what was sealed, at most
// one block more; a count for another key, a damaged one or none is
// unknown (the caller rotates).
func TestHomeSealCountSurvivesRestart(t *testing.T) {
	l := state.Layout{Dir: t.TempDir()}
	if err := os.MkdirAll(l.Keys(), 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring("demo-republic", root)
	root.Wipe()
	defer keys.Wipe()
	k, err := seal.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := keys.WrapSiteKey("embassy-north", k)
	if err != nil {
		t.Fatal(err)
	}
	if known, err := armSealCount(l, "embassy-north", k); err != nil || known {
		t.Fatalf("no count file: known %v, %v", known, err)
	}
	if err := writeSealCount(l, "embassy-north", k.ID(), 0, 0); err != nil {
		t.Fatal(err)
	}
	k2, _ := keys.UnwrapSiteKey("embassy-north", wrapped)
	if known, err := armSealCount(l, "embassy-north", k2); err != nil || !known {
		t.Fatalf("a count of 0 on record: known %v, %v", known, err)
	}
	const sealed = 100
	for range sealed {
		if _, err := k2.Seal([]byte("ad"), []byte("chunk")); err != nil {
			t.Fatal(err)
		}
	}
	k2.Wipe()
	// Restart: the same key, opened again.
	k3, _ := keys.UnwrapSiteKey("embassy-north", wrapped)
	defer k3.Wipe()
	if known, err := armSealCount(l, "embassy-north", k3); err != nil || !known {
		t.Fatalf("after a restart: known %v, %v", known, err)
	}
	used := seal.DefaultSealLimit - k3.Remaining()
	if used < sealed || used > sealed+sealCountBlock {
		t.Fatalf("after %d seals and a restart the key counts %d used, want %d..%d", sealed, used, sealed, sealed+sealCountBlock)
	}
	// Another key's count, or a damaged file, is no count for this one.
	other, _ := seal.NewSiteKey()
	defer other.Wipe()
	if known, _ := armSealCount(l, "embassy-north", other); known {
		t.Fatal("a count recorded for another key was taken")
	}
	if err := os.WriteFile(filepath.Join(l.Keys(), sealCountFile("embassy-north")), []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	k4, _ := keys.UnwrapSiteKey("embassy-north", wrapped)
	defer k4.Wipe()
	if known, _ := armSealCount(l, "embassy-north", k4); known {
		t.Fatal("a damaged count file was taken as a count")
	}
}

// TestHomeRotationCutBeforeKeyStore: a home's rotation of a standby
// site's key cut after its event reached the ledger and before the key
// store got the new copy is finished at the next unseal: the home adopts
// the ledger's generation from its escrow (which holds every generation,
// newest first), with a known count of 0, and the escrow keeps the old one.
func TestHomeRotationCutBeforeKeyStore(t *testing.T) {
	ctx := context.Background()
	f := startRotationFixture(t, Options{}, 1, 1<<10)
	home := state.Layout{Dir: f.dir}
	lg := f.g.Ledger()
	hk, err := loadHomeOuterKeys(f.g.Charter(), home, f.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hk.wipe()
	cur, _ := hk.get("embassy-south")
	oldID := cur.ID()
	storeFile := filepath.Join(home.Keys(), OuterKeyFile("embassy-south"))
	oldCopy := mustRead(t, storeFile)
	next, err := rotateStandbyKey(ctx, home, f.keys, lg, f.g.ID(), "embassy-south", cur, [32]byte{}, func(ctx context.Context, ev seal.KeyEvent) error {
		p, err := ev.MarshalBinary()
		if err != nil {
			return err
		}
		i, err := lg.Append(ctx, ledger.Entry{Type: ledger.TypeKeyEvent, Epoch: 2, Time: time.Now(), Payload: p})
		if err == nil {
			_, _, err = lg.WaitPublished(ctx, i+1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	newID := next.ID()
	next.Wipe()
	// The cut: the key store still holds the old generation.
	if err := os.WriteFile(storeFile, oldCopy, 0o600); err != nil {
		t.Fatal(err)
	}
	hk2, err := loadHomeOuterKeys(f.g.Charter(), home, f.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hk2.wipe()
	if err := adoptRotatedOuterKeys(ctx, lg, f.g.ID(), home, f.keys, hk2, f.g.logger); err != nil {
		t.Fatal(err)
	}
	k, ok := hk2.get("embassy-south")
	if !ok || k.ID() != newID {
		t.Fatal("the home did not adopt the generation the ledger names from its escrow")
	}
	if known, err := armSealCount(home, "embassy-south", k); err != nil || !known || k.Remaining() != seal.DefaultSealLimit {
		t.Fatalf("the adopted generation's count: known %v, remaining %d, %v", known, k.Remaining(), err)
	}
	ks, err := f.keys.UnwrapSiteKeys("embassy-south", mustRead(t, filepath.Join(EscrowDir(home), OuterKeyFile("embassy-south"))))
	if err != nil || len(ks) != 2 || ks[0].ID() != newID || ks[1].ID() != oldID {
		t.Fatalf("the escrow does not hold both generations, newest first: %v, %d", err, len(ks))
	}
	for _, k := range ks {
		k.Wipe()
	}
	ev, ok, err := lastSiteKeyEvent(ctx, lg, f.g.ID(), "embassy-south")
	if err != nil || !ok || ev.Generation != 1 || ev.KeyID != newID {
		t.Fatalf("the ledger's event: %+v, %v, %v", ev, ok, err)
	}
}
