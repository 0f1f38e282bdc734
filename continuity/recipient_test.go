package continuity_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/seal"
)

// TestRecipientStatement: a custodian's tool accepts a session's
// recipient only as the site's signed statement under the charter; a
// recipient signed by any other key (a man in the middle's), for another
// guest, package or site, or expired, is refused.
func TestRecipientStatement(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	key := r.siteKey(t, "embassy-north")
	s, err := continuity.NewUnsealSession(c.pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Recipient(), "age1pq1") {
		t.Fatalf("session recipient %.12s…, want a hybrid age1pq1 recipient", s.Recipient())
	}
	signed, err := s.Statement("embassy-north", continuity.PurposeActivation, key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st, rcpt, err := continuity.VerifyRecipient(r.c, c.pkg, signed, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Recipient != s.Recipient() || st.Session != s.ID() || st.Site != "embassy-north" || rcpt.String() != s.Recipient() {
		t.Fatalf("statement %+v", st)
	}
	// The share sealed to the verified recipient opens at the session.
	sh, err := c.pkg.OpenShare(c.ord[0], c.ids[c.ord[0]])
	if err != nil {
		t.Fatal(err)
	}
	b, err := sh.SealTo(rcpt)
	sh.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Submit(b); err != nil {
		t.Fatal(err)
	}

	_, mitm, _ := ed25519.GenerateKey(nil)
	forged, err := s.Statement("embassy-north", continuity.PurposeActivation, mitm)
	if err != nil {
		t.Fatal(err)
	}
	other, err := continuity.NewUnsealSession(c.pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	swapped := bytes.Replace(signed, []byte(s.Recipient()), []byte(other.Recipient()), 1)
	home, err := s.Statement("home", continuity.PurposeActivation, key) // embassy-north's key, claiming home
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		raw  []byte
		now  time.Time
		want string
	}{
		"signed by another key":    {forged, now, "not site embassy-north's checkpoint key"},
		"recipient swapped":        {swapped, now, "not site embassy-north's checkpoint key"},
		"signed for another site":  {home, now, "not site home's checkpoint key"},
		"expired":                  {signed, now.Add(2 * time.Hour), "expired"},
		"a bare recipient":         {[]byte(s.Recipient()), now, "not a signed recipient statement"},
		"for another guest's tool": {signed, now, "charter"},
	} {
		ch := r.c
		if name == "for another guest's tool" {
			ch = r.other
		}
		if _, _, err := continuity.VerifyRecipient(ch, c.pkg, tc.raw, tc.now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestSiteKeyHandOff: a wrapped site key sealed to the session opens there
// for that site only; sealed to another session it does not.
func TestSiteKeyHandOff(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	key := r.siteKey(t, "embassy-north")
	s, _ := continuity.NewUnsealSession(c.pkg, time.Hour)
	defer s.Close()
	other, _ := continuity.NewUnsealSession(c.pkg, time.Hour)
	defer other.Close()
	signed, _ := s.Statement("embassy-north", continuity.PurposeActivation, key)
	st, _, err := continuity.VerifyRecipient(r.c, c.pkg, signed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrapped := []byte("wrapped outer key bytes")
	sealed, err := continuity.SealSiteKey(st, "embassy-south", wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, wrapped) {
		t.Fatal("the wrapped key is in clear in what is sent")
	}
	got, err := s.OpenSiteKey("embassy-south", sealed)
	if err != nil || !bytes.Equal(got, wrapped) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.OpenSiteKey("home", sealed); err == nil {
		t.Error("a key sealed for embassy-south was taken as home's")
	}
	if _, err := other.OpenSiteKey("embassy-south", sealed); err == nil {
		t.Error("another session opened the key")
	}
	if _, err := s.OpenSiteKey("embassy-south", wrapped); err == nil {
		t.Error("an unsealed wrapped key was accepted")
	}
}

// TestAttestDoesNotCombine: Attest reaches the threshold of verified
// shares, wipes them and closes the session, and needs the threshold.
func TestAttestDoesNotCombine(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	s, _ := continuity.NewUnsealSession(c.pkg, time.Hour)
	defer s.Close()
	if _, _, err := s.Submit(c.reseal(t, c.pkg, c.ord[0], s.Recipient())); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attest(); !errors.Is(err, seal.ErrTooFewShares) {
		t.Fatalf("attest below the threshold: %v", err)
	}
	for _, id := range c.ord[1:3] {
		if _, _, err := s.Submit(c.reseal(t, c.pkg, id, s.Recipient())); err != nil {
			t.Fatal(err)
		}
	}
	held := s.HeldShares()
	who, err := s.Attest()
	if err != nil || len(who) != 3 {
		t.Fatalf("attest: %v %v", who, err)
	}
	for i, sh := range held {
		if !scalarOf(t, sh).IsZero() {
			t.Errorf("share %d not wiped", i)
		}
	}
	if _, err := s.Combine(); !errors.Is(err, continuity.ErrSessionClosed) {
		t.Errorf("combine after attest: %v", err)
	}
}

// siteKey reads a site's checkpoint key from the demo state.
func (r *republic) siteKey(t *testing.T, site string) ed25519.PrivateKey {
	t.Helper()
	key, err := keyfile.ReadEd25519(r.layout.Key("site-checkpoint", site), r.prot)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestCustodyPinnedByCharter: a custodian's tool refuses to seal a share
// for a custody package the charter does not pin — here another split of
// the very same root, whose signed statement is otherwise in order — and
// CheckCustody names the mismatch. The founded package passes.
func TestCustodyPinnedByCharter(t *testing.T) {
	r := demo(t)
	c := r.custody(t)
	if err := continuity.CheckCustody(r.c, c.pkg); err != nil {
		t.Fatalf("the founded package: %v", err)
	}
	root, err := seal.ReadRootKeyFile(r.layout.RootKey(), r.prot.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	var cs []seal.Custodian
	for _, m := range r.c.Custodians.Members {
		cs = append(cs, seal.Custodian{ID: m.ID, Recipient: m.Recipient})
	}
	resplit, err := seal.Split(r.c.Guest.ID, root, r.c.Custodians.Threshold, cs)
	root.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := continuity.CheckCustody(r.c, resplit); !errors.Is(err, continuity.ErrCustodyNotPinned) {
		t.Fatalf("another split of the root: %v, want ErrCustodyNotPinned", err)
	}
	s, err := continuity.NewUnsealSession(resplit, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	signed, err := s.Statement("embassy-north", continuity.PurposeActivation, r.siteKey(t, "embassy-north"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := continuity.VerifyRecipient(r.c, resplit, signed, time.Now()); !errors.Is(err, continuity.ErrCustodyNotPinned) {
		t.Fatalf("recipient for an unpinned package: %v, want ErrCustodyNotPinned", err)
	}
	// A charter that pins nothing (signed before pinning) checks the guest only.
	old := *r.c
	old.Custodians.Package, old.Custodians.Commitment = "", ""
	if err := continuity.CheckCustody(&old, resplit); err != nil {
		t.Fatalf("charter pinning nothing: %v", err)
	}
	if err := continuity.CheckCustody(r.other, c.pkg); !errors.Is(err, continuity.ErrCustodyNotPinned) {
		t.Fatalf("another guest's charter: %v", err)
	}
}
