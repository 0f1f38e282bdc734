package guest

import (
	"errors"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/seal"
)

// TestResealWipes: sealing an active site (chancery seal, a failback's
// hand-over, a revocation) wipes what it held — the keyring derived from
// the root, every site outer key, an open unseal session, the wrapped keys
// handed over — so that nothing of them is reachable through the site
// afterwards.
func TestResealWipes(t *testing.T) {
	for name, wipe := range map[string]func(*Guest){
		"reseal (failback, revocation)": (*Guest).resealLocked,
		"chancery seal":                 (*Guest).wipeKeysLocked,
	} {
		t.Run(name, func(t *testing.T) { testWipes(t, wipe) })
	}
}

func testWipes(t *testing.T, wipe func(*Guest)) {
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring("demo-republic", root)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := seal.Split("demo-republic", root, 1, []seal.Custodian{{ID: "c1", Recipient: id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	root.Wipe()
	sess, err := continuity.NewUnsealSession(pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	north, _ := seal.NewSiteKey()
	south, _ := seal.NewSiteKey()
	outer := &outerKeys{}
	outer.set("embassy-north", north)
	outer.set("embassy-south", south)
	wrapped := []byte("wrapped outer key bytes")
	a := &activation{local: &Local{Keys: keys}, session: sess, outer: outer, wrapped: map[string][]byte{"embassy-north": wrapped}}
	tn := &Guest{act: a}
	wipe(tn)

	if _, err := keys.ChunkerSeed(); !errors.Is(err, seal.ErrWiped) {
		t.Errorf("keyring after seal: %v, want ErrWiped", err)
	}
	for name, k := range map[string]*seal.SiteKey{"north": north, "south": south} {
		if _, err := k.Seal([]byte("ad"), []byte("x")); !errors.Is(err, seal.ErrWiped) {
			t.Errorf("%s outer key after seal: %v, want ErrWiped", name, err)
		}
	}
	if _, _, err := sess.Submit([]byte("x")); !errors.Is(err, continuity.ErrSessionClosed) {
		t.Errorf("unseal session after seal: %v, want closed", err)
	}
	for i, b := range wrapped {
		if b != 0 {
			t.Fatalf("handed-over wrapped key byte %d not zeroed", i)
		}
	}
	if a.local != nil || a.session != nil || len(a.wrapped) != 0 {
		t.Error("the activation still references what it held")
	}
}
