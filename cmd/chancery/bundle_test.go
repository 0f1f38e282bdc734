package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/replica"
)

// bundleWrite puts n population records with an attachment each at the
// home, in this process.
func bundleWrite(t *testing.T, dir string, first, n int) {
	t.Helper()
	ctx := context.Background()
	l, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	for i := first; i < first+n; i++ {
		id := fmt.Sprintf("DR-%d", i)
		scan := make([]byte, 8<<10)
		rand.Read(scan)
		ref, err := l.Registries.PutBlob(ctx, "population", bytes.NewReader(scan))
		if err != nil {
			t.Fatal(err)
		}
		data := fmt.Appendf(nil, `{"national_id":%q,"last_name":"Berg"}`, id)
		if _, err := l.Registries.Put(ctx, "population", id, data, []registry.Attachment{{Name: "scan.pdf", Size: ref.Size, Ref: ref}}); err != nil {
			t.Fatal(err)
		}
	}
}

func runBundleCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newBundleCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestBundleCommands(t *testing.T) {
	dir := homeState(t)
	layout := state.Layout{Dir: dir}
	c, err := charter.ReadFile(layout.Charter())
	if err != nil {
		t.Fatal(err)
	}
	// Founding wrote the charter and the custody event (entries 0–1);
	// then five records.
	bundleWrite(t, dir, 1, 5)
	guest := filepath.Join(t.TempDir(), "guests", c.Guest.ID)
	importArgs := func(b string) []string {
		return []string{"import", b, "--data", guest, "--charter", layout.Charter(), "--site", "embassy-south",
			"--checkpoint-key", layout.Key("site-checkpoint", "embassy-south")}
	}

	// A new site: from 0.
	b1 := filepath.Join(t.TempDir(), "disk1")
	out, err := runBundleCmd(t, "export", "--from", "0", "--to", b1, "--state", dir, "--site", "embassy-south")
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if !strings.Contains(out, "exported entries 0–6 (7 entries, 0 withheld stubs), 5 packs") {
		t.Errorf("export output:\n%s", out)
	}
	out, err = runBundleCmd(t, importArgs(b1)...)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "imported 7 entries (0 withheld stubs), 5 packs") || !strings.Contains(out, "receipt for size 7") {
		t.Errorf("import output:\n%s", out)
	}

	// The site catches up from its own checkpoint file.
	bundleWrite(t, dir, 6, 3)
	b2 := filepath.Join(t.TempDir(), "disk2")
	out, err = runBundleCmd(t, "export", "--from", filepath.Join(guest, "ledger", "checkpoint"), "--to", b2, "--state", dir, "--site", "embassy-south")
	if err != nil {
		t.Fatalf("export from a checkpoint: %v\n%s", err, out)
	}
	if !strings.Contains(out, "exported entries 7–9 (3 entries") {
		t.Errorf("export output:\n%s", out)
	}
	out, err = runBundleCmd(t, importArgs(b2)...)
	if err != nil || !strings.Contains(out, "receipt for size 10") {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	h, _ := c.Home()
	v, err := ledger.ParseVerifierKey(h.CheckpointKey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(context.Background(), ledger.DirFetcher(filepath.Join(guest, "ledger")),
		ledger.VerifyOptions{Origin: c.Guest.Origin, Verifiers: note.VerifierList(v)})
	if err != nil || rep.Checkpoint.Size != 10 {
		t.Fatalf("verify the site's mirror: %v (%+v)", err, rep)
	}

	// The same disk again: the site has moved on, so it is refused whole.
	out, err = runBundleCmd(t, importArgs(b2)...)
	if !errors.Is(err, replica.ErrGap) || !strings.Contains(out, "refused at manifest.json; nothing was taken, the site still holds 10 entries") {
		t.Fatalf("re-import: %v\n%s", err, out)
	}

	// A receipt names its site: --site may be left out.
	signed, err := os.ReadFile(filepath.Join(guest, "ledger", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.ReadEd25519(layout.Key("site-checkpoint", "embassy-south"), keyfile.Protector{Passphrase: []byte(os.Getenv(keyfile.EnvPassphrase))})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := replica.NewReceiptCosigner(c, "embassy-south", key)
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := note.Sign(n, cs)
	if err != nil {
		t.Fatal(err)
	}
	receiptFile := filepath.Join(t.TempDir(), "south-receipt.txt")
	if err := os.WriteFile(receiptFile, receipt, 0o600); err != nil {
		t.Fatal(err)
	}
	bundleWrite(t, dir, 9, 2)
	b3 := filepath.Join(t.TempDir(), "disk3")
	out, err = runBundleCmd(t, "export", "--from", receiptFile, "--to", b3, "--state", dir)
	if err != nil || !strings.Contains(out, "exported entries 10–11 (2 entries, 0 withheld stubs), 2 packs") || !strings.Contains(out, "for site embassy-south") {
		t.Fatalf("export from a receipt: %v\n%s", err, out)
	}
	if _, err := runBundleCmd(t, "export", "--from", receiptFile, "--to", filepath.Join(t.TempDir(), "y"), "--state", dir, "--site", "embassy-north"); err == nil || !strings.Contains(err.Error(), "receipt of site embassy-south") {
		t.Fatalf("export from south's receipt for north: %v", err)
	}
	out, err = runBundleCmd(t, importArgs(b3)...)
	if err != nil || !strings.Contains(out, "imported 2 entries (0 withheld stubs), 2 packs") || !strings.Contains(out, "receipt for size 12") {
		t.Fatalf("third import: %v\n%s", err, out)
	}

	// Export needs a site when --from does not name one.
	if _, err := runBundleCmd(t, "export", "--from", "3", "--to", filepath.Join(t.TempDir(), "x"), "--state", dir); err == nil || !strings.Contains(err.Error(), "--site") {
		t.Fatalf("export without a site: %v", err)
	}
	out, err = runBundleCmd(t, "export", "--help")
	if err != nil || !strings.Contains(out, "--from") || !strings.Contains(out, "withheld") {
		t.Fatalf("export --help: %v\n%s", err, out)
	}
}
