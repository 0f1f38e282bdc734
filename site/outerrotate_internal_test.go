package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store"
)

// TestHomeRotatesStandbyOuterKey: a home whose threshold is tiny ships
// attachments to a real embassy-north over loopback and rotates north's
// outer key between shipments, shipping later packs under each new
// generation; the rotations are in the ledger, the home's key store and
// count follow the newest generation and its escrow holds every one. A
// home restarted after a rotation ships under the same generation. Then
// north is activated with the home's escrow file handed over: every
// record and attachment reads back, and the scrub with every generation
// is clean (without the retained generations it is not: north holds
// packs of several).
func TestHomeRotatesStandbyOuterKey(t *testing.T) {
	if testing.Short() && !testnet.Race {
		t.Skip("two in-process sites")
	}
	t.Setenv(keyfile.EnvPassphrase, fillPass)
	ctx := context.Background()
	dir := t.TempDir()
	pass := []byte(fillPass)
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	gid := c.Guest.ID

	nln := listenLoopback(t)
	north, err := Open(ctx, &Config{Site: "embassy-north", Listen: nln.Addr().String(), InsecureLoopback: true, DataDir: filepath.Join(t.TempDir(), "north"),
		Guests: []GuestConfig{{Charter: l.Charter(), CheckpointKey: l.Key("site-checkpoint", "embassy-north"), Custody: l.Custody()}}},
		Options{Logger: logger.With("test_site", "embassy-north"), Local: guest.LocalOptions{Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	serveFillSite(t, north, nln)
	northURL := "http://" + nln.Addr().String()

	officialKey := func(id string) ed25519.PrivateKey {
		t.Helper()
		k, err := keyfile.ReadEd25519(l.Key("official", id), keyfile.Protector{Passphrase: pass})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	signOrder := func(o *continuity.Order, by ...string) []byte {
		t.Helper()
		so := &continuity.SignedOrder{Order: *o}
		for _, id := range by {
			if err := continuity.Sign(so, id, officialKey(id)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := so.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	regKey := officialKey("registrar")
	// startHome runs the home as the writer, shipping to north only.
	startHome := func(below uint64) (*Site, *siteapi.Client, func()) {
		ln := listenLoopback(t)
		home, err := Open(ctx, &Config{StateDir: dir, Site: "home", Listen: ln.Addr().String(), InsecureLoopback: true,
			Peers: map[string]string{"embassy-north": northURL}},
			Options{Logger: logger.With("test_site", "home"), OuterRotateBelow: below,
				Local: guest.LocalOptions{Passphrase: pass, Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = home.Serve(sctx, ln)
		}()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				<-done
				if err := home.Close(); err != nil {
					t.Error(err)
				}
			})
		}
		t.Cleanup(stop)
		return home, &siteapi.Client{BaseURL: "http://" + ln.Addr().String(), HTTP: &http.Client{Timeout: time.Minute},
			Signer: siteapi.Signer{Guest: gid, Site: "home", Official: "registrar", Key: regKey}}, stop
	}
	rnd := rand.New(rand.NewPCG(7, 17))
	want := map[string][]byte{}
	n := 0
	// round writes four land records with an attachment each at the home
	// and waits until north's mirror holds them (their packs came first).
	round := func(home *Site, api *siteapi.Client) {
		t.Helper()
		for range 4 {
			id := fmt.Sprintf("ROT%03d", n)
			n++
			att := make([]byte, 2000+rnd.IntN(20000))
			for j := range att {
				att[j] = byte(rnd.Uint32())
			}
			br, err := api.PutBlob(ctx, "land", bytes.NewReader(att))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := api.Put(ctx, "land", id, fillRecord("land", id), siteapi.AttachmentInput{Name: id + ".bin", Ref: br.Ref}); err != nil {
				t.Fatalf("put %s: %v", id, err)
			}
			want[id] = att
		}
		hl := home.Local().Log
		size := hl.Size()
		deadline := time.Now().Add(time.Minute)
		for {
			if _, cp := north.tenants[gid].Ledger().Checkpoint(); cp.Size >= size {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("north not caught up to %d:\n%s", size, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// events are the KeySiteKey events of north in the ledger (north's
	// mirror, caught up with the home's).
	events := func() []seal.KeyEvent {
		t.Helper()
		var evs []seal.KeyEvent
		nl := north.tenants[gid].Ledger()
		_, cp := nl.Checkpoint()
		if err := audit.ScanKeyEvents(ctx, ledger.DirFetcher(nl.Dir()), cp.Size, func(_ uint64, ev seal.KeyEvent) error {
			if ev.Kind == seal.KeySiteKey && ev.Site == "embassy-north" {
				evs = append(evs, ev)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return evs
	}

	home, api, stop := startHome(seal.DefaultSealLimit - 2) // rotate past 2 seals
	for range 3 {
		round(home, api)
	}
	stop()
	evs := events()
	if len(evs) < 2 {
		t.Fatalf("%d rotations of north's outer key in the ledger, want at least 2 (12 attachments, threshold 2)", len(evs))
	}
	last := evs[len(evs)-1]
	for i, ev := range evs {
		if ev.Generation != uint32(i+1) || ev.Guest != gid {
			t.Fatalf("event %d: generation %d of guest %s", i, ev.Generation, ev.Guest)
		}
	}
	root, err := seal.ReadRootKeyFile(l.RootKey(), pass)
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring(gid, root)
	root.Wipe()
	t.Cleanup(keys.Wipe)
	keyID := func(path string) [32]byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := keys.UnwrapSiteKeys("embassy-north", b)
		if err != nil || len(ks) != 1 {
			t.Fatalf("%s: %v (%d keys)", path, err, len(ks))
		}
		defer ks[0].Wipe()
		return ks[0].ID()
	}
	storeFile := filepath.Join(l.Keys(), guest.OuterKeyFile("embassy-north"))
	countFile := filepath.Join(l.Keys(), "site-outer-embassy-north.sealed")
	if keyID(storeFile) != last.KeyID {
		t.Fatal("the home's key store does not hold the newest generation")
	}
	var cnt struct {
		KeyID  string `json:"key_id"`
		Sealed uint64 `json:"sealed"`
	}
	if b, err := os.ReadFile(countFile); err != nil || json.Unmarshal(b, &cnt) != nil || cnt.KeyID != hex.EncodeToString(last.KeyID[:]) {
		t.Fatalf("count file %s does not count the newest generation: %v %+v", countFile, err, cnt)
	}

	// A restart keeps the generation (the count is on record; the
	// default threshold is far off) and ships under it.
	home, api, stop = startHome(0)
	round(home, api)
	if evs2 := events(); len(evs2) != len(evs) {
		t.Fatalf("the restarted home rotated again: %d events, was %d", len(evs2), len(evs))
	}
	if keyID(storeFile) != last.KeyID {
		t.Fatal("the restarted home's key store changed generation")
	}
	// A rotate-keys order naming north (a standby site) at the home: the
	// writer rotates the key it ships to north under.
	ro, err := continuity.NewOrder(c, continuity.Order{Action: charter.ActionRotateKeys, Site: "embassy-north", Epoch: 1,
		NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "rotate north's outer key"})
	if err != nil {
		t.Fatal(err)
	}
	hc := &siteapi.ContinuityClient{BaseURL: api.BaseURL, Guest: gid, AcceptUnfenced: true,
		Signer: &siteapi.Signer{Guest: gid, Site: "home", Official: "cio", Key: officialKey("cio")}}
	if _, err := hc.Submit(ctx, signOrder(ro, "cio", "registrar")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(events()) == len(evs) {
		if time.Now().After(deadline) {
			t.Fatalf("no rotation of north's key after the rotate-keys order:\n%s", logs.String())
		}
		round(home, api) // ships the event to north's mirror
	}
	round(home, api) // packs under the ordered generation
	stop()
	evs = events()
	last = evs[len(evs)-1]
	if last.Order == ([32]byte{}) {
		t.Fatal("the ordered rotation's event names no order")
	}
	if keyID(storeFile) != last.KeyID {
		t.Fatal("the home's key store does not hold the ordered generation")
	}
	escrow, err := os.ReadFile(filepath.Join(guest.EscrowDir(l), guest.OuterKeyFile("embassy-north")))
	if err != nil {
		t.Fatal(err)
	}
	eks, err := keys.UnwrapSiteKeys("embassy-north", escrow)
	if err != nil || len(eks) < len(evs)+1 || eks[0].ID() != last.KeyID {
		t.Fatalf("the escrow holds %d generations (newest first: %v), want %d: %v", len(eks), len(eks) > 0 && eks[0].ID() == last.KeyID, len(evs)+1, err)
	}
	for _, k := range eks {
		k.Wipe()
	}

	// The home is gone: north is activated, the escrow file handed over.
	o, err := continuity.NewOrder(c, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite,
		Epoch: 2, NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "outer key rotation test"})
	if err != nil {
		t.Fatal(err)
	}
	cc := &siteapi.ContinuityClient{BaseURL: northURL, Guest: gid, AcceptUnfenced: true,
		Signer: &siteapi.Signer{Guest: gid, Site: "embassy-north", Official: "cio", Key: officialKey("cio")}}
	if _, err := cc.Submit(ctx, signOrder(o, "min-interior", "cio")); err != nil {
		t.Fatal(err)
	}
	sess, err := cc.OpenUnseal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	custody, err := seal.ReadCustodyPackageFile(l.Custody())
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := continuity.VerifyRecipient(c, custody, sess.RecipientStatement, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.SubmitSiteKey(ctx, st, "embassy-north", escrow); err != nil {
		t.Fatal(err)
	}
	for i, sealed := range statetest.SealedShares(t, dir, pass, sess.RecipientStatement, "cust-parliament", "cust-court", "cust-bank") {
		if _, err := cc.SubmitShare(ctx, sess.Session, sealed); err != nil {
			t.Fatalf("share %d: %v", i+1, err)
		}
	}
	tn := north.tenants[gid]
	loc := tn.Unsealed()
	if loc == nil {
		t.Fatalf("north is not unsealed:\n%s", logs.String())
	}
	for id, att := range want {
		rec, err := loc.Registries.Get(ctx, "land", id, registry.AsOf{})
		if err != nil || len(rec.Attachments) != 1 {
			t.Fatalf("record %s at north: %v", id, err)
		}
		var got bytes.Buffer
		if err := loc.Registries.GetBlob(ctx, "land", rec.Attachments[0].Ref, &got); err != nil || !bytes.Equal(got.Bytes(), att) {
			t.Fatalf("attachment of %s at north: %v (%d bytes, want %d)", id, err, got.Len(), len(att))
		}
	}
	_, ncp := tn.Ledger().Checkpoint()
	scrub := func(retain bool) *audit.BlobReport {
		t.Helper()
		ks, err := keys.UnwrapSiteKeys("embassy-north", escrow)
		if err != nil {
			t.Fatal(err)
		}
		cur := ks[0]
		if retain {
			cur.Retain(ks[1:]...)
		} else {
			for _, k := range ks[1:] {
				k.Wipe()
			}
		}
		defer cur.Wipe()
		rep, err := audit.Scrub(ctx, tn.Blobs(), audit.ScrubOptions{Ledger: ledger.DirFetcher(tn.Ledger().Dir()), Size: ncp.Size, Refs: guest.BlobRefs,
			Prefix: registry.BlobPrefix, Sealer: func(reg string) store.Sealer {
				return registry.OuterSealer(keys.Registry(reg).Blobs(), cur, gid, "embassy-north")
			}})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := scrub(true); rep.Bad != 0 {
		t.Fatalf("scrub at north with every generation: %+v", rep)
	}
	t.Logf("%d rotations, %d records; scrub with the newest generation alone: %d bad", len(evs), len(want), scrub(false).Bad)
	if rep := scrub(false); rep.Bad == 0 {
		t.Fatalf("scrub at north with the newest generation alone is clean: north holds packs of one generation only, %+v", rep)
	}
}
