package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/internal/s3test"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/s3"
)

// scrubSite is a site's blob store and ledger as Scrub sees them: the
// registry "land" holds three attachments (each of several chunks, in
// several packs), referenced by ledger entries 1, 2 and 3 (entry 0 is a
// notice). The entries' payload is "registry\x00record\x00" and the
// attachment's encoded store.Ref: the test's own encoding, decoded by
// refs, as a site passes registry's decoder.
type scrubSite struct {
	be     store.Backend
	ledger string
	size   uint64
	sealer store.Sealer
}

func prefix(registry string) string { return "registries/" + registry + "/" }

func refs(index uint64, e ledger.Entry) ([]audit.BlobRef, error) {
	if e.Type != ledger.TypeRecord {
		return nil, nil
	}
	parts := bytes.SplitN(e.Payload, []byte{0}, 3)
	if len(parts) != 3 {
		return nil, errors.New("bad test payload")
	}
	var r store.Ref
	if err := r.UnmarshalBinary(parts[2]); err != nil {
		return nil, err
	}
	return []audit.BlobRef{{Registry: string(parts[0]), Record: string(parts[1]), Chunks: r.Chunks}}, nil
}

func newScrubSite(t *testing.T, be store.Backend) *scrubSite {
	t.Helper()
	ctx := context.Background()
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring("scrub-test", root)
	t.Cleanup(keys.Wipe)
	sl := keys.Registry("land").Blobs()
	ch, err := store.ChunkingFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Prefixed(be, prefix("land")), store.Options{Chunking: ch, PackSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.NewChaCha8([32]byte{1})
	es := []ledger.Entry{{Type: ledger.TypeNotice, Epoch: 1, Time: time.UnixMilli(1_700_000_000_000), Payload: []byte("notice")}}
	for i := range 3 {
		data := make([]byte, 200<<10)
		rng.Read(data)
		ref, err := st.Put(ctx, sl, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		rb, err := ref.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, ledger.Entry{Type: ledger.TypeRecord, Epoch: 1, Time: time.UnixMilli(1_700_000_000_001),
			Payload: append(fmt.Appendf(nil, "land\x00deed-%d\x00", i), rb...)})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := ledger.NewLogSigner("scrub.test/ledger", priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ledger")
	l, err := ledger.Open(ctx, dir, ledger.Options{Origin: "scrub.test/ledger", Signer: s, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(ctx, es); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.WaitPublished(ctx, uint64(len(es))); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return &scrubSite{be: be, ledger: dir, size: uint64(len(es)), sealer: sl}
}

func (s *scrubSite) scrub(t *testing.T, keyed bool, rate int64) *audit.BlobReport {
	t.Helper()
	o := audit.ScrubOptions{Ledger: ledger.DirFetcher(s.ledger), Size: s.size, Refs: refs, Prefix: prefix, Rate: rate}
	if keyed {
		o.Sealer = func(string) store.Sealer { return s.sealer }
	}
	var calls int
	o.Progress = func(done, total uint64) {
		calls++
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	}
	rep, err := audit.Scrub(context.Background(), s.be, o)
	if err != nil {
		t.Fatal(err)
	}
	if calls != rep.Objects {
		t.Errorf("progress called %d times for %d objects", calls, rep.Objects)
	}
	return rep
}

func (s *scrubSite) objects(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	if err := s.be.List(context.Background(), prefix("land")+dir+"/", func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("no %s objects", dir)
	}
	return names
}

func (s *scrubSite) read(t *testing.T, name string) []byte {
	t.Helper()
	rc, err := s.be.Load(context.Background(), name, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *scrubSite) put(t *testing.T, name string, b []byte) {
	t.Helper()
	ctx := context.Background()
	if err := s.be.Remove(ctx, name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := s.be.Save(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// wantFinding checks that rep has a finding with every string of want in
// it, and that the report names the ledger index, record, chunk and
// registry of a referenced chunk.
func wantFinding(t *testing.T, what string, rep *audit.BlobReport, want ...string) {
	t.Helper()
	if rep.OK() {
		t.Fatalf("%s: the scrub found nothing", what)
	}
	for _, p := range rep.Problems {
		var f *audit.BlobFinding
		if !errors.As(p, &f) || !f.HasIndex {
			continue
		}
		msg := p.Error()
		ok := f.Registry == "land" && strings.HasPrefix(f.Record, "deed-") && len(f.Chunk) == 64 && f.Index >= 1 && f.Index <= 3
		for _, w := range want {
			ok = ok && strings.Contains(msg, w)
		}
		if ok {
			return
		}
	}
	t.Fatalf("%s: no finding names the chunk, record, index and %q: %v", what, want, rep.Problems)
}

// testScrub runs the faults of issue 11, item 8 against one backend.
func testScrub(t *testing.T, be store.Backend) {
	s := newScrubSite(t, be)
	rep := s.scrub(t, true, 0)
	if !rep.OK() || rep.Chunks == 0 || rep.Opened != rep.Chunks || rep.Refs != 3 || rep.Entries != s.size {
		t.Fatalf("clean site: %+v", rep)
	}
	packs := s.objects(t, "data")
	if len(packs) < 2 {
		t.Fatalf("want attachments spread over several packs, got %d", len(packs))
	}

	// A flipped byte in a pack: found without a key, named by pack, and
	// every chunk referenced in it by record and index.
	victim := packs[0]
	orig := s.read(t, victim)
	b := bytes.Clone(orig)
	b[len(b)/4] ^= 1
	s.put(t, victim, b)
	rep = s.scrub(t, false, 0)
	if rep.BadObjects != 1 || !strings.Contains(rep.Problems[0].Error(), victim) {
		t.Fatalf("flipped byte: %+v", rep)
	}
	wantFinding(t, "flipped byte", rep, victim, "its pack is damaged")

	// The damaged pack forged whole: stored under the hash of its new
	// content, with the index objects that named the old one gone. Every
	// object now hashes to its name and every chunk is located through
	// the pack's own header: only the key finds it.
	if err := s.be.Remove(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	forged := prefix("land") + store.PackName(sha256.Sum256(b))
	s.put(t, forged, b)
	idx := s.objects(t, "index")
	idxData := map[string][]byte{}
	for _, name := range idx {
		idxData[name] = s.read(t, name)
		if err := s.be.Remove(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	if rep = s.scrub(t, false, 0); !rep.OK() {
		t.Fatalf("forged pack, keyless: a keyless scrub cannot tell, yet found %v", rep.Problems)
	}
	rep = s.scrub(t, true, 0)
	wantFinding(t, "forged pack", rep, forged, "does not open with the registry's blob keys")
	if err := s.be.Remove(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	s.put(t, victim, orig)
	for name, data := range idxData {
		s.put(t, name, data)
	}
	if rep = s.scrub(t, true, 0); !rep.OK() {
		t.Fatalf("restored: %v", rep.Problems)
	}

	// A deleted pack: the index objects still name it.
	if err := s.be.Remove(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	rep = s.scrub(t, false, 0)
	wantFinding(t, "deleted pack", rep, victim, "its pack is missing")

	// And with the index objects gone too, its chunks are in no pack.
	for name := range idxData {
		if err := s.be.Remove(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	rep = s.scrub(t, false, 0)
	wantFinding(t, "missing chunk", rep, "in no pack of the registry's store")
	s.put(t, victim, orig)

	// The rate bounds the reads: at 1 MiB/s the packs' bytes take their
	// size in MiB in seconds, at least.
	rate := int64(1 << 20)
	rep = s.scrub(t, false, rate)
	if min := time.Duration(float64(rep.Bytes) / float64(rate) * float64(time.Second) * 0.9); rep.Elapsed < min || !rep.OK() {
		t.Fatalf("scrub at %d bytes/s read %d bytes in %v (at least %v), %v", rate, rep.Bytes, rep.Elapsed, min, rep.Problems)
	}
}

func TestScrubFS(t *testing.T) {
	be, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testScrub(t, be)
}

func TestScrubS3(t *testing.T) {
	srv := s3test.Start(t)
	be, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: "blobs", Prefix: "guest-scrub",
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region, Insecure: true, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	testScrub(t, be)
}
