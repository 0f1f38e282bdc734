package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// TestExtractVerify issues an extract in a founded state, writes its PDF,
// QR PNG and text as a holder would carry them, and verifies each with
// the command and the charter alone; an altered text is refused.
func TestExtractVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := keyfile.Protector{Passphrase: []byte("test passphrase"), WorkFactor: 10}
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: p}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	c, err := charter.ReadFile(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	log, err := state.OpenLedger(ctx, l, c, "home", p, ledger.Options{CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	root, err := seal.ReadRootKeyFile(l.RootKey(), p.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	kr := seal.NewKeyring(c.Guest.ID, root)
	defer kr.Wipe()
	signer, err := kr.StateSigner("extract", seal.StateAlgEdDSA, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.ReadEd25519(l.Key("site-checkpoint", "embassy-south"), p)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := replica.NewReceiptCosigner(c, "embassy-south", key)
	if err != nil {
		t.Fatal(err)
	}
	is, err := extract.NewIssuer(extract.IssuerOptions{Charter: c, Signer: signer, Site: "home", Log: log,
		Cosigned: func(ctx context.Context, size uint64) ([]byte, error) {
			signed, _, err := log.WaitPublished(ctx, size)
			if err != nil {
				return nil, err
			}
			return ledger.Cosign(signed, cs)
		}})
	if err != nil {
		t.Fatal(err)
	}
	es, err := is.Issue(ctx, extract.Request{Registry: "population", Record: "DR-0001", Version: 1, Index: 3,
		Fields: map[string]any{"given_name": "Ada", "birth_date": "2026-12-05"}})
	if err != nil {
		t.Fatal(err)
	}
	text, err := offline.EncodeText(es[0].COSE)
	if err != nil {
		t.Fatal(err)
	}
	png, err := extract.QRPNG(text)
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := extract.PDF(es[0], text, png)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"extract.pdf": pdf, "qr.png": png, "qr.txt": []byte(text + "\n"), "extract.cose": es[0].COSE}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := runExtractVerify(extractVerifyOptions{file: path, charterFile: l.Charter()}, &out); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		for _, want := range []string{"signature: EdDSA by the state's extract key", "inclusion: the act entry", "cosignatures: 1 sites [embassy-south]", "VALID as of checkpoint"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%s: output lacks %q:\n%s", name, want, out.String())
			}
		}
	}
	bad := []byte(text)
	bad[len(bad)/2] = map[bool]byte{true: 'A', false: 'B'}[bad[len(bad)/2] != 'A']
	path := filepath.Join(dir, "altered.txt")
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runExtractVerify(extractVerifyOptions{file: path, charterFile: l.Charter()}, &bytes.Buffer{}); err == nil {
		t.Fatal("an altered extract verified")
	}
}
