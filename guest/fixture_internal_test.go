package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

const fixturePass = "guest test passphrase"

// guestFixture is a Demo Republic whose embassy-north guest was activated
// (read-write, the home gone) and unsealed with three custodians' shares,
// in this process and without HTTP: no other site answers it.
type guestFixture struct {
	dir string // the founded state (the home's)
	g   *Guest
}

func (f *guestFixture) key(t *testing.T, id string) []byte {
	t.Helper()
	k, err := keyfile.ReadEd25519(state.Layout{Dir: f.dir}.Key("official", id), keyfile.Protector{Passphrase: []byte(fixturePass)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// order issues an order under the guest's charter signed by officials.
func (f *guestFixture) order(t *testing.T, o continuity.Order, officials ...string) *continuity.SignedOrder {
	t.Helper()
	o.NotBefore, o.Expires = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	no, err := continuity.NewOrder(f.g.Charter(), o)
	if err != nil {
		t.Fatal(err)
	}
	so := &continuity.SignedOrder{Order: *no}
	for _, id := range officials {
		if err := continuity.Sign(so, id, f.key(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	return so
}

func startGuestFixture(t *testing.T) *guestFixture { return startGuestFixtureWith(t, nil) }

// startGuestFixtureWith is startGuestFixture with Options.Writer set.
func startGuestFixtureWith(t *testing.T, writer func(context.Context, *Local) io.Closer) *guestFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	pass := []byte(fixturePass)
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	loc, err := OpenLocal(ctx, LocalOptions{StateDir: dir, Site: "home", Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("DR-GUEST-%d", i)
		if _, err := loc.Registries.Put(ctx, "population", id, json.RawMessage(fmt.Sprintf(`{"national_id":%q,"last_name":"Guest","first_name":"Ada"}`, id)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := loc.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "north")
	statetest.Mirror(t, l.Ledger("home"), filepath.Join(GuestDir(data, c.Guest.ID), "ledger"))
	g, err := Open(ctx, Config{Charter: l.Charter(), Site: "embassy-north", CheckpointKey: l.Key("site-checkpoint", "embassy-north"),
		Custody: l.Custody(), DataDir: data}, Options{Passphrase: pass, Ledger: ledger.Options{CheckpointInterval: time.Millisecond}, Writer: writer})
	if err != nil {
		t.Fatal(err)
	}
	f := &guestFixture{dir: dir, g: g}
	t.Cleanup(func() {
		if err := g.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
			t.Error(err)
		}
	})
	act := f.order(t, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite, Epoch: 2,
		Reason: "guest fixture"}, "min-interior", "cio")
	if _, _, err := g.Submit(ctx, act, true); err != nil {
		t.Fatal(err)
	}
	sess, err := g.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	for i, sealed := range statetest.SealedShares(t, dir, pass, sess.RecipientStatement, "cust-parliament", "cust-court", "cust-bank") {
		if _, err := g.AddShare(ctx, sess.Session, sealed); err != nil {
			t.Fatalf("share %d: %v", i+1, err)
		}
	}
	if g.Served() == nil {
		t.Fatal("embassy-north is not unsealed")
	}
	return f
}

// TestOpenRefusesUnpinnedCustody: an embassy given a custody package the
// charter does not pin (a split of another root, for the same custodians)
// refuses to open, before any share could be combined from it.
func TestOpenRefusesUnpinnedCustody(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pass := []byte(fixturePass)
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	other, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	var cs []seal.Custodian
	for _, m := range c.Custodians.Members {
		cs = append(cs, seal.Custodian{ID: m.ID, Recipient: m.Recipient})
	}
	pkg, err := seal.Split(c.Guest.ID, other, c.Custodians.Threshold, cs)
	if err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(t.TempDir(), "custody.pkg")
	if err := pkg.WriteFile(forged); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "north")
	statetest.Mirror(t, l.Ledger("home"), filepath.Join(GuestDir(data, c.Guest.ID), "ledger"))
	open := func(custody string) error {
		g, err := Open(ctx, Config{Charter: l.Charter(), Site: "embassy-north", CheckpointKey: l.Key("site-checkpoint", "embassy-north"),
			Custody: custody, DataDir: data}, Options{Passphrase: pass})
		if err == nil {
			g.Close()
		}
		return err
	}
	if err := open(forged); !errors.Is(err, continuity.ErrCustodyNotPinned) {
		t.Fatalf("open with an unpinned custody package: %v, want ErrCustodyNotPinned", err)
	}
	if err := open(l.Custody()); err != nil {
		t.Fatalf("open with the pinned package: %v", err)
	}
}
