package found

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	pgconnect "github.com/chancery-gov/chancery/connect/postgres"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// initState founds the Demo Republic in a new directory.
func initState(t *testing.T) (*charter.Charter, state.Layout, keyfile.Protector) {
	t.Helper()
	dir := t.TempDir()
	p := keyfile.Protector{Passphrase: []byte("state test passphrase"), WorkFactor: 10}
	c, err := Init(context.Background(), InitOptions{Dir: dir, Protector: p})
	if err != nil {
		t.Fatal(err)
	}
	return c, state.Layout{Dir: dir}, p
}

func TestInitDemoRepublic(t *testing.T) {
	c, l, p := initState(t)
	back, err := charter.ReadFile(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	if back.HashHex() != c.HashHex() {
		t.Fatal("charter on disk differs from the one Init returned")
	}
	if err := charter.VerifySignatures(back, nil); err != nil {
		t.Fatalf("charter as written does not verify: %v", err)
	}

	// Every private key is sealed, private to its owner, and matches the
	// public key the charter publishes.
	seeds := 0
	err = filepath.WalkDir(l.Keys(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, _ := d.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		raw, _ := os.ReadFile(path)
		if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")) {
			t.Errorf("%s is not an age envelope", path)
		}
		if bytes.Contains(raw, []byte("chancery-key/v1")) || bytes.Contains(raw, []byte("AGE-SECRET-KEY")) {
			t.Errorf("%s holds key material in clear", path)
		}
		seeds++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(c.Hosts) + 2*len(c.Sites) + len(c.Officials) + len(c.Custodians.Members); seeds != want {
		t.Fatalf("%d key files, want %d", seeds, want)
	}
	for _, o := range c.Officials {
		priv, err := keyfile.ReadEd25519(l.Key("official", o.ID), p)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)); got != o.Key {
			t.Errorf("official %s: key file does not match the charter", o.ID)
		}
	}
	for _, m := range c.Custodians.Members {
		id, err := keyfile.ReadAgeIdentity(l.Key("custodian", m.ID), p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Recipient, "age1") || id == nil {
			t.Errorf("custodian %s: recipient %q", m.ID, m.Recipient)
		}
	}

	// The custodians' shares rebuild the root key the home holds.
	root, err := seal.ReadRootKeyFile(l.RootKey(), p.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := seal.ReadCustodyPackageFile(l.Custody())
	if err != nil {
		t.Fatal(err)
	}
	var shares []*seal.Share
	for _, m := range c.Custodians.Members[:c.Custodians.Threshold] {
		id, _ := keyfile.ReadAgeIdentity(l.Key("custodian", m.ID), p)
		sh, err := pkg.OpenShare(m.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, sh)
	}
	rebuilt, err := pkg.Combine(shares)
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := seal.NewKeyring(c.Guest.ID, root), seal.NewKeyring(c.Guest.ID, rebuilt)
	if k1.Registry("population").BlindID("x") != k2.Registry("population").BlindID("x") {
		t.Fatal("the custodians' shares rebuild another root key than the home's")
	}
	// The charter publishes the state keys an activated embassy derives
	// from the rebuilt root: what it signs verifies with the charter alone.
	for _, sp := range StateKeyPurposes() {
		s, err := k2.StateSigner(sp.Purpose, sp.Alg, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, pub, err := c.StateKeyFor(sp.Purpose)
		if err != nil {
			t.Fatal(err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(s.Public()) {
			t.Errorf("charter state key %s is not the one the rebuilt root derives", sp.Purpose)
		}
	}

	if _, err := Init(context.Background(), InitOptions{Dir: l.Dir, Protector: p}); err == nil {
		t.Fatal("Init over an existing state succeeded")
	}
	if found, _ := state.FindCharter(l.Ledger("home")); found != l.Charter() {
		t.Fatalf("FindCharter from the ledger found %q", found)
	}
}

// TestInitAnchorsCustody: founding pins the custody package in the charter
// (its id and root commitment, signed like the rest) and records the same
// two values in the home ledger as a custody key event, entry 1 after the
// charter. The root commitment is the package's hash check value, never
// a group element.
func TestInitAnchorsCustody(t *testing.T) {
	c, l, p := initState(t)
	pkg, err := seal.ReadCustodyPackageFile(l.Custody())
	if err != nil {
		t.Fatal(err)
	}
	pid, rc := pkg.PackageID(), pkg.RootCommitment()
	if c.Custodians.Package != hex.EncodeToString(pid[:]) || c.Custodians.Commitment != hex.EncodeToString(rc[:]) {
		t.Fatalf("charter pins package %q commitment %q, the package is %x, %x", c.Custodians.Package, c.Custodians.Commitment, pid, rc)
	}
	root, err := seal.ReadRootKeyFile(l.RootKey(), p.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	if want, err := root.Commitment(); err != nil || want != rc {
		t.Fatalf("the pinned commitment is not the root's: %v", err)
	}
	root.Wipe()

	f := ledger.DirFetcher(l.Ledger("home"))
	var entries []ledger.Entry
	cp, err := f.Fetch(context.Background(), ledger.CheckpointPath)
	if err != nil {
		t.Fatal(err)
	}
	head, err := ledger.ParseSignedCheckpoint(cp)
	if err != nil || head.Size != FoundingEntries {
		t.Fatalf("home ledger of %d entries after founding, want %d: %v", head.Size, FoundingEntries, err)
	}
	if err := ledger.Scan(context.Background(), f, 0, head.Size, func(_ uint64, raw []byte) error {
		e, err := ledger.DecodeEntry(raw)
		entries = append(entries, e)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if entries[0].Type != ledger.TypeCharter || !bytes.Equal(entries[0].Payload, c.CanonicalBytes()) {
		t.Fatalf("entry 0 is a %s, not the charter", entries[0].Type)
	}
	var ev seal.KeyEvent
	if entries[1].Type != ledger.TypeKeyEvent || ev.UnmarshalBinary(entries[1].Payload) != nil {
		t.Fatalf("entry 1 is a %s, not a key event", entries[1].Type)
	}
	if ev.Kind != seal.KeyCustody || ev.Guest != c.Guest.ID || ev.KeyID != pid || ev.Commitment != rc {
		t.Fatalf("custody event %+v does not anchor package %x", ev, pid)
	}

	// A fixture that asks for no ledger gets none.
	bare := t.TempDir()
	if _, err := Init(context.Background(), InitOptions{Dir: bare, Protector: p, NoLedger: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state.Layout{Dir: bare}.Ledger("home"), ledger.CheckpointPath)); err == nil {
		t.Fatal("NoLedger founded a ledger")
	}
}

// TestDemoCharterMapsPostgres: the demo charter's services.postgres
// decodes as the connector's configuration, validates, and names
// registries the charter declares at every site.
func TestDemoCharterMapsPostgres(t *testing.T) {
	c := demoCharter()
	var cfg pgconnect.Config
	ok, err := c.Service("postgres", &cfg)
	if err != nil || !ok {
		t.Fatalf("services.postgres: present %v, %v", ok, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{cfg.StateRegistry, cfg.Tables[0].Registry} {
		r, ok := c.Registry(name)
		if !ok || len(r.Sites) != len(c.Sites) {
			t.Errorf("registry %s: declared %v, at %v", name, ok, r.Sites)
		}
	}
}
