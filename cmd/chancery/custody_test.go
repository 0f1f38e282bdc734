package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
)

// custodyFixture founds a Demo Republic (signed charter, five custodians
// with sealed age identities, threshold 3), a root key, and the one-time
// unseal identity of an activating site.
type custodyFixture struct {
	dir, passFile, root, charter string
	rootPassFile                 string
	siteKey, siteRcpt            string
	layout                       state.Layout
}

func newCustodyFixture(t *testing.T) custodyFixture {
	t.Helper()
	dir := t.TempDir()
	pass := []byte("custody test passphrase")
	prot := keyfile.Protector{Passphrase: pass, WorkFactor: 10}
	if _, err := found.Init(context.Background(), found.InitOptions{Dir: filepath.Join(dir, "state"), Protector: prot}); err != nil {
		t.Fatal(err)
	}
	f := custodyFixture{dir: dir, passFile: filepath.Join(dir, "pass"), root: filepath.Join(dir, "root.key"), layout: state.Layout{Dir: filepath.Join(dir, "state")}}
	f.charter = f.layout.Charter()
	if err := os.WriteFile(f.passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	f.rootPassFile = filepath.Join(dir, "root-pass")
	if err := os.WriteFile(f.rootPassFile, []byte("rebuilt root passphrase"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runCustodyNewRoot(&out, custodyNewRootOptions{Out: f.root, PassphraseFile: f.passFile, WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	site, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f.siteKey, f.siteRcpt = filepath.Join(dir, "site-unseal.key"), site.Recipient().String()
	if err := keyfile.WriteAgeIdentity(f.siteKey, site.String(), prot); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f custodyFixture) split(t *testing.T, out string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := runCustodySplit(&buf, custodySplitOptions{Charters: []string{f.charter}, RootKey: f.root, Out: out, PassphraseFile: f.passFile}); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// export runs `custody verify --export` for custodian id and returns the
// share file.
func (f custodyFixture) export(t *testing.T, pkg, id string) string {
	t.Helper()
	share := filepath.Join(f.dir, filepath.Base(pkg)+"."+id+".share")
	var buf bytes.Buffer
	err := runCustodyVerify(&buf, custodyVerifyOptions{Package: pkg, Custodian: id, Identity: f.layout.Key("custodian", id), PassphraseFile: f.passFile, Export: share, To: f.siteRcpt})
	if err != nil {
		t.Fatal(err)
	}
	return share
}

func TestCustodyCommandsRoundtrip(t *testing.T) {
	f := newCustodyFixture(t)
	pkg := filepath.Join(f.dir, "custody.pkg")
	out := f.split(t, pkg)
	for _, want := range []string{"guest demo-republic", "3 of 5 custodians", "root commitment"} {
		if !strings.Contains(out, want) {
			t.Errorf("split output lacks %q:\n%s", want, out)
		}
	}
	p, err := seal.ReadCustodyPackageFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, c := range p.Custodians() {
		ids = append(ids, c.ID)
	}

	// A custodian checks their share: the output says it verifies and
	// shows no secret.
	var buf bytes.Buffer
	if err := runCustodyVerify(&buf, custodyVerifyOptions{Package: pkg, Custodian: ids[0], Identity: f.layout.Key("custodian", ids[0]), PassphraseFile: f.passFile}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "verifies against the package's commitment") {
		t.Errorf("verify output: %s", buf.String())
	}

	var shares []string
	for _, id := range []string{ids[4], ids[1], ids[3]} {
		shares = append(shares, f.export(t, pkg, id))
	}
	// One passphrase for the identity and the rebuilt root is refused
	// before anything is opened.
	err = runCustodyCombine(&buf, custodyCombineOptions{Package: pkg, Shares: shares, Identity: f.siteKey, Out: filepath.Join(f.dir, "same.key"), PassphraseFile: f.passFile, OutPassphraseFile: f.passFile, WorkFactor: 10})
	if err == nil || !strings.Contains(err.Error(), "is the identity's") {
		t.Fatalf("combine with one passphrase for both files: %v", err)
	}
	// Two shares are not enough.
	err = runCustodyCombine(&buf, custodyCombineOptions{Package: pkg, Shares: shares[:2], Identity: f.siteKey, Out: filepath.Join(f.dir, "few.key"), PassphraseFile: f.passFile, OutPassphraseFile: f.rootPassFile, WorkFactor: 10})
	if !errors.Is(err, seal.ErrTooFewShares) {
		t.Fatalf("combine of 2 of threshold 3: %v", err)
	}
	rebuilt := filepath.Join(f.dir, "rebuilt.key")
	buf.Reset()
	if err := runCustodyCombine(&buf, custodyCombineOptions{Package: pkg, Shares: shares, Identity: f.siteKey, Out: rebuilt, PassphraseFile: f.passFile, OutPassphraseFile: f.rootPassFile, WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	pass, _ := os.ReadFile(f.passFile)
	orig, err := seal.ReadRootKeyFile(f.root, pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.ReadRootKeyFile(rebuilt, pass); err == nil {
		t.Fatal("rebuilt root opens with the identity's passphrase")
	}
	rootPass, _ := os.ReadFile(f.rootPassFile)
	got, err := seal.ReadRootKeyFile(rebuilt, rootPass)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := orig.Commitment()
	c2, _ := got.Commitment()
	// Same root ⇔ same commitment and same derived keys.
	if c1 != c2 || seal.NewKeyring("g", orig).Registry("r").BlindID("x") != seal.NewKeyring("g", got).Registry("r").BlindID("x") {
		t.Fatal("combined root differs from the original")
	}
	if !strings.Contains(buf.String(), "matches the package") {
		t.Errorf("combine output: %s", buf.String())
	}
}

func TestCustodyCommandsRefuse(t *testing.T) {
	f := newCustodyFixture(t)
	pkg := filepath.Join(f.dir, "custody.pkg")
	f.split(t, pkg)
	p, _ := seal.ReadCustodyPackageFile(pkg)
	ids := []string{}
	for _, c := range p.Custodians() {
		ids = append(ids, c.ID)
	}
	var buf bytes.Buffer

	// Never overwrite a package.
	if err := runCustodySplit(&buf, custodySplitOptions{Charters: []string{f.charter}, RootKey: f.root, Out: pkg, PassphraseFile: f.passFile}); err == nil {
		t.Error("split overwrote a package")
	}
	// A charter whose signatures do not hold decides nothing.
	raw, _ := os.ReadFile(f.charter)
	forged := filepath.Join(f.dir, "forged.yaml")
	os.WriteFile(forged, bytes.Replace(raw, []byte("threshold: 3"), []byte("threshold: 1"), 1), 0o644)
	if err := runCustodySplit(&buf, custodySplitOptions{Charters: []string{forged}, RootKey: f.root, Out: filepath.Join(f.dir, "x.pkg"), PassphraseFile: f.passFile}); err == nil {
		t.Error("split under a forged charter")
	}
	// Another custodian's identity cannot open a share.
	if err := runCustodyVerify(&buf, custodyVerifyOptions{Package: pkg, Custodian: ids[0], Identity: f.layout.Key("custodian", ids[1]), PassphraseFile: f.passFile}); err == nil || !strings.Contains(err.Error(), ids[0]) {
		t.Errorf("verify with another custodian's identity: %v", err)
	}
	// A share is never exported in clear.
	if err := runCustodyVerify(&buf, custodyVerifyOptions{Package: pkg, Custodian: ids[0], Identity: f.layout.Key("custodian", ids[0]), PassphraseFile: f.passFile, Export: filepath.Join(f.dir, "clear.share")}); err == nil {
		t.Error("export without --to")
	}
	if _, err := os.Stat(filepath.Join(f.dir, "clear.share")); err == nil {
		t.Error("a share file was written without a recipient")
	}
	// Shares of another split are refused and named by custodian.
	pkg2 := filepath.Join(f.dir, "custody2.pkg")
	f.split(t, pkg2)
	var shares []string
	for _, id := range ids[:3] {
		shares = append(shares, f.export(t, pkg, id))
	}
	err := runCustodyCombine(&buf, custodyCombineOptions{Package: pkg2, Shares: shares, Identity: f.siteKey, Out: filepath.Join(f.dir, "r.key"), PassphraseFile: f.passFile, OutPassphraseFile: f.rootPassFile, WorkFactor: 10})
	if !errors.Is(err, seal.ErrWrongPackage) || !strings.Contains(err.Error(), ids[0]) {
		t.Errorf("combine with another package's shares: %v", err)
	}
	// The same custodian's share twice does not count twice.
	err = runCustodyCombine(&buf, custodyCombineOptions{Package: pkg, Shares: []string{shares[0], shares[0], shares[1]}, Identity: f.siteKey, Out: filepath.Join(f.dir, "r2.key"), PassphraseFile: f.passFile, OutPassphraseFile: f.rootPassFile, WorkFactor: 10})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("combine with a repeated share: %v", err)
	}
}

func TestCustodyCommandHelp(t *testing.T) {
	cmd := newCustodyCmd()
	names := map[string]bool{}
	for _, c := range cmd.Commands() {
		names[c.Name()] = true
		if c.Long == "" || c.Short == "" {
			t.Errorf("%s lacks help", c.Name())
		}
	}
	for _, n := range []string{"split", "verify", "combine", "new-root"} {
		if !names[n] {
			t.Errorf("no custody %s", n)
		}
	}
}

// TestCustodyCombineChecksCharter: with --charter, combine refuses a
// package the charter does not pin (here a split of another root) before
// any share is opened.
func TestCustodyCombineChecksCharter(t *testing.T) {
	f := newCustodyFixture(t)
	pkg := filepath.Join(f.dir, "custody.pkg")
	f.split(t, pkg)
	var buf bytes.Buffer
	err := runCustodyCombine(&buf, custodyCombineOptions{Package: pkg, Shares: []string{filepath.Join(f.dir, "none.share")}, Identity: f.siteKey, Out: filepath.Join(f.dir, "r.key"),
		PassphraseFile: f.passFile, OutPassphraseFile: f.rootPassFile, WorkFactor: 10, Charters: []string{f.charter}})
	if !errors.Is(err, continuity.ErrCustodyNotPinned) {
		t.Fatalf("combine of a package the charter does not pin: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "r.key")); err == nil {
		t.Fatal("a root key was written")
	}
}
