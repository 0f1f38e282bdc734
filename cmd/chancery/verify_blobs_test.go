package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/state"
)

// TestVerifyBlobsAgainstLedger (issue 11, item 8): on a demo site whose
// deeds are attachments, verify --blobs --root-key passes a clean store
// and opens every referenced chunk; a flipped byte in a pack, a deleted
// pack, and a chunk no pack or index holds any more are each found, and
// each finding names the pack (where known), the chunk, the registry,
// the record and the ledger index.
func TestVerifyBlobsAgainstLedger(t *testing.T) {
	dir, pass := demoState(t, 40)
	l := state.Layout{Dir: dir}
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	o := verifyOptions{target: l.Ledger("home"), noState: true, blobs: l.Blobs("home"),
		blobKeys: blobKeyFlags{rootKey: l.RootKey(), passFile: passFile}}
	out, err := verifyOut(t, o)
	if err != nil || !strings.Contains(out, "blobs: OK") || strings.Contains(out, "reference 0 chunks") || !strings.Contains(out, "chunks opened with the registries' blob keys") || strings.Contains(out, "blobs: 0 chunks opened") {
		t.Fatalf("clean site: %v\n%s", err, out)
	}

	var packs, indexes []string
	filepath.WalkDir(l.Blobs("home"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			// The fs backend fans names out: …/data/ab/abcd….
			switch filepath.Base(filepath.Dir(filepath.Dir(p))) {
			case "data":
				packs = append(packs, p)
			case "index":
				indexes = append(indexes, p)
			}
		}
		return nil
	})
	if len(packs) == 0 || len(indexes) == 0 {
		t.Fatalf("the demo wrote %d packs and %d index objects", len(packs), len(indexes))
	}
	victim := packs[0]
	orig, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		t.Helper()
		if err := os.WriteFile(victim, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	named := func(what string, wantProblem string) {
		t.Helper()
		_, err := verifyOut(t, o)
		if err == nil {
			t.Fatalf("%s: verify --blobs passed", what)
		}
		msg := err.Error()
		t.Logf("%s: %.600s", what, msg)
		for _, want := range []string{"FAILED", "ledger index ", "registry ", "record ", "version ", "chunk ", wantProblem} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the report lacks %q:\n%s", what, want, msg)
			}
		}
	}

	// One flipped byte in the sealed data of a pack.
	b := append([]byte(nil), orig...)
	b[len(b)/3] ^= 0x20
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	named("flipped byte", filepath.Base(victim))
	if _, err := verifyOut(t, o); err == nil || !strings.Contains(err.Error(), "1 of") || !strings.Contains(err.Error(), "its pack is damaged") {
		t.Fatalf("flipped byte: %v", err)
	}
	restore()

	// The pack deleted: its index object still names it.
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	named("deleted pack", "its pack is missing from the store")
	if _, err := verifyOut(t, o); err == nil || !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Fatalf("deleted pack not named: %v", err)
	}

	// And every index object too: the chunks are in no pack at all.
	for _, p := range indexes {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	named("chunk in no pack", "chunk missing")
	restore()

	// The same store with the pack back: clean again (the index objects
	// are gone, and the packs' own headers locate every chunk).
	if out, err := verifyOut(t, o); err != nil || !strings.Contains(out, "blobs: OK") {
		t.Fatalf("restored: %v\n%s", err, out)
	}
}
