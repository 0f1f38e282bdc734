package seal

import (
	"errors"
	"testing"

	"filippo.io/age"
)

// guardPackage splits a fresh root among three custodians, threshold 2.
func guardPackage(t *testing.T) (*CustodyPackage, custodianKeys) {
	t.Helper()
	r, err := NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Wipe)
	ck := custodians(t, 3, false)
	p, err := Split("demo-republic", r, 2, ck.list)
	if err != nil {
		t.Fatal(err)
	}
	return p, ck
}

// TestVerifyShareRefusesWiped: no share, or a wiped one, does not verify.
// (Found by mutation testing.)
func TestVerifyShareRefusesWiped(t *testing.T) {
	p, ck := guardPackage(t)
	if err := p.VerifyShare(nil); !errors.Is(err, ErrWiped) {
		t.Fatalf("no share: %v", err)
	}
	s := openAll(t, p, ck)[0]
	if err := p.VerifyShare(s); err != nil {
		t.Fatal(err)
	}
	s.Wipe()
	if err := p.VerifyShare(s); !errors.Is(err, ErrWiped) {
		t.Fatalf("wiped share: %v", err)
	}
}

// TestOpenShareChecksWhatItOpens: a custodian's slot of the package must
// hold that custodian's share. A slot for nobody, a slot whose sealed
// bytes open to no share, and a slot holding another custodian's genuine
// share (resealed to this custodian, as whoever assembled the package
// could) are refused. (Found by mutation testing: the last would verify,
// since the share is sound for the custodian it names.)
func TestOpenShareChecksWhatItOpens(t *testing.T) {
	p, ck := guardPackage(t)
	a, b := ck.list[0], ck.list[1]
	if _, err := p.OpenShare("nobody", ck.ids[a.ID]); err == nil {
		t.Fatal("opened the share of a custodian not in the package")
	}
	rcptA, err := age.ParseX25519Recipient(a.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	slot, ok := p.entry(a.ID)
	if !ok {
		t.Fatal("no slot for a")
	}
	genuine := slot.sealed
	garbage, err := ageSeal([]byte("no share at all"), rcptA)
	if err != nil {
		t.Fatal(err)
	}
	slot.sealed = garbage
	if _, err := p.OpenShare(a.ID, ck.ids[a.ID]); err == nil {
		t.Fatal("opened a slot holding no share")
	}
	sb, err := p.OpenShare(b.ID, ck.ids[b.ID])
	if err != nil {
		t.Fatal(err)
	}
	swapped, err := sb.SealTo(rcptA)
	sb.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	slot.sealed = swapped
	var se *ShareError
	if s, err := p.OpenShare(a.ID, ck.ids[a.ID]); !errors.Is(err, ErrWrongPackage) || !errors.As(err, &se) || se.Custodian != a.ID {
		if s != nil {
			s.Wipe()
		}
		t.Fatalf("a's slot holding b's share: %v, want ErrWrongPackage naming %s", err, a.ID)
	}
	slot.sealed = genuine
	s, err := p.OpenShare(a.ID, ck.ids[a.ID])
	if err != nil {
		t.Fatalf("a's own share: %v", err)
	}
	s.Wipe()
}

// TestCommitRecordVerifies: a record commitment verifies only against the
// commitment of that plaintext under that ad. (Found by mutation testing:
// a mutant accepting every commitment survived.)
func TestCommitRecordVerifies(t *testing.T) {
	rk := newKeyring(t, "demo-republic").Registry("population")
	ad := RecordAD{Guest: "demo-republic", Registry: "population", Version: 1, Epoch: 1}
	c := rk.CommitRecord(ad, []byte("record"))
	if !rk.VerifyCommitRecord(ad, []byte("record"), c) {
		t.Fatal("the commitment of the record does not verify")
	}
	if rk.VerifyCommitRecord(ad, []byte("other record"), c) {
		t.Fatal("the commitment verifies another plaintext")
	}
	c[0] ^= 1
	if rk.VerifyCommitRecord(ad, []byte("record"), c) {
		t.Fatal("a changed commitment verifies")
	}
}

// TestSiteKeyOpenGuards: the outer layer opens nothing once its key is
// wiped, refuses input too short to hold a header and tag (without
// reading past it), and opens the sealing of nothing, which is exactly
// that long. A wrapped site key is not unwrapped for a site name that is
// no name. (Found by mutation testing.)
func TestSiteKeyOpenGuards(t *testing.T) {
	sk, err := NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	ad := SiteAD("demo-republic", "embassy-north", [32]byte{1})
	empty, err := sk.Seal(ad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := sk.Open(ad, empty); err != nil || len(pt) != 0 {
		t.Fatalf("the sealing of nothing (%d bytes): %q, %v", len(empty), pt, err)
	}
	if _, err := sk.Open(ad, empty[:len(empty)-1]); !errors.Is(err, ErrAuth) {
		t.Fatalf("one byte short: %v, want ErrAuth", err)
	}
	if _, err := sk.Open(ad, []byte{formatSiteV1}); !errors.Is(err, ErrAuth) {
		t.Fatalf("a lone format byte: %v, want ErrAuth", err)
	}
	k := newKeyring(t, "demo-republic")
	wrapped, err := k.WrapSiteKey("embassy-north", sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.UnwrapSiteKey("Not A Name!", wrapped); err == nil {
		t.Fatal("unwrapped for a site name that is no name")
	}
	sealed, err := sk.Seal(ad, []byte("chunk"))
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte{formatSiteV1 + 1}, sealed[1:]...)
	if _, err := sk.Open(ad, other); err == nil {
		t.Fatal("opened a sealing whose format byte is unknown")
	}
	sk.Wipe()
	if _, err := sk.Open(ad, sealed); !errors.Is(err, ErrWiped) {
		t.Fatalf("open after wipe: %v, want ErrWiped", err)
	}
}
