package replica_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chancery-gov/chancery/ledger"
)

// TestReceiverRefusesOverDamagedRightEdge is issue 11, item 2, at an
// embassy: a byte flipped in the mirror's stored partial entry bundle (the
// right edge the next batch extends). The receiver must refuse the next
// batch and give no receipt until the bundle is repaired. (Before the fix
// it accepted the batch and cosigned.)
func TestReceiverRefusesOverDamagedRightEdge(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	for i := range 8 {
		f.mustPut("business", fmt.Sprintf("B-%d", i), nil)
	}
	signed, cp := f.published()
	r, dir := f.freshReceiver(north, 1<<30)
	ctx := context.Background()
	if rc, err := r.Accept(ctx, f.batch(north, 0, cp.Size, signed, false)); err != nil || rc == nil {
		t.Fatalf("first batch: receipt %v, %v", rc != nil, err)
	}
	if _, _, err := r.Log().WaitPublished(ctx, cp.Size); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		f.mustPut("business", fmt.Sprintf("C-%d", i), nil)
	}
	signed2, cp2 := f.published()
	next := f.batch(north, cp.Size, cp2.Size, signed2, false)

	if cp.Size >= ledger.TileWidth {
		t.Fatalf("fixture ledger of %d entries: the right edge is not in bundle 0", cp.Size)
	}
	path := filepath.Join(dir, "ledger", filepath.FromSlash(ledger.EntriesPath(0, int(cp.Size))))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := 2 + int(binary.BigEndian.Uint16(b)) + 2 + ledger.EntryHeaderSize + 3 // inside entry 1
	b[at] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	rc, err := r.Accept(ctx, next)
	var de *ledger.DamageError
	if rc != nil || !errors.As(err, &de) || de.Index != 1 || de.File != path {
		t.Fatalf("batch over a damaged right edge: receipt %v, err %v; want a refusal naming %s entry 1", rc != nil, err, path)
	}
	if got := r.Log().MirrorSize(); got != cp.Size {
		t.Fatalf("the mirror took the batch: size %d, was %d", got, cp.Size)
	}
	if st, err := r.State(ctx); err == nil || !errors.Is(err, ledger.ErrDamaged) {
		t.Fatalf("state over a damaged right edge: %+v, %v; want no receipt", st, err)
	}

	// Repaired (here: the byte put back), the batch is taken and receipted.
	b[at] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if rc, err := r.Accept(ctx, next); err != nil || rc == nil {
		t.Fatalf("batch after repair: receipt %v, %v", rc != nil, err)
	}
}
