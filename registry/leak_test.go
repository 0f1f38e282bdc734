package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/demo/demogen"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/store"
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

// TestEntryHidesAttachmentRefs: the ledger entry of a version with
// attachments carries neither their exact sizes nor their references
// (store.Ref: size and chunk ids in order) in clear — they are sealed in
// the body — only the set of chunk ids, ascending, which sites need to
// ship and check the version's packs. Record bodies a few bytes apart in
// length give entries of one size (Padmé padding of the sealed body).
func TestEntryHidesAttachmentRefs(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	// Two attachments sharing content, so that chunks repeat and the
	// chunk order of each would show were it in clear.
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]byte, 3<<20+12345)
	for i := range a {
		a[i] = byte(rng.Uint32())
	}
	b := append(append([]byte(nil), a[2<<20:]...), a[:1<<20]...)
	var atts []Attachment
	for i, content := range [][]byte{a, b} {
		ref, err := fx.reg.PutBlob(ctx, "land", bytes.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		atts = append(atts, Attachment{Name: fmt.Sprintf("deed-%d.pdf", i), Size: ref.Size, Ref: ref})
	}
	if _, err := fx.reg.Put(ctx, "land", "P-1", []byte(`{"parcel_id":"P-1","owner_id":"DR-1"}`), atts); err != nil {
		t.Fatal(err)
	}
	payload := lastRecordPayload(t, fx)
	var sizes [][]byte
	for _, at := range atts {
		enc, _ := at.Ref.MarshalBinary()
		if bytes.Contains(payload, enc[5:]) {
			t.Errorf("entry holds attachment %s's reference in clear", at.Name)
		}
		sizes = append(sizes, binary.BigEndian.AppendUint64(nil, uint64(at.Size)))
	}
	for _, sz := range sizes {
		if bytes.Contains(payload, sz) {
			t.Errorf("entry holds an attachment's exact size %x in clear", sz)
		}
	}
	re, err := UnmarshalRecordEntry(payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := ChunkSet([]store.Ref{atts[0].Ref, atts[1].Ref}); !slices.Equal(re.Chunks, want) {
		t.Fatalf("entry lists %d chunks, want the set of %d", len(re.Chunks), len(want))
	}
	rec, err := fx.reg.Get(ctx, "land", "P-1", AsOf{})
	if err != nil || len(rec.Attachments) != 2 || rec.Attachments[1].Size != atts[1].Size || !slices.Equal(rec.Attachments[1].Ref.Chunks, atts[1].Ref.Chunks) {
		t.Fatalf("read back: %v", err)
	}

	// Bodies of about 1060 bytes whose owner ids are 1 to 8 characters
	// long: one Padmé bucket (64 bytes wide there), one entry size.
	lens := map[int]bool{}
	notes := strings.Repeat("n", 990)
	for n := 1; n <= 8; n++ {
		id := fmt.Sprintf("P-%d", n+10)
		data := fmt.Sprintf(`{"parcel_id":%q,"owner_id":%q,"notes":%q}`, id, strings.Repeat("x", n), notes)
		if _, err := fx.reg.Put(ctx, "land", id, []byte(data), nil); err != nil {
			t.Fatal(err)
		}
		lens[len(lastRecordPayload(t, fx))] = true
	}
	if len(lens) != 1 {
		t.Errorf("bodies 1 to 8 bytes apart gave entries of %d sizes", len(lens))
	}
}

// lastRecordPayload is the payload of the newest ledger entry.
func lastRecordPayload(t *testing.T, fx *fixture) []byte {
	t.Helper()
	raw, err := fx.reg.entry(context.Background(), fx.log.Size()-1, false)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil || e.Type != ledger.TypeRecord {
		t.Fatalf("newest entry: %v", err)
	}
	return e.Payload
}
