package seal

import (
	"github.com/chancery-gov/chancery/internal/padme"

	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestSealOpenRoundtrip(t *testing.T) {
	k := newKeyring(t, "demo-republic")
	rk := k.Registry("population")
	for _, n := range []int{0, 1, 500, 70000} {
		pt := bytes.Repeat([]byte{'x'}, n)
		sealed, err := rk.Seal(ad("population"), pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != padme.Len(4+n)+33 || sealed[0] != 0x03 || !bytes.Equal(sealed[1:5], []byte{0, 0, 0, 1}) {
			t.Fatalf("sealed %d bytes: len %d header % x", n, len(sealed), sealed[:5])
		}
		got, err := rk.Open(ad("population"), sealed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("roundtrip of %d bytes: %v", n, err)
		}
	}
}

// TestOpenRejectsEveryChange changes one thing at a time — each field of
// the additional data, the generation, every byte — and wants Open to fail.
func TestOpenRejectsEveryChange(t *testing.T) {
	k := newKeyring(t, "demo-republic")
	k.SetGeneration("population", 2) // so generation 1 exists as another valid key
	k.SetGeneration("land", 2)
	rk := k.Registry("population")
	pt := []byte(`{"name":"Ada","born":"1815-12-10"}`)
	base := ad("population")
	sealed, err := rk.Seal(base, pt)
	if err != nil {
		t.Fatal(err)
	}
	other := k.Registry("land")
	adChanges := map[string]func(a *RecordAD){
		"blind id":    func(a *RecordAD) { a.BlindID[31] ^= 1 },
		"version":     func(a *RecordAD) { a.Version++ },
		"epoch":       func(a *RecordAD) { a.Epoch++ },
		"epoch zero":  func(a *RecordAD) { a.Epoch = 0 },
		"version max": func(a *RecordAD) { a.Version = ^uint64(0) },
		"bound":       func(a *RecordAD) { a.Bound[0] ^= 1 },
	}
	for name, change := range adChanges {
		a := base
		change(&a)
		if _, err := rk.Open(a, sealed); !errors.Is(err, ErrAuth) {
			t.Errorf("%s changed: Open error %v, want ErrAuth", name, err)
		}
	}
	// Guest and registry are bound twice: by the key and by the AD.
	for name, a := range map[string]RecordAD{
		"guest":    {Guest: "other", Registry: base.Registry, BlindID: base.BlindID, Version: base.Version, Epoch: base.Epoch},
		"registry": {Guest: base.Guest, Registry: "land", BlindID: base.BlindID, Version: base.Version, Epoch: base.Epoch},
	} {
		if _, err := rk.Open(a, sealed); err == nil {
			t.Errorf("%s changed: Open succeeded", name)
		}
	}
	la := base
	la.Registry = "land"
	if _, err := other.Open(la, sealed); !errors.Is(err, ErrAuth) {
		t.Errorf("other registry's keys opened it: %v", err)
	}
	other2 := newKeyring(t, "demo-republic").Registry("population")
	other2.k.SetGeneration("population", 2)
	if _, err := other2.Open(base, sealed); !errors.Is(err, ErrAuth) {
		t.Errorf("another root's keys opened it: %v", err)
	}
	// Generation: relabel as generation 1 (a valid key, the wrong one).
	g1 := bytes.Clone(sealed)
	g1[4] = 1
	if _, err := rk.Open(base, g1); !errors.Is(err, ErrAuth) {
		t.Errorf("generation relabelled: %v", err)
	}
	g3 := bytes.Clone(sealed)
	g3[4] = 3
	if _, err := rk.Open(base, g3); !errors.Is(err, ErrUnknownGeneration) {
		t.Errorf("future generation: %v", err)
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(sealed)
			c[i] ^= bit
			if _, err := rk.Open(base, c); err == nil {
				t.Fatalf("byte %d bit %#x flipped: Open succeeded", i, bit)
			}
		}
	}
	for _, n := range []int{0, 1, 16, 32, len(sealed) - 1} {
		if _, err := rk.Open(base, sealed[:n]); err == nil {
			t.Errorf("truncated to %d: Open succeeded", n)
		}
	}
	if _, err := rk.Open(base, append(bytes.Clone(sealed), 0)); err == nil {
		t.Error("extended: Open succeeded")
	}
	if _, err := rk.Open(base, sealed); err != nil {
		t.Fatalf("original no longer opens: %v", err)
	}
}

func TestSealRefusesForeignAD(t *testing.T) {
	rk := newKeyring(t, "demo-republic").Registry("population")
	if _, err := rk.Seal(ad("land"), []byte("x")); err == nil {
		t.Error("sealed a land record with the population keys")
	}
	a := ad("population")
	a.Guest = "elsewhere"
	if _, err := rk.Seal(a, []byte("x")); err == nil {
		t.Error("sealed another guest's record")
	}
}

func TestSealsDifferAndHidePlaintext(t *testing.T) {
	rk := newKeyring(t, "demo-republic").Registry("population")
	pt := []byte("PERSONAL-IDENTIFICATION-CODE 38512100001 Ada Lovelace")
	a, _ := rk.Seal(ad("population"), pt)
	b, _ := rk.Seal(ad("population"), pt)
	if bytes.Equal(a, b) || bytes.Equal(a[5:17], b[5:17]) {
		t.Fatal("two seals of the same record are equal or share a nonce")
	}
	for _, s := range [][]byte{a, b} {
		for _, needle := range [][]byte{pt, []byte("38512100001"), []byte("Ada"), []byte("Lovelace")} {
			if bytes.Contains(s, needle) {
				t.Fatalf("sealed record contains %q", needle)
			}
		}
	}
	blob := bytes.Repeat(pt, 1000)
	id := rk.Blobs().ChunkID(blob)
	sb, _ := rk.Blobs().Seal(id, blob)
	if bytes.Contains(sb, []byte("Lovelace")) {
		t.Fatal("sealed blob contains plaintext")
	}
	sk, _ := NewSiteKey()
	outer, _ := sk.Seal(SiteAD("demo-republic", "embassy-lu", id), blob)
	if bytes.Contains(outer, []byte("Lovelace")) {
		t.Fatal("site layer output contains plaintext")
	}
}

func TestRotation(t *testing.T) {
	k := newKeyring(t, "demo-republic")
	rk := k.Registry("population")
	a := ad("population")
	old, _ := rk.Seal(a, []byte("v1"))
	if rk.Generation() != 1 {
		t.Fatalf("default generation %d", rk.Generation())
	}
	ev := k.RotationEvent("population", [32]byte{9})
	if ev.Generation != 2 || rk.Generation() != 1 {
		t.Fatalf("RotationEvent changed state or named generation %d", ev.Generation)
	}
	enc, err := ev.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back KeyEvent
	if err := back.UnmarshalBinary(enc); err != nil || back != ev {
		t.Fatalf("key event roundtrip: %v %+v", err, back)
	}
	if err := k.ApplyKeyEvent(back); err != nil {
		t.Fatal(err)
	}
	if err := k.ApplyKeyEvent(back); err == nil {
		t.Error("replayed rotation accepted")
	}
	if rk.Generation() != 2 {
		t.Fatalf("generation after rotation %d", rk.Generation())
	}
	k.SetGeneration("population", 1) // backwards: ignored
	if rk.Generation() != 2 {
		t.Fatal("SetGeneration moved the generation backwards")
	}
	nw, _ := rk.Seal(a, []byte("v2"))
	if nw[4] != 2 {
		t.Fatalf("new write uses generation %d", nw[4])
	}
	for want, s := range map[string][]byte{"v1": old, "v2": nw} {
		got, err := rk.Open(a, s)
		if err != nil || string(got) != want {
			t.Fatalf("open %s after rotation: %v", want, err)
		}
	}
	// A keyring that has not applied the rotation refuses the new record
	// (it cannot know the generation exists) and still opens old ones.
	k.SetGeneration("population", 5)
	b, _ := rk.Blobs().Seal([32]byte{1}, []byte("blob"))
	if b[4] != 5 {
		t.Fatal("blob seal did not follow the generation")
	}
	// A generation set before the registry is first used applies to it.
	k.SetGeneration("land", 4)
	if g := k.Registry("land").Generation(); g != 4 {
		t.Fatalf("land generation %d, want 4", g)
	}
}

func TestKeyEventStrict(t *testing.T) {
	good := []KeyEvent{
		{Kind: KeyRotate, Guest: "g", Registry: "r", Generation: 2},
		{Kind: KeySiteKey, Guest: "g", Site: "s", KeyID: [32]byte{1}},
		{Kind: KeySiteShred, Guest: "g", Site: "s", KeyID: [32]byte{1}, Order: [32]byte{2}},
		{Kind: KeyCustody, Guest: "g", KeyID: [32]byte{1}, Commitment: [32]byte{3}},
		{Kind: KeySiteKey, Guest: "g", Site: "s", Generation: 2, KeyID: [32]byte{1}},
	}
	for _, e := range good {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
		var back KeyEvent
		if err := back.UnmarshalBinary(b); err != nil || back != e {
			t.Fatalf("%s roundtrip: %v", e.Kind, err)
		}
		if back.UnmarshalBinary(append(b, 0)) == nil || back.UnmarshalBinary(b[:len(b)-1]) == nil {
			t.Fatalf("%s: trailing or truncated bytes accepted", e.Kind)
		}
	}
	bad := []KeyEvent{
		{Kind: KeyRotate, Guest: "g", Registry: "r", Generation: 1},
		{Kind: KeyRotate, Guest: "g", Generation: 2},
		{Kind: KeySiteKey, Guest: "g", Site: "s"},
		{Kind: KeySiteShred, Guest: "g", Registry: "r", Site: "s", KeyID: [32]byte{1}},
		{Kind: 9, Guest: "g"},
		{Kind: KeyCustody, KeyID: [32]byte{1}},
		{Kind: KeyCustody, Guest: "g", KeyID: [32]byte{1}},
		{Kind: KeyRotate, Guest: "g", Registry: "r", Generation: 2, Commitment: [32]byte{3}},
		{Kind: KeySiteShred, Guest: "g", Site: "s", Generation: 2, KeyID: [32]byte{1}},
	}
	for _, e := range bad {
		if _, err := e.MarshalBinary(); err == nil {
			t.Errorf("invalid event %+v marshalled", e)
		}
	}
	k := newKeyring(t, "g")
	if err := k.ApplyKeyEvent(KeyEvent{Kind: KeyRotate, Guest: "other", Registry: "r", Generation: 2}); err == nil {
		t.Error("another guest's rotation applied")
	}
}

func TestBlindingStableAndSeparated(t *testing.T) {
	r := newRoot(t)
	k1 := NewKeyring("demo-republic", r)
	k1b := NewKeyring("demo-republic", r)
	k2 := NewKeyring("other-republic", r)
	pop, land := k1.Registry("population"), k1.Registry("land")
	if pop.BlindID("38512100001") != k1b.Registry("population").BlindID("38512100001") {
		t.Fatal("BlindID not stable for the same root, guest and registry")
	}
	if pop.BlindID("a") == pop.BlindID("b") {
		t.Fatal("distinct ids blind equal")
	}
	vals := map[string][32]byte{
		"pop id":        pop.BlindID("x"),
		"land id":       land.BlindID("x"),
		"other guest":   k2.Registry("population").BlindID("x"),
		"pop index":     pop.BlindIndex("", "x"),
		"pop index f":   pop.BlindIndex("surname", "x"),
		"land index f":  land.BlindIndex("surname", "x"),
		"pop commit":    pop.Commit([]byte("x")),
		"pop chunk id":  pop.Blobs().ChunkID([]byte("x")),
		"land chunk id": land.Blobs().ChunkID([]byte("x")),
	}
	seen := map[[32]byte]string{}
	for name, v := range vals {
		if prev, ok := seen[v]; ok {
			t.Errorf("%s equals %s", name, prev)
		}
		seen[v] = name
	}
	// Index framing: (field "ab", value "c") and (field "a", value "bc")
	// must differ.
	if pop.BlindIndex("ab", "c") == pop.BlindIndex("a", "bc") {
		t.Error("BlindIndex framing is ambiguous")
	}
	if pop.BlindIndex("surname", "x") != k1b.Registry("population").BlindIndex("surname", "x") {
		t.Error("BlindIndex not stable")
	}
	c := pop.Commit([]byte("record"))
	if !pop.VerifyCommit([]byte("record"), c) || pop.VerifyCommit([]byte("record!"), c) || land.VerifyCommit([]byte("record"), c) {
		t.Error("VerifyCommit wrong")
	}
	a := ad("population")
	a2 := a
	a2.Version++
	if pop.CommitRecord(a, []byte("same")) == pop.CommitRecord(a2, []byte("same")) {
		t.Error("CommitRecord equal across versions: leaks equal plaintexts")
	}
	a3 := a
	a3.Epoch++
	if pop.CommitRecord(a, []byte("same")) != pop.CommitRecord(a3, []byte("same")) {
		t.Error("CommitRecord depends on the epoch")
	}
	if !pop.VerifyCommitRecord(a, []byte("same"), pop.CommitRecord(a, []byte("same"))) {
		t.Error("VerifyCommitRecord rejects a good commitment")
	}
}

func TestBlobKeys(t *testing.T) {
	k := newKeyring(t, "demo-republic")
	b := k.Registry("land").Blobs()
	data := bytes.Repeat([]byte("parcel "), 5000)
	id := b.ChunkID(data)
	s1, err := b.Seal(id, data)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := b.Seal(id, data)
	if bytes.Equal(s1, s2) {
		t.Fatal("two seals equal")
	}
	got, err := b.Open(id, s1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("blob roundtrip", err)
	}
	other := id
	other[0] ^= 1
	if _, err := b.Open(other, s1); !errors.Is(err, ErrAuth) {
		t.Errorf("opened under another id: %v", err)
	}
	if _, err := k.Registry("population").Blobs().Open(id, s1); !errors.Is(err, ErrAuth) {
		t.Errorf("opened with another registry's blob keys: %v", err)
	}
	for _, i := range []int{0, 4, 10, len(s1) / 2, len(s1) - 1} {
		c := bytes.Clone(s1)
		c[i] ^= 0x10
		if _, err := b.Open(id, c); err == nil {
			t.Errorf("byte %d flipped: opened", i)
		}
	}
}

func TestSiteKeyWrapAndLayer(t *testing.T) {
	r := newRoot(t)
	k := NewKeyring("demo-republic", r)
	sk, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	w, err := k.WrapSiteKey("embassy-lu", sk)
	if err != nil || len(w) != 61 {
		t.Fatalf("wrap: %v, %d bytes", err, len(w))
	}
	w2, _ := k.WrapSiteKey("embassy-lu", sk)
	if bytes.Equal(w, w2) {
		t.Fatal("two wraps equal")
	}
	back, err := k.UnwrapSiteKey("embassy-lu", w)
	if err != nil || back.key != sk.key || back.ID() != sk.ID() {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := k.UnwrapSiteKey("embassy-ee", w); !errors.Is(err, ErrAuth) {
		t.Errorf("unwrapped as another site: %v", err)
	}
	if _, err := NewKeyring("other", r).UnwrapSiteKey("embassy-lu", w); !errors.Is(err, ErrAuth) {
		t.Errorf("unwrapped as another guest: %v", err)
	}
	if _, err := newKeyring(t, "demo-republic").UnwrapSiteKey("embassy-lu", w); !errors.Is(err, ErrAuth) {
		t.Errorf("unwrapped with another root: %v", err)
	}
	for i := range w {
		c := bytes.Clone(w)
		c[i] ^= 1
		if _, err := k.UnwrapSiteKey("embassy-lu", c); err == nil {
			t.Fatalf("wrapped byte %d flipped: unwrapped", i)
		}
	}
	// The outer layer composes with the blob layer: inner id stays the
	// store key, the outer AD binds the site.
	blob := k.Registry("land").Blobs()
	data := []byte("deed of parcel 12")
	id := blob.ChunkID(data)
	inner, _ := blob.Seal(id, data)
	outer, err := sk.Seal(SiteAD("demo-republic", "embassy-lu", id), inner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.Open(SiteAD("demo-republic", "embassy-ee", id), outer); !errors.Is(err, ErrAuth) {
		t.Errorf("outer layer opened for another site: %v", err)
	}
	in2, err := back.Open(SiteAD("demo-republic", "embassy-lu", id), outer)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := blob.Open(id, in2); err != nil || !bytes.Equal(got, data) {
		t.Fatal("layers do not compose", err)
	}
	// A site key is not derivable from R: two fresh keys differ and a new
	// keyring from the same root does not produce them.
	sk2, _ := NewSiteKey()
	if sk2.key == sk.key {
		t.Fatal("site keys repeat")
	}
}

func TestKeyringConcurrent(t *testing.T) {
	k := newKeyring(t, "demo-republic")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("reg-%d", g%3)
			for i := range 200 {
				rk := k.Registry(name)
				a := RecordAD{Guest: "demo-republic", Registry: name, BlindID: rk.BlindID(fmt.Sprint(i)), Version: uint64(i)}
				s, err := rk.Seal(a, []byte("p"))
				if err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					k.SetGeneration(name, uint32(i/50+1))
				}
				if _, err := rk.Open(a, s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRegistryNameTooLong(t *testing.T) {
	k := newKeyring(t, "g")
	long := strings.Repeat("r", 70000)
	rk := k.Registry(long)
	if _, err := rk.Seal(RecordAD{Guest: "g", Registry: long}, []byte("x")); err == nil {
		t.Fatal("sealed under an unframeable registry name")
	}
	if rk.BlindID("x") != ([32]byte{}) {
		t.Fatal("blinded under an unframeable registry name")
	}
}

// TestOldRecordFormatRefused: a record in format 1 (whose AD bound no
// kind, index values or attachments) or format 2 (whose plaintext was not
// padded) is refused by name, not misread.
func TestOldRecordFormatRefused(t *testing.T) {
	rk := newKeyring(t, "demo-republic").Registry("population")
	for _, f := range []byte{0x01, 0x02} {
		sealed, err := rk.Seal(ad("population"), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		sealed[0] = f
		if _, err := rk.Open(ad("population"), sealed); !errors.Is(err, ErrOldRecordFormat) || !strings.Contains(err.Error(), fmt.Sprintf("format %d", f)) {
			t.Fatalf("format %d record: %v", f, err)
		}
	}
}

// TestSealedRecordLengthPadded: a sealed record's size gives its
// plaintext's length only to within Padmé's rounding. Bodies of 1000 to
// 1019 bytes (one Padmé bucket) seal to one size, so which of them a
// host holds does not show; the padding never exceeds Padmé's bound.
func TestSealedRecordLengthPadded(t *testing.T) {
	rk := newKeyring(t, "demo-republic").Registry("population")
	sizes := map[int]bool{}
	for n := 1000; n < 1020; n++ {
		sealed, err := rk.Seal(ad("population"), bytes.Repeat([]byte{'y'}, n))
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(sealed)] = true
	}
	if len(sizes) != 1 {
		t.Fatalf("20 body lengths in one Padmé bucket sealed to %d sizes: %v", len(sizes), sizes)
	}
	for n := 0; n < 300; n++ {
		sealed, err := rk.Seal(ad("population"), bytes.Repeat([]byte{'z'}, n))
		if err != nil {
			t.Fatal(err)
		}
		if p := len(sealed) - 33; p != padme.Len(4+n) || p-4-n > (4+n)/8+1 {
			t.Fatalf("body of %d bytes sealed with %d bytes of padding", n, p-4-n)
		}
	}
}
