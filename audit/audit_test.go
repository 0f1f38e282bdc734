package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

// newLedger writes a ledger of n entries under origin in a new directory;
// salt makes its entries differ from another ledger's.
func newLedger(t *testing.T, origin string, n int, salt string) string {
	t.Helper()
	ctx := context.Background()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := ledger.NewLogSigner(origin, priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ledger")
	l, err := ledger.Open(ctx, dir, ledger.Options{Origin: origin, Signer: s, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	es := make([]ledger.Entry, n)
	for i := range es {
		es[i] = ledger.Entry{Type: ledger.TypeNotice, Epoch: 1, Time: time.UnixMilli(1_700_000_000_000 + int64(i)), Payload: fmt.Appendf(nil, "%s %d", salt, i)}
	}
	if _, err := l.AppendBatch(ctx, es); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.WaitPublished(ctx, uint64(n)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func verify(t *testing.T, dir, stateDir string) (*audit.Verified, error) {
	t.Helper()
	l, err := audit.Open(audit.Source{Target: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l.Verify(context.Background(), audit.VerifyOptions{StateDir: stateDir})
}

// TestVerifyState: the verified checkpoint is kept per origin, mode 0600,
// with no temporary file left; the next run checks consistency with it.
func TestVerifyState(t *testing.T) {
	dir := newLedger(t, "ledger.a.example", 300, "a")
	sd := filepath.Join(t.TempDir(), "verified")
	v, err := verify(t, dir, sd)
	if err != nil {
		t.Fatal(err)
	}
	if v.Previous || v.StatePath != audit.StatePath(sd, "ledger.a.example") || v.Report.Entries != 300 {
		t.Fatalf("first run: %+v", v)
	}
	st, err := os.Stat(v.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", st.Mode().Perm())
	}
	if saved, _ := os.ReadFile(v.StatePath); !bytes.Equal(saved, v.Signed) {
		t.Errorf("state file holds other bytes than the checkpoint verified")
	}
	if ents, _ := os.ReadDir(sd); len(ents) != 1 {
		t.Errorf("state directory holds %d files, want the checkpoint alone", len(ents))
	}
	v, err = verify(t, dir, sd)
	if err != nil || !v.Previous || v.Report.PreviousSize != 300 {
		t.Fatalf("second run: %+v, %v", v, err)
	}
	// Without a state directory nothing is read or written.
	if v, err = verify(t, dir, ""); err != nil || v.Previous || v.StatePath != "" {
		t.Fatalf("without state: %+v, %v", v, err)
	}
}

// TestBlobs: every object of a store hashes to its name; a damaged one is
// named.
func TestBlobs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	be, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string][]byte{}
	for _, s := range []string{"one", "two", "three"} {
		data := []byte("pack " + s)
		name := store.PackName(sha256.Sum256(data))
		if s == "two" {
			objs["registries/population/"+name] = data
		} else {
			objs[name] = data
		}
		var into store.Backend = be
		if s == "two" { // as a registry stores it, under its prefix
			into = store.Prefixed(be, "registries/population/")
		}
		if err := into.Save(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := audit.Blobs(ctx, be)
	if err != nil || rep.Objects != 3 || rep.Bad != 0 {
		t.Fatalf("clean store: %+v, %v", rep, err)
	}
	// Overwrite one object with other bytes of the same length.
	var victim string
	for name := range objs {
		victim = name
		break
	}
	if err := be.Remove(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, victim, strings.NewReader("pack XXX"+strings.Repeat("X", len(objs[victim])-8)), int64(len(objs[victim]))); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.Blobs(ctx, be)
	if err != nil || rep.Objects != 3 || rep.Bad != 1 || !strings.Contains(rep.Problems[0].Error(), victim) {
		t.Fatalf("damaged store: %+v, %v", rep, err)
	}
}

// TestVerifyFork: with one state directory, a second log of another
// origin verifies as a first verification, while a log of the same origin
// whose tree does not extend the checkpoint verified before is a fork,
// and so is one rolled back below it.
func TestVerifyFork(t *testing.T) {
	sd := t.TempDir()
	if _, err := verify(t, newLedger(t, "ledger.a.example", 300, "a"), sd); err != nil {
		t.Fatal(err)
	}
	v, err := verify(t, newLedger(t, "ledger.b.example", 200, "b"), sd)
	if err != nil || v.Previous {
		t.Fatalf("another origin: %+v, %v; want a first verification", v, err)
	}
	for _, tt := range []struct {
		name string
		n    int
	}{{"diverged", 400}, {"rolled back", 100}} {
		_, err := verify(t, newLedger(t, "ledger.a.example", tt.n, "other history"), sd)
		if !errors.Is(err, audit.ErrFork) || !strings.Contains(err.Error(), "same origin with an inconsistent tree is a fork") {
			t.Errorf("%s: %v, want ErrFork", tt.name, err)
		}
	}
	// A damaged tile is not a fork.
	dir := newLedger(t, "ledger.c.example", 300, "c")
	if _, err := verify(t, dir, sd); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(ledger.EntriesPath(0, 0)))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, dir, sd); err == nil || errors.Is(err, audit.ErrFork) {
		t.Errorf("damaged entry: %v, want a failure that is not a fork", err)
	}
}

// TestOpenRefuses: a directory that is not a ledger, and a pinned URL
// without the charter that pins the key.
func TestOpenRefuses(t *testing.T) {
	if _, err := audit.Open(audit.Source{Target: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a ledger directory") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := audit.Open(audit.Source{Target: "https://127.0.0.1:1/ledger", PinSite: "home"}); err == nil || !strings.Contains(err.Error(), `pinning site "home" needs the charter`) {
		t.Errorf("pin without charter: %v", err)
	}
	l, err := audit.Open(audit.Source{Target: newLedger(t, "ledger.d.example", 3, "d")})
	if err != nil || l.Charter != nil {
		t.Fatalf("a ledger with no charter beside it: %+v, %v", l, err)
	}
	cp, err := l.ReadCheckpoint(context.Background())
	if err != nil || cp.Checked || cp.Size != 3 || cp.Origin != "ledger.d.example" {
		t.Fatalf("checkpoint without charter: %+v, %v", cp, err)
	}
}
