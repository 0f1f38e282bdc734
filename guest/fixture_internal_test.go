package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	"github.com/chancery-gov/chancery/siteapi"
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

func startGuestFixture(t *testing.T) *guestFixture {
	t.Helper()
	return startGuestFixtureWith(t, Options{}, false)
}

// startGuestFixtureWith is startGuestFixture with options for the embassy
// (Passphrase and Ledger set here) and, with ownKey, the embassy's outer
// key handed over from the home's escrow before the last share.
func startGuestFixtureWith(t *testing.T, opts Options, ownKey bool) *guestFixture {
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
	if ownKey {
		// The home makes the embassies' outer keys, and their escrow
		// copies, the first time it unseals.
		root, err := seal.ReadRootKeyFile(l.RootKey(), pass)
		if err != nil {
			t.Fatal(err)
		}
		keys := seal.NewKeyring(c.Guest.ID, root)
		root.Wipe()
		ok, err := loadHomeOuterKeys(c, l, keys, nil)
		keys.Wipe()
		if err != nil {
			t.Fatal(err)
		}
		ok.wipe()
	}
	data := filepath.Join(t.TempDir(), "north")
	statetest.Mirror(t, l.Ledger("home"), filepath.Join(GuestDir(data, c.Guest.ID), "ledger"))
	opts.Passphrase, opts.Ledger = pass, ledger.Options{CheckpointInterval: time.Millisecond}
	g, err := Open(ctx, Config{Charter: l.Charter(), Site: "embassy-north", CheckpointKey: l.Key("site-checkpoint", "embassy-north"),
		Custody: l.Custody(), DataDir: data}, opts)
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
	f.unseal(t, sess, ownKey)
	return f
}

// unseal hands the custodians' shares (and, with ownKey, embassy-north's
// wrapped outer key from the home's escrow) to an open session.
func (f *guestFixture) unseal(t *testing.T, sess *siteapi.UnsealResponse, ownKey bool) {
	t.Helper()
	if err := f.unsealErr(t, sess, ownKey); err != nil {
		t.Fatal(err)
	}
	if f.g.Served() == nil {
		t.Fatal("embassy-north is not unsealed")
	}
}

// unsealErr is unseal returning the error of the last share.
func (f *guestFixture) unsealErr(t *testing.T, sess *siteapi.UnsealResponse, ownKey bool) error {
	t.Helper()
	ctx := context.Background()
	if ownKey {
		wrapped, err := os.ReadFile(filepath.Join(EscrowDir(state.Layout{Dir: f.dir}), OuterKeyFile("embassy-north")))
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := continuity.VerifyRecipient(f.g.Charter(), f.g.custody, sess.RecipientStatement, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := continuity.SealSiteKey(st, "embassy-north", wrapped)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.g.SubmitSiteKey(sess.Session, "embassy-north", sealed); err != nil {
			t.Fatal(err)
		}
	}
	for i, sealed := range statetest.SealedShares(t, f.dir, []byte(fixturePass), sess.RecipientStatement, "cust-parliament", "cust-court", "cust-bank") {
		if _, err := f.g.AddShare(ctx, sess.Session, sealed); err != nil {
			return fmt.Errorf("share %d: %w", i+1, err)
		}
	}
	return nil
}
