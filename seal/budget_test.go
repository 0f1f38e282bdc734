package seal

import (
	"bytes"
	"errors"
	"testing"
)

// TestNonceBudget: with a small injected limit, each data key, blob key
// and site key seals exactly that many values and then refuses with
// ErrNonceBudget; rotating the registry gives a fresh budget; records
// replayed with CountSealed count against it; opening is never refused.
func TestNonceBudget(t *testing.T) {
	k := NewKeyring("demo-republic", newRoot(t))
	k.SetSealLimit(3)
	rk := k.Registry("population")
	ad := RecordAD{Guest: "demo-republic", Registry: "population", Version: 1}
	var sealed [][]byte
	for i := range 3 {
		s, err := rk.Seal(ad, []byte("x"))
		if err != nil {
			t.Fatalf("seal %d: %v", i, err)
		}
		sealed = append(sealed, s)
	}
	if _, err := rk.Seal(ad, []byte("x")); !errors.Is(err, ErrNonceBudget) {
		t.Fatalf("fourth seal under generation 1: %v", err)
	}
	if _, err := rk.Open(ad, sealed[0]); err != nil {
		t.Fatalf("open after the budget is spent: %v", err)
	}
	// Blob chunks have their own budget under their own key.
	var id [32]byte
	for i := range 3 {
		if _, err := rk.Blobs().Seal(id, []byte("c")); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if _, err := rk.Blobs().Seal(id, []byte("c")); !errors.Is(err, ErrNonceBudget) {
		t.Fatalf("fourth chunk: %v", err)
	}
	if r, c := rk.SealCount(1); r != 3 || c != 3 {
		t.Fatalf("count %d records %d chunks, want 3 3", r, c)
	}
	// Rotation: generation 2 seals afresh.
	k.SetGeneration("population", 2)
	if _, err := rk.Seal(ad, []byte("x")); err != nil {
		t.Fatalf("seal after rotation: %v", err)
	}
	// A restarted keyring learns the count from the ledger's records.
	k2 := NewKeyring("demo-republic", newRoot(t))
	k2.SetSealLimit(3)
	rk2 := k2.Registry("population")
	for _, s := range sealed[:2] {
		rk2.CountSealed(s)
	}
	rk2.CountSealed([]byte("not a sealed record"))
	if _, err := rk2.Seal(ad, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := rk2.Seal(ad, []byte("x")); !errors.Is(err, ErrNonceBudget) {
		t.Fatalf("seal past a budget replayed from the ledger: %v", err)
	}
	// The site key.
	sk, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	sk.SetSealLimit(2)
	for range 2 {
		if _, err := sk.Seal(nil, []byte("d")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sk.Seal(nil, []byte("d")); !errors.Is(err, ErrNonceBudget) {
		t.Fatalf("third site seal: %v", err)
	}
	// The default cannot be raised.
	var b sealBudget
	b.used.Store(DefaultSealLimit)
	if err := b.take(DefaultSealLimit * 2); !errors.Is(err, ErrNonceBudget) {
		t.Fatalf("limit above the default: %v", err)
	}
}

// TestSiteKeyRotation: a site's outer key that has spent its nonce budget
// refuses to seal; RotateSiteKey gives the next generation — a fresh key,
// its wrapped copy and the KeySiteKey event naming it — which seals again,
// opens what ResealSite moved to it, and shares nothing with the old one.
func TestSiteKeyRotation(t *testing.T) {
	k := newKeyring(t, "demo-republic")
	old, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	defer old.Wipe()
	old.SetSealLimit(3)
	ad := SiteAD("demo-republic", "embassy-north", [32]byte{7})
	var chunks [][]byte
	for i := range 3 {
		c, err := old.Seal(ad, []byte{byte(i), 'c'})
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	if old.Remaining() != 0 {
		t.Fatalf("%d seals left after the limit", old.Remaining())
	}
	if _, err := old.Seal(ad, []byte("one more")); !errors.Is(err, ErrNonceBudget) {
		t.Fatalf("seal past the budget: %v", err)
	}
	order := [32]byte{9}
	next, wrapped, ev, err := k.RotateSiteKey("embassy-north", 1, order)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Wipe()
	if ev.Kind != KeySiteKey || ev.Site != "embassy-north" || ev.Generation != 2 || ev.KeyID != next.ID() || ev.KeyID == old.ID() || ev.Order != order {
		t.Fatalf("rotation event %+v", ev)
	}
	b, err := ev.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back KeyEvent
	if err := back.UnmarshalBinary(b); err != nil || back != ev {
		t.Fatalf("rotation event round trip: %v", err)
	}
	if bytes.Contains(b, wrapped[1+nonceSize:]) {
		t.Fatal("the event carries the wrapped key")
	}
	un, err := k.UnwrapSiteKey("embassy-north", wrapped)
	if err != nil || un.ID() != next.ID() {
		t.Fatalf("wrapped copy of the new key: %v", err)
	}
	un.Wipe()
	for i, c := range chunks {
		moved, err := ResealSite(old, next, ad, c)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := next.Open(ad, moved); err != nil || !bytes.Equal(pt, []byte{byte(i), 'c'}) {
			t.Fatalf("chunk %d under the new key: %v", i, err)
		}
		if _, err := old.Open(ad, moved); !errors.Is(err, ErrAuth) {
			t.Fatalf("chunk %d re-sealed still opens under the old key: %v", i, err)
		}
	}
	if next.Remaining() != DefaultSealLimit-3 {
		t.Fatalf("new generation starts with %d seals left", next.Remaining())
	}
	if _, _, _, err := k.RotateSiteKey("embassy-north", ^uint32(0), order); err == nil {
		t.Fatal("rotated past the last generation")
	}
}

// TestSiteKeyReserveAhead: the count a site key persists is at least the
// seals made, before each is made, and at most one block above; a
// persist that fails refuses the seal and does not count it.
func TestSiteKeyReserveAhead(t *testing.T) {
	sk, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	var persisted []uint64
	fail := false
	sk.ReserveAhead(0, 4, func(upTo uint64) error {
		if fail {
			return errors.New("disk full")
		}
		persisted = append(persisted, upTo)
		return nil
	})
	for i := 1; i <= 9; i++ {
		if _, err := sk.Seal([]byte("ad"), []byte("x")); err != nil {
			t.Fatal(err)
		}
		last := persisted[len(persisted)-1]
		if last < uint64(i) || last > uint64(i)+4 {
			t.Fatalf("after seal %d the persisted count is %d", i, last)
		}
	}
	if want := []uint64{5, 10}; len(persisted) != 2 || persisted[0] != want[0] || persisted[1] != want[1] {
		t.Fatalf("persisted %v, want %v (one write per block)", persisted, want)
	}
	sk.Seal([]byte("ad"), []byte("x")) // 10: within the reservation
	fail = true
	before := sk.Remaining()
	if _, err := sk.Seal([]byte("ad"), []byte("x")); err == nil {
		t.Fatal("a seal past the persisted count went ahead although the count could not be persisted")
	}
	if sk.Remaining() != before {
		t.Fatal("a refused seal was counted")
	}
}

// TestSiteKeyRetained: a key that retains its earlier generations opens
// what each sealed, seals under itself only, and a file of wrapped copies
// laid end to end unwraps to every generation, newest first; a single
// copy (the format before) is one key.
func TestSiteKeyRetained(t *testing.T) {
	k := NewKeyring("demo-republic", newRoot(t))
	g0, _ := NewSiteKey()
	g1, _ := NewSiteKey()
	w0, _ := k.WrapSiteKey("embassy-north", g0)
	w1, _ := k.WrapSiteKey("embassy-north", g1)
	ad := []byte("chunk")
	old, _ := g0.Seal(ad, []byte("under g0"))
	keys, err := k.UnwrapSiteKeys("embassy-north", append(append([]byte{}, w1...), w0...))
	if err != nil || len(keys) != 2 || keys[0].ID() != g1.ID() || keys[1].ID() != g0.ID() {
		t.Fatalf("unwrap two generations: %v, %d keys", err, len(keys))
	}
	cur := keys[0]
	if _, err := cur.Open(ad, old); err == nil {
		t.Fatal("generation 1 alone opened a generation-0 seal")
	}
	cur.Retain(keys[1:]...)
	if pt, err := cur.Open(ad, old); err != nil || string(pt) != "under g0" {
		t.Fatalf("retaining generation 0: %v", err)
	}
	nw, _ := cur.Seal(ad, []byte("new"))
	if _, err := g1.Open(ad, nw); err != nil {
		t.Fatal("the key sealed under a retained generation, not its own")
	}
	if _, err := cur.Open([]byte("other"), old); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong ad: %v", err)
	}
	one, err := k.UnwrapSiteKeys("embassy-north", w0)
	if err != nil || len(one) != 1 || one[0].ID() != g0.ID() {
		t.Fatalf("a single copy: %v", err)
	}
	if _, err := k.UnwrapSiteKeys("embassy-north", w0[:60]); err == nil {
		t.Fatal("a truncated file unwrapped")
	}
	cur.Wipe()
	if keys[1].ID() != ([32]byte{}) {
		t.Fatal("Wipe left a retained generation")
	}
}
