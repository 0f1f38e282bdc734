package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
)

// orderFixture is a founded Demo Republic and a passphrase file for its keys.
type orderFixture struct {
	dir, passFile string
	layout        state.Layout
}

func newOrderFixture(t *testing.T) orderFixture {
	t.Helper()
	dir := t.TempDir()
	pass := []byte("order test passphrase")
	f := orderFixture{dir: dir, passFile: filepath.Join(dir, "pass"), layout: state.Layout{Dir: filepath.Join(dir, "state")}}
	if _, err := found.Init(context.Background(), found.InitOptions{Dir: f.layout.Dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

var orderT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (f orderFixture) sign(t *testing.T, file, official string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	err := runOrderSign(&buf, orderSignOptions{File: file, Official: official, KeyFile: f.layout.Key("official", official), PassphraseFile: f.passFile})
	return buf.String(), err
}

func (f orderFixture) verify(t *testing.T, file string, epoch uint64, at time.Time) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	err := runOrderVerify(&buf, orderVerifyOptions{File: file, Charters: []string{f.layout.Charter()}, Epoch: epoch, Now: at})
	return buf.String(), err
}

// TestOrderProcedure walks an activation through the CLI as officials
// would: draft, sign one by one, check after each signature.
func TestOrderProcedure(t *testing.T) {
	f := newOrderFixture(t)
	file := filepath.Join(f.dir, "activate.order")
	var buf bytes.Buffer
	err := runOrderNew(&buf, orderNewOptions{Action: "activate", Charters: []string{f.layout.Charter()}, Site: "embassy-north",
		Registries: []string{"population", "land"}, Access: "read-write", Epoch: 2, Expires: "12h", Reason: "home lost", Out: file, Now: orderT0})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"activate embassy-north", "registries land,population", "read-write", "epoch 2", "unsigned", "2 of minister, cio"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("order new output lacks %q:\n%s", want, buf.String())
		}
	}
	if err := runOrderNew(&buf, orderNewOptions{Action: "drill", Charters: []string{f.layout.Charter()}, Site: "embassy-north", Epoch: 1, Expires: "1h", Out: file, Now: orderT0}); !errors.Is(err, os.ErrExist) {
		t.Errorf("order new over an existing file: %v", err)
	}

	at := orderT0.Add(time.Hour)
	out, err := f.verify(t, file, 1, at)
	if !errors.Is(err, continuity.ErrQuorum) || !strings.Contains(out, "none yet") || !strings.Contains(out, "quorum: NOT met") {
		t.Fatalf("unsigned order: %v\n%s", err, out)
	}
	if out, err := f.sign(t, file, "min-interior"); err != nil || !strings.Contains(out, "signers now: min-interior") {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	if _, err := f.sign(t, file, "min-interior"); err == nil || !strings.Contains(err.Error(), "min-interior has already signed") {
		t.Fatalf("second signature by one official: %v", err)
	}
	// A registrar's signature is good but counts for nothing on activate.
	if _, err := f.sign(t, file, "registrar"); err != nil {
		t.Fatal(err)
	}
	out, err = f.verify(t, file, 1, at)
	if !errors.Is(err, continuity.ErrQuorum) || !strings.Contains(out, "registrar (registrar): good, but holds no role in the activate rule") ||
		!strings.Contains(out, "need 2 of minister,cio, have 1") {
		t.Fatalf("with a minister and a registrar: %v\n%s", err, out)
	}
	if _, err := f.sign(t, file, "cio"); err != nil {
		t.Fatal(err)
	}
	out, err = f.verify(t, file, 1, at)
	if err != nil || !strings.Contains(out, "quorum: met") || !strings.Contains(out, "result: acceptable") || !strings.Contains(out, "cio (cio): good, counts") {
		t.Fatalf("with quorum: %v\n%s", err, out)
	}
	if out, err := f.verify(t, file, 0, at); err != nil || !strings.Contains(out, "epoch: not checked") {
		t.Fatalf("without --epoch: %v\n%s", err, out)
	}
	if _, err := f.verify(t, file, 2, at); !errors.Is(err, continuity.ErrEpoch) {
		t.Errorf("in epoch 2: %v", err)
	}
	if _, err := f.verify(t, file, 1, orderT0.Add(12*time.Hour)); !errors.Is(err, continuity.ErrExpired) {
		t.Errorf("after expiry: %v", err)
	}
	if _, err := f.verify(t, file, 1, orderT0.Add(-time.Second)); !errors.Is(err, continuity.ErrNotYetValid) {
		t.Errorf("before not-before: %v", err)
	}

	// The file is what a site receives: it parses to the same order.
	so, err := readOrderFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(so.Signers(), ","); got != "cio,min-interior,registrar" {
		t.Errorf("signers %s", got)
	}
	// Editing any field after signing breaks every signature.
	raw, _ := os.ReadFile(file)
	edited := filepath.Join(f.dir, "edited.order")
	if err := os.WriteFile(edited, bytes.Replace(raw, []byte(`"read-write"`), []byte(`"read-only"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := f.verify(t, edited, 1, at); !errors.Is(err, continuity.ErrSignature) || !strings.Contains(out, "REFUSED") {
		t.Errorf("edited order: %v\n%s", err, out)
	}
	// Reformatting is refused outright.
	if err := os.WriteFile(edited, bytes.Replace(raw, []byte(`,"`), []byte(`, "`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.verify(t, edited, 1, at); !errors.Is(err, continuity.ErrInvalid) {
		t.Errorf("reformatted order: %v", err)
	}
}

func TestOrderSignChecksKeyAgainstCharter(t *testing.T) {
	f := newOrderFixture(t)
	file := filepath.Join(f.dir, "drill.order")
	if err := runOrderNew(&bytes.Buffer{}, orderNewOptions{Action: "drill", Charters: []string{f.layout.Charter()}, Site: "embassy-south", Epoch: 1, Expires: "1h", Out: file}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := runOrderSign(&buf, orderSignOptions{File: file, Official: "cio", KeyFile: f.layout.Key("official", "registrar"), Charters: []string{f.layout.Charter()}, PassphraseFile: f.passFile})
	if err == nil || !strings.Contains(err.Error(), "is not the key charter demo-republic v1 gives official cio") {
		t.Fatalf("wrong key: %v", err)
	}
	err = runOrderSign(&buf, orderSignOptions{File: file, Official: "ghost", KeyFile: f.layout.Key("official", "cio"), Charters: []string{f.layout.Charter()}, PassphraseFile: f.passFile})
	if err == nil || !strings.Contains(err.Error(), "ghost is not an official") {
		t.Fatalf("unknown official: %v", err)
	}
	if err := runOrderSign(&buf, orderSignOptions{File: file, Official: "cio", KeyFile: f.layout.Key("official", "cio"), Charters: []string{f.layout.Charter()}, PassphraseFile: f.passFile}); err != nil {
		t.Fatal(err)
	}
	if out, err := f.verify(t, file, 1, time.Time{}); err != nil {
		t.Fatalf("drill signed by the cio: %v\n%s", err, out)
	}
}

func TestOrderNewRefuses(t *testing.T) {
	f := newOrderFixture(t)
	ch := []string{f.layout.Charter()}
	out := func(n string) string { return filepath.Join(f.dir, n) }
	for name, c := range map[string]struct {
		o    orderNewOptions
		want string
	}{
		"activate home":        {orderNewOptions{Action: "activate", Site: "home", Access: "read-only", Epoch: 2}, "site: home is the home site"},
		"activate no access":   {orderNewOptions{Action: "activate", Site: "embassy-north", Epoch: 2}, "access:"},
		"registry not there":   {orderNewOptions{Action: "activate", Site: "embassy-north", Access: "read-only", Registries: []string{"legal-acts"}, Epoch: 2}, "registries[0]: registry legal-acts is not placed at site embassy-north"},
		"unknown action":       {orderNewOptions{Action: "dissolve", Epoch: 1}, "action:"},
		"bad expires":          {orderNewOptions{Action: "drill", Site: "embassy-north", Epoch: 1, Expires: "soon"}, "--expires"},
		"negative expires":     {orderNewOptions{Action: "drill", Site: "embassy-north", Epoch: 1, Expires: "-1h"}, "--expires"},
		"bad not-before":       {orderNewOptions{Action: "drill", Site: "embassy-north", Epoch: 1, NotBefore: "tomorrow"}, "--not-before"},
		"new charter on drill": {orderNewOptions{Action: "drill", Site: "embassy-north", Epoch: 1, NewCharter: f.layout.Charter()}, "--new-charter is for --action amend"},
		"amend to itself":      {orderNewOptions{Action: "amend", Epoch: 1, NewCharter: f.layout.Charter()}, "not the version after"},
	} {
		c.o.Charters, c.o.Out = ch, out(strings.ReplaceAll(name, " ", "-"))
		if c.o.Expires == "" {
			c.o.Expires = "24h"
		}
		err := runOrderNew(&bytes.Buffer{}, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (want %q)", name, err, c.want)
		}
		if _, serr := os.Stat(c.o.Out); serr == nil {
			t.Errorf("%s: a file was written", name)
		}
	}
	if err := runOrderNew(&bytes.Buffer{}, orderNewOptions{Action: "drill", Site: "embassy-north", Epoch: 1, Expires: "1h", Out: out("x")}); err == nil {
		t.Error("order new without a charter")
	}
}

// TestCustodyResealToUnsealSession: three custodians re-seal their shares
// to an activated site's one-time unseal key with the CLI, after checking
// the site's signed statement of it against the charter; the site's
// session takes the files and rebuilds the home's root key. A bare
// recipient, or one signed by another key, is refused.
func TestCustodyResealToUnsealSession(t *testing.T) {
	f := newOrderFixture(t)
	pkg, err := seal.ReadCustodyPackageFile(f.layout.Custody())
	if err != nil {
		t.Fatal(err)
	}
	s, err := continuity.NewUnsealSession(pkg, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pass, err := os.ReadFile(f.passFile)
	if err != nil {
		t.Fatal(err)
	}
	siteKey, err := keyfile.ReadEd25519(f.layout.Key("site-checkpoint", "embassy-north"), keyfile.Protector{Passphrase: bytes.TrimSpace(pass)})
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := s.Statement("embassy-north", continuity.PurposeActivation, siteKey)
	if err != nil {
		t.Fatal(err)
	}
	stmtFile := filepath.Join(f.dir, "unseal-recipient.json")
	if err := os.WriteFile(stmtFile, stmt, 0o644); err != nil {
		t.Fatal(err)
	}
	_, mitmKey, _ := ed25519.GenerateKey(nil)
	forged, _ := s.Statement("embassy-north", continuity.PurposeActivation, mitmKey)
	forgedFile := filepath.Join(f.dir, "forged-recipient.json")
	if err := os.WriteFile(forgedFile, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	// unseal open (and drill) check the statement against the charter
	// before writing it for the custodians.
	answer := &siteapi.UnsealResponse{Session: s.ID(), Recipient: s.Recipient(), RecipientStatement: stmt}
	if err := writeRecipientStatement(filepath.Join(f.dir, "open.json"), f.layout.Charter(), answer); err != nil {
		t.Fatalf("unseal open: %v", err)
	}
	answer.RecipientStatement = forged
	if err := writeRecipientStatement(filepath.Join(f.dir, "open-forged.json"), f.layout.Charter(), answer); err == nil {
		t.Fatal("unseal open wrote a statement the site did not sign")
	}
	for _, c := range pkg.Custodians()[1:4] {
		file := filepath.Join(f.dir, c.ID+".share")
		var buf bytes.Buffer
		if err := runCustodyReseal(&buf, custodyResealOptions{Custody: f.layout.Custody(), Charter: f.layout.Charter(), Recipient: stmtFile, Custodian: c.ID, Identity: f.layout.Key("custodian", c.ID), Out: file, PassphraseFile: f.passFile}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "sealed to "+s.Recipient()) {
			t.Errorf("reseal output: %s", buf.String())
		}
		fi, err := os.Stat(file)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("share file: %v %v", fi, err)
		}
		b, _ := os.ReadFile(file)
		if _, _, err := s.Submit(b); err != nil {
			t.Fatal(err)
		}
	}
	root, err := s.Combine()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Wipe()
	if c, _ := root.Commitment(); c != pkg.RootCommitment() {
		t.Fatal("rebuilt root does not match the package")
	}

	ids := pkg.Custodians()
	base := custodyResealOptions{Custody: f.layout.Custody(), Charter: f.layout.Charter(), Recipient: stmtFile, Custodian: ids[0].ID, Identity: f.layout.Key("custodian", ids[0].ID), PassphraseFile: f.passFile}
	for name, c := range map[string]struct {
		mut  func(*custodyResealOptions)
		want string
	}{
		"a bare recipient, unsigned":  {func(o *custodyResealOptions) { o.Recipient, o.To = "", s.Recipient() }, "never to a bare --to"},
		"signed by another key":       {func(o *custodyResealOptions) { o.Recipient = forgedFile }, "not site embassy-north's checkpoint key"},
		"no statement file":           {func(o *custodyResealOptions) { o.Recipient = stmtFile + ".none" }, "--recipient"},
		"to a custodian's hybrid key": {func(o *custodyResealOptions) { o.To = ids[0].Recipient }, "--to is not the recipient"},
		"expired":                     {func(o *custodyResealOptions) { o.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } }, "expired"},
		"someone else's share":        {func(o *custodyResealOptions) { o.Custodian = ids[1].ID }, "custodian " + ids[1].ID},
		"unknown custodian":           {func(o *custodyResealOptions) { o.Custodian = "cust-nobody" }, "cust-nobody"},
	} {
		o := base
		o.Out = filepath.Join(f.dir, strings.ReplaceAll(name, " ", "-"))
		c.mut(&o)
		err := runCustodyReseal(&bytes.Buffer{}, o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
		if _, serr := os.Stat(o.Out); serr == nil {
			t.Errorf("%s: a file was written", name)
		}
	}
}

func TestOrderCommandHelp(t *testing.T) {
	root := newRootCmd()
	for _, path := range [][]string{{"order", "new"}, {"order", "sign"}, {"order", "verify"}, {"custody", "reseal"}} {
		cmd, _, err := root.Find(path)
		if err != nil || cmd.Name() != path[1] {
			t.Errorf("no %s: %v", strings.Join(path, " "), err)
			continue
		}
		if cmd.Short == "" || cmd.Long == "" || (path[0] == "order" && !strings.Contains(cmd.Short, "continuity procedure")) {
			t.Errorf("%s lacks help that places it in the continuity procedure", strings.Join(path, " "))
		}
	}
	cmd, _, _ := root.Find([]string{"custody", "reseal"})
	if !strings.Contains(cmd.Long, "unseal session") {
		t.Error("custody reseal help does not say what it is for")
	}
}

// TestOrderSignQuorumAndUnsign: sign with the charter says what the
// quorum still needs; a signature made without the charter, with another
// official's key, is refused by verify and removed by unsign, after which
// the right signature completes the order.
func TestOrderSignQuorumAndUnsign(t *testing.T) {
	f := newOrderFixture(t)
	ch := []string{f.layout.Charter()}
	file := filepath.Join(f.dir, "activate.order")
	if err := runOrderNew(&bytes.Buffer{}, orderNewOptions{Action: "activate", Charters: ch, Site: "embassy-north", Access: "read-write", Epoch: 2, Expires: "1h", Out: file}); err != nil {
		t.Fatal(err)
	}
	sign := func(official, key string, charters []string) (string, error) {
		var buf bytes.Buffer
		err := runOrderSign(&buf, orderSignOptions{File: file, Official: official, KeyFile: f.layout.Key("official", key), Charters: charters, PassphraseFile: f.passFile})
		return buf.String(), err
	}
	out, err := sign("min-interior", "min-interior", ch)
	if err != nil || !strings.Contains(out, "quorum: not met yet: activate needs 2") || !strings.Contains(out, "need 2 of minister,cio, have 1") {
		t.Fatalf("first signature: %v\n%s", err, out)
	}
	// Without a charter the key is not checked: the registrar's key signs
	// as the cio, and sign says that nothing was checked.
	out, err = sign("cio", "registrar", nil)
	if err != nil || !strings.Contains(out, "not checked against a charter") {
		t.Fatalf("unchecked signature: %v\n%s", err, out)
	}
	if out, err := f.verify(t, file, 1, time.Time{}); !errors.Is(err, continuity.ErrSignature) || !strings.Contains(out, "cio: REFUSED") {
		t.Fatalf("verify with the bad signature: %v\n%s", err, out)
	}
	var buf bytes.Buffer
	if err := runOrderUnsign(&buf, orderUnsignOptions{File: file, Officials: []string{"registrar"}}); err == nil || !strings.Contains(err.Error(), "registrar has not signed") {
		t.Fatalf("unsign of a signer who did not sign: %v", err)
	}
	if err := runOrderUnsign(&buf, orderUnsignOptions{File: file, Refused: true}); err == nil || !strings.Contains(err.Error(), "--refused needs the charter") {
		t.Fatalf("unsign --refused without a charter: %v", err)
	}
	buf.Reset()
	if err := runOrderUnsign(&buf, orderUnsignOptions{File: file, Refused: true, Charters: ch}); err != nil ||
		!strings.Contains(buf.String(), "removed the signature of cio; signers now: min-interior") || !strings.Contains(buf.String(), "need 2 of minister,cio, have 1") {
		t.Fatalf("unsign --refused: %v\n%s", err, buf.String())
	}
	out, err = sign("cio", "cio", ch)
	if err != nil || !strings.Contains(out, "quorum: met") {
		t.Fatalf("the cio's own signature: %v\n%s", err, out)
	}
	if out, err := f.verify(t, file, 1, time.Time{}); err != nil {
		t.Fatalf("verify after unsign and the right signature: %v\n%s", err, out)
	}
	// --official removes one named signature.
	buf.Reset()
	if err := runOrderUnsign(&buf, orderUnsignOptions{File: file, Officials: []string{"cio"}, Charters: ch}); err != nil || !strings.Contains(buf.String(), "signers now: min-interior") {
		t.Fatalf("unsign --official cio: %v\n%s", err, buf.String())
	}
}

// TestOrderSubmitActivationElsewhere: an activation submitted to an
// embassy it does not activate is refused by the site with the writer it
// knows (the home, which may be lost); the CLI names the site the order
// activates, its address from the charter, and the command for it.
func TestOrderSubmitActivationElsewhere(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := homeState(t)
	l := state.Layout{Dir: dir}
	north := startEmbassy(t, dir)
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	south, _ := c.Site("embassy-south")
	order := filepath.Join(t.TempDir(), "activate.order")
	for _, args := range [][]string{
		{"order", "new", "--charter", l.Charter(), "--action", "activate", "--site", "embassy-south", "--access", "read-write", "--epoch", "2", "--out", order},
		{"order", "sign", order, "--charter", l.Charter(), "--official", "min-interior", "--key", l.Key("official", "min-interior")},
		{"order", "sign", order, "--charter", l.Charter(), "--official", "cio", "--key", l.Key("official", "cio")},
	} {
		if out, _, err := chanceryErr(t, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_, _, err = chanceryErr(t, "order", "submit", "--charter", l.Charter(), "--site", "embassy-north", "--url", north, order)
	if err == nil {
		t.Fatal("an activation of embassy-south accepted by embassy-north")
	}
	for _, want := range []string{"This order activates site embassy-south (" + strings.TrimSuffix(south.URL, "/") + ")", "chancery order submit --site embassy-south " + order} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q:\n%v", want, err)
		}
	}
}

// TestOrderSubmitGuestFromOrder: order submit takes the guest from the
// order file, so that a site reached by its address alone is asked about
// the order's guest, never a default one, and a charter of another guest
// is refused before anything is sent.
func TestOrderSubmitGuestFromOrder(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	f := newOrderFixture(t)
	file := filepath.Join(f.dir, "drill.order")
	if err := runOrderNew(&bytes.Buffer{}, orderNewOptions{Action: "drill", Charters: []string{f.layout.Charter()}, Site: "embassy-north", Epoch: 1, Expires: "1h", Out: file}); err != nil {
		t.Fatal(err)
	}
	_, _, err := chanceryErr(t, "order", "submit", "--url", "http://127.0.0.1:1", file)
	if err == nil || strings.Contains(err.Error(), "which guest?") || !strings.Contains(err.Error(), "demo-republic") {
		t.Fatalf("order submit by address: %v", err)
	}
	_, _, err = chanceryErr(t, "order", "submit", "--url", "http://127.0.0.1:1", "--guest", "other-state", file)
	if err == nil || !strings.Contains(err.Error(), "other-state") {
		t.Fatalf("order submit --guest other-state: %v", err)
	}
}
