package extract_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// TestHomeAndEmbassy: an extract issued at home in epoch 1 and one issued
// by embassy-north in epoch 2 on its own ledger, with its own checkpoint
// key, both verify with the charter alone, from every encoding.
func TestHomeAndEmbassy(t *testing.T) {
	f := newFixture(t)
	home := f.openLog(t, "home")
	before := issueOne(t, f.issuer(t, "home", home, 1, "embassy-north", "embassy-south"), 0)

	// After the disaster: the home is gone; embassy-north writes epoch 2
	// and derives the same state key from the same root.
	north := f.openLog(t, "embassy-north")
	f.signer = f.stateSigner(t)
	after := issueOne(t, f.issuer(t, "embassy-north", north, 2, "embassy-south"), 1)

	v := f.verifier(t)
	for _, tc := range []struct {
		name      string
		e         *extract.Extract
		writer    string
		epoch     uint64
		cosigners int
	}{{"home epoch 1", before, "home", 1, 2}, {"embassy epoch 2", after, "embassy-north", 2, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			text, err := offline.EncodeText(tc.e.COSE)
			if err != nil {
				t.Fatal(err)
			}
			png, err := extract.QRPNG(text)
			if err != nil {
				t.Fatal(err)
			}
			pdf, err := extract.PDF(tc.e, text, png)
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range [][]byte{tc.e.COSE, []byte(text), png, pdf} {
				msg, from, err := extract.Read(in)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !bytes.Equal(msg, tc.e.COSE) {
					t.Fatalf("%s: read back other bytes", from)
				}
				r, err := v.Verify(msg)
				if err != nil {
					t.Fatalf("%s: %v", from, err)
				}
				if r.Writer != tc.writer || r.Claims.Epoch != tc.epoch || len(r.Cosigners) != tc.cosigners || r.Claims.Site != tc.writer {
					t.Fatalf("%s: writer %s epoch %d cosigners %v site %s", from, r.Writer, r.Claims.Epoch, r.Cosigners, r.Claims.Site)
				}
				if r.Act != tc.e.Act || r.Checkpoint.Size != tc.e.Checkpoint {
					t.Fatalf("%s: act %d checkpoint %d, issued act %d checkpoint %d", from, r.Act, r.Checkpoint.Size, tc.e.Act, tc.e.Checkpoint)
				}
			}
		})
	}
}

// TestQuorumOfCosigners: a checkpoint without enough cosigners is refused,
// and the charter's services.extract.cosigners raises the count needed.
func TestQuorumOfCosigners(t *testing.T) {
	f := newFixture(t)
	home := f.openLog(t, "home")
	none := issueOne(t, f.issuer(t, "home", home, 1), 0)
	if _, err := f.verifier(t).Verify(none.COSE); err == nil || !strings.Contains(err.Error(), "cosigned by 0 sites") {
		t.Fatalf("uncosigned checkpoint: %v", err)
	}
	one := issueOne(t, f.issuer(t, "home", home, 1, "embassy-north"), 1)
	if _, err := f.verifier(t).Verify(one.COSE); err != nil {
		t.Fatal(err)
	}
	// The writer's own receipt does not count for the writer.
	self := issueOne(t, f.issuer(t, "home", home, 1, "home"), 2)
	if _, err := f.verifier(t).Verify(self.COSE); err == nil {
		t.Fatal("a checkpoint cosigned only by its writer was accepted")
	}
	if err := f.c.SetService("extract", offline.Config{Cosigners: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.verifier(t).Verify(one.COSE); err == nil || !strings.Contains(err.Error(), "requires 2") {
		t.Fatalf("one cosigner under cosigners: 2: %v", err)
	}
}

// TestKeyValidity: services.extract.keys bounds the epochs a generation
// may issue in.
func TestKeyValidity(t *testing.T) {
	f := newFixture(t)
	home := f.openLog(t, "home")
	e := issueOne(t, f.issuer(t, "home", home, 3, "embassy-north"), 0)
	if err := f.c.SetService("extract", offline.Config{Keys: []offline.KeyValidity{{Generation: 0, FromEpoch: 0, UntilEpoch: 2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.verifier(t).Verify(e.COSE); err == nil || !strings.Contains(err.Error(), "epochs 0 to 2") {
		t.Fatalf("key used after its last epoch: %v", err)
	}
}

// TestReceiptNameMatchesReplica: the verifier rebuilds the receipt
// cosigner's name without importing replica; the two must agree.
func TestReceiptNameMatchesReplica(t *testing.T) {
	f := newFixture(t)
	for _, s := range f.c.Sites {
		rv, err := replica.ReceiptVerifier(f.c, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.c.Guest.Origin + "/sites/" + s.ID; rv.Name() != want {
			t.Fatalf("replica names receipts %q, offline expects %q", rv.Name(), want)
		}
	}
}

// TestSuperseded: the online check.
func TestSuperseded(t *testing.T) {
	c := &offline.Claims{ID: "x", Registry: "population", Record: "r", Version: 2, RecordIndex: 10}
	hist := []registry.VersionInfo{{Version: 1, Index: 3}, {Version: 2, Index: 10}}
	st, err := extract.Superseded(c, hist)
	if err != nil || st.Superseded {
		t.Fatalf("current version: %+v %v", st, err)
	}
	st, err = extract.Superseded(c, append(hist, registry.VersionInfo{Version: 3, Index: 20, Deleted: true}))
	if err != nil || !st.Superseded || st.Latest.Version != 3 {
		t.Fatalf("deleted since: %+v %v", st, err)
	}
	if _, err := extract.Superseded(c, []registry.VersionInfo{{Version: 2, Index: 11}}); err == nil {
		t.Fatal("version at another ledger index accepted")
	}
}

var _ = ledger.TypeAct
var _ = context.Background
