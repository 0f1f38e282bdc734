package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/demo/demogen"
)

// TestNoPlaintextAtRest loads the demo registries, attachments included, and
// searches every byte a site would store — ledger tiles and bundles, the
// write-ahead log, blob packs and indexes — for the plaintext that was
// written: names, national ids, addresses, document and parcel numbers.
// None may appear.
func TestNoPlaintextAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a few hundred people with deeds")
	}
	fx := newFixture(t)
	ctx := context.Background()
	src := t.TempDir()
	var jsonl bytes.Buffer
	if err := demogen.WriteJSONL(ctx, demogen.Options{Persons: 150, Seed: 7, Deeds: true, DeedDir: filepath.Join(src, "deeds")}, &jsonl, nil); err != nil {
		t.Fatal(err)
	}
	secrets := plaintextOf(t, jsonl.Bytes())
	if len(secrets) < 300 {
		t.Fatalf("only %d distinct plaintext strings to look for", len(secrets))
	}
	res, err := fx.reg.Import(ctx, bytes.NewReader(jsonl.Bytes()), ImportOptions{Dir: src})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attachments == 0 {
		t.Fatal("no attachments imported: the blob store went untested")
	}
	fx.close(t) // everything durable, as at rest
	// A canary proves the search finds plaintext where there is some.
	canary := filepath.Join(fx.dir, "canary")
	if err := os.WriteFile(canary, []byte("xx"+secrets[0]+"yy"), 0o600); err != nil {
		t.Fatal(err)
	}
	canaryFound := false

	// One pass per file: look up every 6-byte window among the secrets'
	// prefixes, and compare the whole string only on a hit.
	byPrefix := map[[6]byte][]string{}
	for _, s := range secrets {
		k := [6]byte([]byte(s[:6]))
		byPrefix[k] = append(byPrefix[k], s)
	}
	var files, scanned int
	err = filepath.WalkDir(fx.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		scanned += len(b)
		for i := 0; i+6 <= len(b); i++ {
			for _, s := range byPrefix[[6]byte(b[i:i+6])] {
				if bytes.HasPrefix(b[i:], []byte(s)) {
					if path == canary {
						canaryFound = true
						continue
					}
					t.Errorf("%s holds plaintext %q at byte %d", strings.TrimPrefix(path, fx.dir), s, i)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !canaryFound {
		t.Fatal("the search missed the canary: it cannot be trusted")
	}
	t.Logf("searched %d files, %d bytes, for %d plaintext strings", files, scanned, len(secrets))
}

// plaintextOf collects identifying strings from import lines: every string
// value of at least 6 characters (ids, names with their neighbours,
// streets, cities, document numbers), skipping the public legal acts.
func plaintextOf(t *testing.T, jsonl []byte) []string {
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if len(x) >= 6 && !strings.HasPrefix(x, "19") && !strings.HasPrefix(x, "20") {
				seen[x] = true
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, line := range bytes.Split(jsonl, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var l struct {
			Registry string         `json:"registry"`
			ID       string         `json:"id"`
			Record   map[string]any `json:"record"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		if l.Registry == "legal-acts" {
			continue // public by classification
		}
		seen[l.ID] = true
		walk(l.Record)
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	return out
}
