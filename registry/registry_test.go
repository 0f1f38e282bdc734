package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// testCharter is a minimal charter with the Demo Republic's registries; the
// registry layer only reads the guest id and the registry definitions.
func testCharter() *charter.Charter {
	return &charter.Charter{
		Guest: charter.Guest{ID: "demo-republic", Origin: "ledger.test.example"},
		Registries: []charter.Registry{
			{Name: "population", Sites: []string{"home", "embassy-north"}, Index: []string{"national_id", "last_name"}, Sync: charter.SyncAsync},
			{Name: "identity-documents", Sites: []string{"home"}, Index: []string{"document_no", "national_id"}, Sync: charter.SyncAsync},
			{Name: "land", Sites: []string{"home"}, Index: []string{"parcel_id", "owner_id"}, Sync: charter.SyncAsync},
			{Name: "business", Sites: []string{"home"}, Index: []string{"registration_no"}, Sync: charter.SyncAsync},
			{Name: "legal-acts", Sites: []string{"home"}, Index: []string{"act_id"}, Sync: charter.SyncAsync},
			{Name: "archive", Sites: []string{"embassy-north"}, Index: []string{"item"}, Sync: charter.SyncAsync},
		},
	}
}

type fixture struct {
	dir  string
	c    *charter.Charter
	log  *ledger.Log
	keys *seal.Keyring
	root *seal.RootKey
	be   store.Backend
	reg  *Registries
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir(), c: testCharter()}
	var err error
	if fx.root, err = seal.NewRootKey(); err != nil {
		t.Fatal(err)
	}
	fx.open(t)
	t.Cleanup(func() { fx.close(t) })
	return fx
}

func (fx *fixture) open(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _, err := ledger.NewLogSigner(fx.c.Guest.Origin, priv)
	if err != nil {
		t.Fatal(err)
	}
	if fx.log, err = ledger.Open(ctx, filepath.Join(fx.dir, "ledger"), ledger.Options{Origin: fx.c.Guest.Origin, Signer: signer, CheckpointInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	fx.keys = seal.NewKeyring(fx.c.Guest.ID, fx.root)
	if fx.be, err = storefs.New(filepath.Join(fx.dir, "blobs")); err != nil {
		t.Fatal(err)
	}
	if fx.reg, err = Open(ctx, Options{Charter: fx.c, Site: "home", Log: fx.log, Keys: fx.keys, Blobs: fx.be}); err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) close(t testing.TB) {
	t.Helper()
	if fx.reg != nil {
		if err := fx.reg.Close(); err != nil {
			t.Error(err)
		}
		fx.reg = nil
	}
	if fx.log != nil {
		fx.log.Close()
		fx.log = nil
	}
}

func (fx *fixture) reopen(t testing.TB) {
	t.Helper()
	fx.close(t)
	fx.open(t)
}

func person(id, last string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"national_id":%q,"first_name":"Ana","last_name":%q,"address":{"city":"Capital"}}`, id, last))
}

func TestPutGetHistoryFind(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	r1, err := fx.reg.Put(ctx, "population", "DR-1", person("DR-1", "Ivanova"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Put(ctx, "population", "DR-2", person("DR-2", "Ivanova"), nil); err != nil {
		t.Fatal(err)
	}
	r3, err := fx.reg.Put(ctx, "population", "DR-1", person("DR-1", "Berg"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != 1 || r3.Version != 2 {
		t.Fatalf("versions %d, %d", r1.Version, r3.Version)
	}
	got, err := fx.reg.Get(ctx, "population", "DR-1", AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got.Data), "Berg") || got.Version != 2 {
		t.Fatalf("latest: %s v%d", got.Data, got.Version)
	}
	old, err := fx.reg.Get(ctx, "population", "DR-1", AsOf{Index: &r1.Index})
	if err != nil || !strings.Contains(string(old.Data), "Ivanova") {
		t.Fatalf("as of index %d: %v %s", r1.Index, err, old.Data)
	}
	before := r1.Time.Add(-time.Second)
	if _, err := fx.reg.Get(ctx, "population", "DR-1", AsOf{Time: &before}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("as of a time before the first version: %v", err)
	}
	// The index follows the latest version only.
	hits, err := fx.reg.Find(ctx, "population", "last_name", "Ivanova")
	if err != nil || len(hits) != 1 || hits[0].ID != "DR-2" {
		t.Fatalf("find Ivanova: %v %v", err, hits)
	}
	if _, err := fx.reg.Find(ctx, "population", "first_name", "Ana"); err == nil {
		t.Fatal("find by a field that is not indexed succeeded")
	}
	if _, err := fx.reg.Delete(ctx, "population", "DR-2"); err != nil {
		t.Fatal(err)
	}
	if hits, _ := fx.reg.Find(ctx, "population", "last_name", "Ivanova"); len(hits) != 0 {
		t.Fatalf("deleted record still found: %v", hits)
	}
	h, err := fx.reg.History(ctx, "population", "DR-2")
	if err != nil || len(h) != 2 || !h[1].Deleted {
		t.Fatalf("history of a deleted record: %v %+v", err, h)
	}

	// The index is rebuilt from the ledger alone.
	fx.reopen(t)
	got, err = fx.reg.Get(ctx, "population", "DR-1", AsOf{})
	if err != nil || got.Version != 2 {
		t.Fatalf("after reopen: %v %+v", err, got)
	}
	if hits, _ := fx.reg.Find(ctx, "population", "last_name", "Berg"); len(hits) != 1 {
		t.Fatalf("after reopen, find Berg: %v", hits)
	}
}

func TestValidationNamesField(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		registry, id string
		data         string
		want         string
	}{
		{"population", "DR-9", `{"last_name":"X"}`, "field national_id"},
		{"population", "DR-9", `{"national_id":"","last_name":"X"}`, "field national_id"},
		{"population", "DR-9", `{"national_id":{"a":1},"last_name":"X"}`, "field national_id"},
		{"population", "DR-9", `[1,2]`, "JSON object"},
		{"population", "", `{"national_id":"1","last_name":"X"}`, "field id"},
		{"archive", "A-1", `{"item":"1"}`, "not held at site home"},
		{"nonesuch", "A-1", `{}`, "unknown registry"},
	}
	for _, c := range cases {
		_, err := fx.reg.Put(ctx, c.registry, c.id, json.RawMessage(c.data), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("put %s/%s %s: %v, want %q", c.registry, c.id, c.data, err, c.want)
		}
	}
	if fx.log.Size() != 0 {
		t.Fatalf("rejected records reached the ledger: size %d", fx.log.Size())
	}
}

func TestAttachments(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	deed := bytes.Repeat([]byte("DEED OF TRANSFER parcel 77/3 owner Ivanova "), 30000)
	ref, err := fx.reg.PutBlob(ctx, "land", bytes.NewReader(deed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Put(ctx, "land", "P-77", json.RawMessage(`{"parcel_id":"P-77","owner_id":"DR-1"}`), []Attachment{{Name: "deed.pdf", Size: ref.Size, Ref: ref}}); err != nil {
		t.Fatal(err)
	}
	fx.reopen(t)
	rec, err := fx.reg.Get(ctx, "land", "P-77", AsOf{})
	if err != nil || len(rec.Attachments) != 1 || rec.Attachments[0].Name != "deed.pdf" {
		t.Fatalf("%v %+v", err, rec)
	}
	var buf bytes.Buffer
	if err := fx.reg.GetBlob(ctx, "land", rec.Attachments[0].Ref, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), deed) {
		t.Fatal("attachment differs after a round trip")
	}
}

func TestRotation(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.reg.Put(ctx, "population", "DR-1", person("DR-1", "Old"), nil); err != nil {
		t.Fatal(err)
	}
	gen, err := fx.reg.Rotate(ctx, "population")
	if err != nil || gen != 2 {
		t.Fatalf("rotate: %v gen %d", err, gen)
	}
	if _, err := fx.reg.Put(ctx, "population", "DR-1", person("DR-1", "New"), nil); err != nil {
		t.Fatal(err)
	}
	fx.reopen(t) // the generation comes back from the ledger's key event
	if g := fx.keys.Registry("population").Generation(); g != 2 {
		t.Fatalf("generation after reopen %d, want 2", g)
	}
	for v, want := range map[uint64]string{1: "Old", 2: "New"} {
		h, _ := fx.reg.History(ctx, "population", "DR-1")
		idx := h[v-1].Index
		rec, err := fx.reg.Get(ctx, "population", "DR-1", AsOf{Index: &idx})
		if err != nil || !strings.Contains(string(rec.Data), want) {
			t.Fatalf("version %d after rotation: %v %s", v, err, rec.Data)
		}
	}
}

func TestImportStopsAtBadLine(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	var in bytes.Buffer
	for i := 1; i <= 2500; i++ {
		if i == 1700 {
			in.WriteString(`{"registry":"population","id":"DR-1700","record":{"last_name":"NoID"}}` + "\n")
			continue
		}
		fmt.Fprintf(&in, `{"registry":"population","id":"DR-%d","record":{"national_id":"DR-%d","last_name":"L%d"}}`+"\n", i, i, i)
	}
	res, err := fx.reg.Import(ctx, &in, ImportOptions{Batch: 256})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Line != 1700 || ve.Field != "national_id" {
		t.Fatalf("import error %v, want line 1700 field national_id", err)
	}
	if res.Records != 1699 {
		t.Fatalf("%d records imported, want the 1699 before the bad line", res.Records)
	}
	if _, err := fx.reg.Get(ctx, "population", "DR-1699", AsOf{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"DR-1700", "DR-1701", "DR-2500"} {
		if _, err := fx.reg.Get(ctx, "population", id, AsOf{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after the bad line: %v", id, err)
		}
	}
	if fx.log.Size() != 1699 {
		t.Fatalf("ledger holds %d entries", fx.log.Size())
	}
}

func TestRecordEntryRoundTrip(t *testing.T) {
	e := &RecordEntry{Kind: KindPut, Registry: "land", Version: 7, Index: [][32]byte{{1}, {2}},
		Chunks: []store.ID{{3}, {9}}, Sealed: []byte("sealed")}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := UnmarshalRecordEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := d.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("record entry does not round-trip")
	}
	for i := range b {
		if _, err := UnmarshalRecordEntry(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
}

func FuzzUnmarshalRecordEntry(f *testing.F) {
	e := &RecordEntry{Kind: KindPut, Registry: "population", Version: 1, Index: [][32]byte{{1}}, Sealed: []byte("x")}
	b, _ := e.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := UnmarshalRecordEntry(b)
		if err != nil {
			return
		}
		b2, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("decoded entry does not re-encode to the same bytes: %v", err)
		}
	})
}

// TestTopLevelFieldsAgreesWithEncodingJSON: the fast walker must find the
// same top-level values encoding/json does, nested look-alikes and escapes
// included.
func TestTopLevelFieldsAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{
		`{"a":"1","b":2}`,
		` { "b" : -2.5e3 , "a" : "x\"y" } `,
		`{"nested":{"a":"no"},"a":"yes"}`,
		`{"arr":["a",{"a":1}],"a":[1,2]}`,
		`{"a":"first","a":"last"}`,
		`{"\u0061":"escaped key"}`,
		`{"s":"}{][,\"","a":true,"b":null}`,
		`{}`,
	}
	for _, c := range cases {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(c), &m); err != nil {
			t.Fatal(err)
		}
		got, ok := topLevelFields([]byte(c), []string{"a", "b"})
		if !ok {
			t.Fatalf("%s: not an object", c)
		}
		for i, name := range []string{"a", "b"} {
			want := m[name]
			if !bytes.Equal(bytes.TrimSpace(got[i]), bytes.TrimSpace(want)) {
				t.Errorf("%s field %s: got %q, want %q", c, name, got[i], want)
			}
		}
	}
	for _, bad := range []string{`[1]`, `"s"`, `{"a":}`, `{"a":1`, ``} {
		if _, ok := topLevelFields([]byte(bad), []string{"a"}); ok {
			t.Errorf("%q accepted as an object", bad)
		}
	}
}

func FuzzTopLevelFields(f *testing.F) {
	f.Add([]byte(`{"a":"1","b":{"a":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := topLevelFields(b, []string{"a"})
		var m map[string]json.RawMessage
		err := json.Unmarshal(b, &m)
		if ok != (err == nil && m != nil) {
			t.Fatalf("%q: walker says object=%v, encoding/json %v", b, ok, err)
		}
		if ok && !bytes.Equal(bytes.TrimSpace(got[0]), bytes.TrimSpace(m["a"])) {
			t.Fatalf("%q: walker found %q, encoding/json %q", b, got[0], m["a"])
		}
	})
}

// TestRecentHoldsOnlyUnpublished: the entries kept for reading back
// before the next checkpoint are dropped once the published tree covers
// them, however many there were, and each read back meanwhile is the
// entry appended.
func TestRecentHoldsOnlyUnpublished(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	var recs []Write
	for i := range 50 {
		recs = append(recs, Write{Registry: "population", ID: fmt.Sprintf("DR-%d", i), Data: person(fmt.Sprintf("DR-%d", i), "Berg")})
	}
	if _, err := fx.reg.Apply(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fx.log.WaitPublished(ctx, fx.log.Size()); err != nil {
		t.Fatal(err)
	}
	last, err := fx.reg.Put(ctx, "population", "DR-last", person("DR-last", "Berg"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, cp := fx.log.Checkpoint()
	fx.reg.recentMu.Lock()
	for idx := range fx.reg.recent {
		if idx < cp.Size {
			t.Errorf("entry %d is kept, but the published tree (%d entries) covers it", idx, cp.Size)
		}
	}
	fx.reg.recentMu.Unlock()
	got, err := fx.reg.Get(ctx, "population", "DR-last", AsOf{})
	if err != nil || got.Index != last.Index {
		t.Fatalf("read back: %v %+v", err, got)
	}
}
