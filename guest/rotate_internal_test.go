package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	storefs "github.com/chancery-gov/chancery/store/fs"

	"github.com/chancery-gov/chancery/store"
)

// rotationFixture is the guest fixture with embassy-north holding its own
// outer key (handed over from the home's escrow) and records with
// attachments sealed under it.
type rotationFixture struct {
	*guestFixture
	keys    *seal.Keyring // from the home's root key: to open what north holds
	oldKey  *seal.SiteKey // generation 0, from the home's escrow
	records map[string][]byte
}

func startRotationFixture(t *testing.T, opts Options, records, size int) *rotationFixture {
	t.Helper()
	ctx := context.Background()
	f := &rotationFixture{guestFixture: startGuestFixtureWith(t, opts, true), records: map[string][]byte{}}
	l := state.Layout{Dir: f.dir}
	root, err := seal.ReadRootKeyFile(l.RootKey(), []byte(fixturePass))
	if err != nil {
		t.Fatal(err)
	}
	f.keys = seal.NewKeyring(f.g.ID(), root)
	root.Wipe()
	t.Cleanup(f.keys.Wipe)
	wrapped, err := os.ReadFile(filepath.Join(EscrowDir(l), OuterKeyFile("embassy-north")))
	if err != nil {
		t.Fatal(err)
	}
	if f.oldKey, err = f.keys.UnwrapSiteKey("embassy-north", wrapped); err != nil {
		t.Fatal(err)
	}
	regs := f.g.Served().Local.Registries
	for i := range records {
		id := fmt.Sprintf("DR-ROT-%d", i)
		data := make([]byte, size)
		rand.Read(data)
		ref, err := regs.PutBlob(ctx, "business", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		rec := json.RawMessage(fmt.Sprintf(`{"registration_no":%q,"name":"Rotated Ltd"}`, id))
		if _, err := regs.Put(ctx, "business", id, rec, []registry.Attachment{{Name: "scan.bin", Size: ref.Size, Ref: ref}}); err != nil {
			t.Fatal(err)
		}
		f.records[id] = data
	}
	return f
}

// reunseal seals north and unseals it again, the home's escrow copy of its
// outer key (generation 0) handed over as officials would.
func (f *rotationFixture) reunseal(t *testing.T) {
	t.Helper()
	f.g.Seal()
	sess, err := f.g.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	f.unseal(t, sess, true)
}

// ownKey is north's outer key in memory now.
func (f *rotationFixture) ownKey(t *testing.T) *seal.SiteKey {
	t.Helper()
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	k, ok := f.g.act.outer.get("embassy-north")
	if !ok {
		t.Fatal("north holds no outer key")
	}
	return k
}

// sealer opens north's copy of population's blobs under outer key k.
func (f *rotationFixture) sealer(k *seal.SiteKey) store.Sealer {
	return registry.OuterSealer(f.keys.Registry("business").Blobs(), k, f.g.ID(), "embassy-north")
}

// waitEvent waits for the ledger's newest KeySiteKey event of north to be
// generation gen.
func (f *rotationFixture) waitEvent(t *testing.T, gen uint32) seal.KeyEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, ok, err := lastSiteKeyEvent(context.Background(), f.g.Ledger(), f.g.ID(), "embassy-north")
		if err != nil {
			t.Fatal(err)
		}
		if ok && ev.Generation == gen {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger holds no KeySiteKey event of generation %d for embassy-north (newest: %v, %+v)", gen, ok, ev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkRotated: every record and attachment reads back; the scrub, with
// the new key, is clean; the old key opens none of the attachments; the
// key store and escrow hold the new generation and no journal is left.
func (f *rotationFixture) checkRotated(t *testing.T, old *seal.SiteKey, gen uint32) {
	t.Helper()
	ctx := context.Background()
	ev := f.waitEvent(t, gen)
	now := f.ownKey(t)
	if now.ID() != ev.KeyID {
		t.Fatalf("north seals under key %x; the ledger's generation %d is %x", now.ID(), gen, ev.KeyID)
	}
	if now.ID() == old.ID() {
		t.Fatal("the outer key did not change")
	}
	regs := f.g.Served().Local.Registries
	be := store.Prefixed(f.g.Blobs(), registry.BlobPrefix("business"))
	st, err := store.Open(ctx, be, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, want := range f.records {
		rec, err := regs.Get(ctx, "business", id, registry.AsOf{})
		if err != nil {
			t.Fatalf("record %s after rotation: %v", id, err)
		}
		if len(rec.Attachments) != 1 {
			t.Fatalf("record %s: %d attachments", id, len(rec.Attachments))
		}
		var got bytes.Buffer
		if err := regs.GetBlob(ctx, "business", rec.Attachments[0].Ref, &got); err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("attachment of %s after rotation: %v (%d bytes, want %d)", id, err, got.Len(), len(want))
		}
		if err := st.Get(ctx, f.sealer(old), rec.Attachments[0].Ref, &bytes.Buffer{}); err == nil {
			t.Fatalf("the old generation's key still opens the attachment of %s", id)
		}
	}
	if err := st.Check(ctx, f.sealer(now)); err != nil {
		t.Fatalf("store check under the new key: %v", err)
	}
	_, cp := f.g.Ledger().Checkpoint()
	rep, err := audit.Scrub(ctx, f.g.Blobs(), audit.ScrubOptions{Ledger: ledger.DirFetcher(f.g.Ledger().Dir()), Size: cp.Size, Refs: BlobRefs,
		Prefix: registry.BlobPrefix, Sealer: func(reg string) store.Sealer {
			return registry.OuterSealer(f.keys.Registry(reg).Blobs(), now, f.g.ID(), "embassy-north")
		}})
	if err != nil || rep.Bad != 0 {
		t.Fatalf("scrub after rotation: %v, %+v", err, rep)
	}
	l := f.g.outerLayout()
	for _, p := range []string{filepath.Join(l.Keys(), OuterKeyFile("embassy-north")), filepath.Join(EscrowDir(l), OuterKeyFile("embassy-north"))} {
		w, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		k, err := f.keys.UnwrapSiteKey("embassy-north", w)
		if err != nil || k.ID() != ev.KeyID {
			t.Fatalf("%s does not hold generation %d: %v", p, gen, err)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Keys(), rotatingFile("embassy-north"))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rotation journal left behind: %v", err)
	}
}

// TestOuterKeyRotatesOnBudget: a site whose copy holds more chunks than
// its outer key's budget allows before the threshold rotates that key as
// it unseals, re-seals every pack and records the event; at the next
// unseal, with the home's stale generation-0 copy handed over again, it
// takes the generation the ledger names from its own key store.
func TestOuterKeyRotatesOnBudget(t *testing.T) {
	f := startRotationFixture(t, Options{OuterRotateBelow: seal.DefaultSealLimit - 4}, 6, 300<<10)
	if _, ok, _ := lastSiteKeyEvent(context.Background(), f.g.Ledger(), f.g.ID(), "embassy-north"); ok {
		t.Fatal("a key event before any rotation")
	}
	if f.ownKey(t).ID() != f.oldKey.ID() {
		t.Fatal("north does not hold generation 0 before the rotation")
	}
	f.reunseal(t)
	f.checkRotated(t, f.oldKey, 1)
	gen1, err := f.keys.UnwrapSiteKey("embassy-north", mustRead(t, filepath.Join(f.g.outerLayout().Keys(), OuterKeyFile("embassy-north"))))
	if err != nil {
		t.Fatal(err)
	}
	f.reunseal(t)
	f.checkRotated(t, gen1, 2)
}

// TestOuterKeyBelowThresholdKeeps: under the default threshold the same
// site does not rotate (the check above is the threshold's doing).
func TestOuterKeyBelowThresholdKeeps(t *testing.T) {
	f := startRotationFixture(t, Options{}, 2, 10<<10)
	f.reunseal(t)
	if f.ownKey(t).ID() != f.oldKey.ID() {
		t.Fatal("rotated below the threshold")
	}
	if _, ok, _ := lastSiteKeyEvent(context.Background(), f.g.Ledger(), f.g.ID(), "embassy-north"); ok {
		t.Fatal("a key event without a rotation")
	}
}

// TestOuterKeyRotatesOnOrder: a rotate-keys order naming the active site,
// signed by the charter's quorum, rotates its outer key at once.
func TestOuterKeyRotatesOnOrder(t *testing.T) {
	f := startRotationFixture(t, Options{}, 3, 100<<10)
	so := f.order(t, continuity.Order{Action: charter.ActionRotateKeys, Site: "embassy-north", Epoch: 2, Reason: "rotation drill"}, "cio", "registrar")
	if _, _, err := f.g.Submit(context.Background(), so, false); err != nil {
		t.Fatal(err)
	}
	f.waitEvent(t, 1)
	deadline := time.Now().Add(10 * time.Second)
	for f.ownKey(t).ID() == f.oldKey.ID() || f.g.Served() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the order did not rotate the key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.checkRotated(t, f.oldKey, 1)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const rotateChildEnv = "CHANCERY_ROTATE_CHILD"

// TestOuterRotationChild is the child of TestOuterRotationSurvivesSIGKILL:
// it re-seals embassy-north's packs as the site would, and is killed
// mid-way. It never gets past the re-seal: its ledger hook blocks.
func TestOuterRotationChild(t *testing.T) {
	env := os.Getenv(rotateChildEnv)
	if env == "" {
		t.Skip("run by TestOuterRotationSurvivesSIGKILL")
	}
	var args struct{ Home, GuestDir, Guest string }
	if err := json.Unmarshal([]byte(env), &args); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: args.Home}
	root, err := seal.ReadRootKeyFile(l.RootKey(), []byte(fixturePass))
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring(args.Guest, root)
	old, err := keys.UnwrapSiteKey("embassy-north", mustRead(t, filepath.Join(EscrowDir(l), OuterKeyFile("embassy-north"))))
	if err != nil {
		t.Fatal(err)
	}
	be, err := storefs.New(filepath.Join(args.GuestDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	var regs []string
	for _, r := range c.Registries {
		regs = append(regs, r.Name)
	}
	r := &outerRotation{guest: args.Guest, site: "embassy-north", keys: keys, layout: state.Layout{Dir: args.GuestDir}, blobs: be, registries: regs,
		logger:  slog.New(slog.DiscardHandler),
		current: func(context.Context) (seal.KeyEvent, bool, error) { return seal.KeyEvent{}, false, nil },
		record:  func(ctx context.Context, _ seal.KeyEvent) error { <-ctx.Done(); return ctx.Err() }}
	_, err = r.run(context.Background(), old, [32]byte{})
	t.Fatalf("the rotation returned instead of being killed: %v", err)
}

// TestOuterRotationSurvivesSIGKILL: a site process killed (SIGKILL) while
// re-sealing its packs leaves every pack whole under the old or the new
// generation, and the next unseal finishes the rotation with nothing lost.
func TestOuterRotationSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	ctx := context.Background()
	f := startRotationFixture(t, Options{}, 60, 40<<10)
	f.g.Seal() // the registries' stores closed: the child owns the backend
	be := store.Prefixed(f.g.Blobs(), registry.BlobPrefix("business"))
	packs := func() []string {
		var out []string
		if err := be.List(ctx, "data/", func(name string, _ int64) error { out = append(out, name); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := len(packs())
	if before < 20 {
		t.Fatalf("only %d packs: too few to be killed mid-way", before)
	}
	args, _ := json.Marshal(struct{ Home, GuestDir, Guest string }{f.dir, f.g.Dir(), f.g.ID()})
	cmd := exec.Command(os.Args[0], "-test.run=^TestOuterRotationChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), rotateChildEnv+"="+string(args))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(f.g.outerLayout().Keys(), rotatingFile("embassy-north"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(journal); err == nil && len(packs()) > before+2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child never re-sealed a pack:\n%s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the child exited by itself:\n%s", out.String())
	}
	var j rotationJournal
	if err := json.Unmarshal(mustRead(t, journal), &j); err != nil || j.Phase != phaseReseal {
		t.Fatalf("journal after the kill: %v, %+v", err, j)
	}
	next, err := f.keys.UnwrapSiteKey("embassy-north", j.Next)
	if err != nil {
		t.Fatal(err)
	}
	// Every pack is whole and opens under one generation or the other.
	oldN, newN := 0, 0
	for _, name := range packs() {
		id, _ := store.ParsePackName(name)
		rc, err := be.Load(ctx, name, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var data bytes.Buffer
		data.ReadFrom(rc)
		rc.Close()
		var under *seal.SiteKey
		for _, k := range []*seal.SiteKey{f.oldKey, next} {
			if _, _, err := store.RewrapPack(id, data.Bytes(), func(cid store.ID, sealed []byte) ([]byte, error) {
				return k.Open(seal.SiteAD(f.g.ID(), "embassy-north", cid), sealed)
			}); err == nil {
				under = k
			}
		}
		switch under {
		case f.oldKey:
			oldN++
		case next:
			newN++
		default:
			t.Fatalf("pack %s opens under neither generation after the kill", name)
		}
	}
	t.Logf("killed with %d packs under generation 0 and %d under generation 1", oldN, newN)
	if oldN != before {
		t.Fatalf("%d old packs left of %d: one was lost before the switch", oldN, before)
	}
	if newN == 0 || newN >= before {
		t.Logf("note: the kill did not land mid-way (%d of %d copied)", newN, before)
	}
	// The restart: the next unseal finishes the job.
	sess, err := f.g.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	f.unseal(t, sess, true)
	f.checkRotated(t, f.oldKey, 1)
	if n := len(packs()); n != before {
		t.Fatalf("%d packs after the rotation, want the %d there were", n, before)
	}
	if f.ownKey(t).ID() != next.ID() {
		t.Fatal("the finished rotation is not the journal's generation")
	}
}

// TestHomeAdoptsRotatedOuterKey: a home whose key store holds an
// embassy's retired generation ships nothing to it (the key is dropped)
// until the embassy's escrow copy of the generation the ledger names is
// put in the home's escrow; then it adopts that copy into its key store.
func TestHomeAdoptsRotatedOuterKey(t *testing.T) {
	ctx := context.Background()
	f := startRotationFixture(t, Options{OuterRotateBelow: seal.DefaultSealLimit - 1}, 2, 10<<10)
	f.reunseal(t)
	ev := f.waitEvent(t, 1)
	home := state.Layout{Dir: f.dir}
	logger := slog.New(slog.DiscardHandler)
	hk, err := loadHomeOuterKeys(f.g.Charter(), home, f.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hk.wipe()
	if k, _ := hk.get("embassy-north"); k.ID() != f.oldKey.ID() {
		t.Fatal("the home's key store does not hold generation 0")
	}
	if err := adoptRotatedOuterKeys(ctx, f.g.Ledger(), f.g.ID(), home, f.keys, hk, logger); err != nil {
		t.Fatal(err)
	}
	if _, ok := hk.get("embassy-north"); ok {
		t.Fatal("the home kept a retired generation of north's key: it would ship under it")
	}
	if k, ok := hk.get("embassy-south"); !ok || k == nil {
		t.Fatal("a site that did not rotate lost its key")
	}
	// Officials bring north's escrow copy to the home's escrow.
	w := mustRead(t, filepath.Join(EscrowDir(f.g.outerLayout()), OuterKeyFile("embassy-north")))
	if err := os.WriteFile(filepath.Join(EscrowDir(home), OuterKeyFile("embassy-north")), w, 0o600); err != nil {
		t.Fatal(err)
	}
	hk2, err := loadHomeOuterKeys(f.g.Charter(), home, f.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hk2.wipe()
	if err := adoptRotatedOuterKeys(ctx, f.g.Ledger(), f.g.ID(), home, f.keys, hk2, logger); err != nil {
		t.Fatal(err)
	}
	if k, ok := hk2.get("embassy-north"); !ok || k.ID() != ev.KeyID {
		t.Fatal("the home did not adopt the rotated generation from its escrow")
	}
	if !bytes.Equal(mustRead(t, filepath.Join(home.Keys(), OuterKeyFile("embassy-north"))), w) {
		t.Fatal("the home's key store still holds the retired generation")
	}
}

// TestOuterRotationCutAfterEvent: a rotation cut short after its event
// reached the ledger and before the new wrapped copy was installed (here:
// the escrow's file cannot be replaced, and the key store's new copy is
// removed, as a crash between removing the old copy and writing the new
// leaves it) is finished at the next unseal although no copy at hand is
// the generation the ledger now names: the journal's is, and the re-seal
// was complete.
func TestOuterRotationCutAfterEvent(t *testing.T) {
	f := startRotationFixture(t, Options{OuterRotateBelow: seal.DefaultSealLimit - 1}, 3, 50<<10)
	l := f.g.outerLayout()
	blocker := filepath.Join(EscrowDir(l), OuterKeyFile("embassy-north"))
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.g.Seal()
	sess, err := f.g.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.unsealErr(t, sess, true); err == nil {
		t.Fatal("the rotation went through a key store it cannot write")
	}
	f.waitEvent(t, 1)
	for _, p := range []string{blocker, filepath.Join(l.Keys(), OuterKeyFile("embassy-north"))} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	f.reunseal(t)
	f.checkRotated(t, f.oldKey, 1)
}
