package seal

import (
	"errors"
	"testing"
)

func TestWipe(t *testing.T) {
	r := newRoot(t)
	k := NewKeyring("demo-republic", r)
	k.SetGeneration("population", 3)
	rk := k.Registry("population")
	a := ad("population")
	old, _ := rk.Seal(a, []byte("x"))
	for gen := uint32(1); gen <= 3; gen++ {
		if _, err := rk.generation(gen); err != nil {
			t.Fatal(err)
		}
	}
	gens := make([]*genKeys, 0, 3)
	for _, g := range rk.gens {
		gens = append(gens, g)
	}
	prkMem := k.prkMem
	rk.BlindID("x") // the pad states have been used
	var pads [][]byte
	for _, m := range rk.macs {
		pads = append(pads, m.inner, m.outer)
	}
	if len(pads) != 10 {
		t.Fatalf("%d HMAC pad states, want 2 for each of 5 MAC keys", len(pads))
	}
	r.Wipe()
	if !isZero(r.key[:]) || !r.s.IsZero() {
		t.Fatal("RootKey.Wipe left key material")
	}
	if _, err := r.Commitment(); !errors.Is(err, ErrWiped) {
		t.Error("wiped root still answers")
	}
	// The keyring keeps its own copy: wiping r does not stop it.
	if _, err := rk.Open(a, old); err != nil {
		t.Fatal("keyring depends on the RootKey it came from", err)
	}
	k.Wipe()
	if k.prk != nil || prkMem.Bytes() != nil {
		t.Error("keyring PRK kept after Wipe")
	}
	for i, p := range pads {
		if !isZero(p) {
			t.Errorf("HMAC pad state %d not zeroed", i)
		}
	}
	for name, key := range map[string]*[32]byte{"id": &rk.idKey, "index": &rk.indexKey, "commit": &rk.commitKey, "record commit": &rk.recordCommitKey, "blob id": &rk.blobIDKey} {
		if !isZero(key[:]) {
			t.Errorf("%s key not zeroed", name)
		}
	}
	for _, g := range gens {
		if !isZero(g.dataKey[:]) || !isZero(g.blobKey[:]) || g.data != nil || g.blob != nil {
			t.Error("generation keys not zeroed")
		}
	}
	if _, err := rk.Seal(a, []byte("x")); !errors.Is(err, ErrWiped) {
		t.Errorf("Seal after Wipe: %v", err)
	}
	if _, err := rk.Open(a, old); !errors.Is(err, ErrWiped) {
		t.Errorf("Open after Wipe: %v", err)
	}
	if _, err := rk.Blobs().Seal([32]byte{}, nil); !errors.Is(err, ErrWiped) {
		t.Errorf("blob Seal after Wipe: %v", err)
	}
	if rk.BlindID("x") != ([32]byte{}) || rk.Commit(nil) != ([32]byte{}) || rk.Blobs().ChunkID(nil) != ([32]byte{}) {
		t.Error("MACs after Wipe are not zero")
	}
	if k.Registry("land").BlindID("x") != ([32]byte{}) {
		t.Error("a registry first used after Wipe derived keys")
	}
	sk, _ := NewSiteKey()
	if _, err := k.WrapSiteKey("s", sk); !errors.Is(err, ErrWiped) {
		t.Errorf("wrap after Wipe: %v", err)
	}
	sk.Wipe()
	if !isZero(sk.key[:]) || sk.ID() != ([32]byte{}) {
		t.Error("SiteKey.Wipe left the key")
	}
	if _, err := sk.Seal(nil, nil); !errors.Is(err, ErrWiped) {
		t.Errorf("site Seal after Wipe: %v", err)
	}
	if k2 := NewKeyring("g", r); k2.Registry("x").BlindID("y") != ([32]byte{}) {
		t.Error("keyring from a wiped root works")
	}
}

func TestShareWipe(t *testing.T) {
	r := newRoot(t)
	ck := custodians(t, 2, false)
	p, _ := Split("g", r, 2, ck.list)
	shares := openAll(t, p, ck)
	s := shares[0]
	s.Wipe()
	if !s.value.IsZero() {
		t.Fatal("Share.Wipe left the scalar")
	}
	if _, err := s.Marshal(); !errors.Is(err, ErrWiped) {
		t.Errorf("Marshal after Wipe: %v", err)
	}
	if _, err := p.Combine(shares); err == nil {
		t.Error("combined with a wiped share")
	}
	// Combine leaves the caller's shares intact (they wipe them) and its
	// own copies are its business: the result is right.
	fresh := openAll(t, p, ck)
	got, err := p.Combine(fresh)
	if err != nil || got.key != r.key {
		t.Fatal(err)
	}
	for _, s := range fresh {
		if s.value.IsZero() {
			t.Error("Combine wiped a caller's share")
		}
	}
}
