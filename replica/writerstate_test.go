package replica_test

import (
	"context"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// TestWriterStateHasNoReceipt: a site that writes its own ledger reports
// where it stands, but gives no receipt: its tree is its own, possibly a
// fork of the writer's, and a writer counting it as a receipt would take
// entries for held that the site never received.
func TestWriterStateHasNoReceipt(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	if _, err := f.home.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: 1, Time: time.Now(), Payload: []byte(`{"kind":"test"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.home.WaitPublished(ctx, 1); err != nil {
		t.Fatal(err)
	}
	blobs, err := storefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := f.receiverAt("home", f.home, blobs, 0)
	st, err := r.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != 1 || st.Epoch != 1 {
		t.Errorf("state of the writer: size %d epoch %d, want 1 and 1", st.Size, st.Epoch)
	}
	if len(st.Receipt) != 0 {
		t.Fatalf("a writer's state carries a receipt of its own tree: %q", st.Receipt)
	}
}
