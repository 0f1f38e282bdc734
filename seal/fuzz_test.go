package seal

import (
	"bytes"
	"testing"
)

func FuzzParseCustodyPackage(f *testing.F) {
	r := newRoot(f)
	ck := custodians(f, 3, true)
	p, err := Split("demo-republic", r, 2, ck.list)
	if err != nil {
		f.Fatal(err)
	}
	enc, _ := p.Marshal()
	f.Add(enc)
	f.Add(enc[:len(custodyMagic)+20])
	f.Add([]byte(custodyMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseCustodyPackage(b)
		if err != nil {
			return
		}
		// Whatever parses is canonical: it re-encodes to the same bytes.
		re, err := p.Marshal()
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("parsed package does not re-encode identically: %v", err)
		}
		if len(p.entries) < 1 || p.threshold < 1 || p.threshold > len(p.entries) {
			t.Fatal("parsed package violates its invariants")
		}
	})
}

func FuzzParseShare(f *testing.F) {
	r := newRoot(f)
	ck := custodians(f, 2, false)
	p, _ := Split("demo-republic", r, 2, ck.list)
	s, err := p.OpenShare(ck.list[0].ID, ck.ids[ck.list[0].ID])
	if err != nil {
		f.Fatal(err)
	}
	enc, _ := s.Marshal()
	f.Add(enc)
	f.Add([]byte(shareMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShare(b)
		if err != nil {
			return
		}
		re, err := s.Marshal()
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("parsed share does not re-encode identically: %v", err)
		}
		// Verification of arbitrary shares never panics and, but for the
		// seed, never succeeds.
		if p.VerifyShare(s) == nil && !bytes.Equal(b, enc) {
			t.Fatal("a fuzzed share verified")
		}
	})
}

func FuzzOpen(f *testing.F) {
	k := newKeyring(f, "demo-republic")
	k.SetGeneration("population", 2)
	rk := k.Registry("population")
	a := ad("population")
	sealed, _ := rk.Seal(a, []byte("record"))
	blob, _ := rk.Blobs().Seal([32]byte{1}, []byte("chunk"))
	sk, _ := NewSiteKey()
	outer, _ := sk.Seal([]byte("ad"), []byte("x"))
	wrapped, _ := k.WrapSiteKey("s", sk)
	for _, seed := range [][]byte{sealed, blob, outer, wrapped, nil, {1}, {1, 0, 0, 0, 9}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// None of these may panic; none may open what it did not seal.
		if pt, err := rk.Open(a, b); err == nil && !bytes.Equal(b, sealed) {
			t.Fatalf("opened fuzzed record: %q", pt)
		}
		if _, err := rk.Blobs().Open([32]byte{1}, b); err == nil && !bytes.Equal(b, blob) {
			t.Fatal("opened fuzzed blob")
		}
		if _, err := sk.Open([]byte("ad"), b); err == nil && !bytes.Equal(b, outer) {
			t.Fatal("opened fuzzed site layer")
		}
		if _, err := k.UnwrapSiteKey("s", b); err == nil && !bytes.Equal(b, wrapped) {
			t.Fatal("unwrapped fuzzed site key")
		}
		var ev KeyEvent
		if ev.UnmarshalBinary(b) == nil {
			re, err := ev.MarshalBinary()
			if err != nil || !bytes.Equal(re, b) {
				t.Fatal("key event does not re-encode identically")
			}
		}
	})
}
