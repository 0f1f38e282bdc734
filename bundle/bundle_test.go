package bundle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/bundle"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// Offline seeding, end to end on real ledgers: a home writing sealed
// records with attachments through the registry, real signatures, and
// embassy mirrors behind real Receivers.

const (
	bundlePass  = "bundle test passphrase"
	bundleSouth = "embassy-south" // holds every registry but land
	bundleNorth = "embassy-north" // holds every registry but legal-acts
)

func bundleProtector() keyfile.Protector {
	return keyfile.Protector{Passphrase: []byte(bundlePass), WorkFactor: 10}
}

// bundleHome is a Demo Republic's home: its ledger, keys, blobs and
// registries.
type bundleHome struct {
	t      *testing.T
	layout state.Layout
	c      *charter.Charter
	log    *ledger.Log
	blobs  store.Backend
	regs   *registry.Registries
	n      int // records written, for ids
}

func newBundleHome(t *testing.T) *bundleHome {
	t.Helper()
	ctx := context.Background()
	h := &bundleHome{t: t, layout: state.Layout{Dir: t.TempDir()}}
	c, err := found.Init(ctx, found.InitOptions{Dir: h.layout.Dir, Protector: bundleProtector()})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	if h.log, err = state.OpenLedger(ctx, h.layout, c, "home", bundleProtector(), ledger.Options{CheckpointInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.log.Close(); err != nil {
			t.Errorf("close home ledger: %v", err)
		}
	})
	root, err := seal.ReadRootKeyFile(h.layout.RootKey(), []byte(bundlePass))
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring(c.Guest.ID, root)
	root.Wipe()
	t.Cleanup(keys.Wipe)
	if h.blobs, err = storefs.New(h.layout.Blobs("home")); err != nil {
		t.Fatal(err)
	}
	if h.regs, err = registry.Open(ctx, registry.Options{Charter: c, Site: "home", Log: h.log, Keys: keys, Blobs: h.blobs}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.regs.Close(); err != nil {
			t.Errorf("close registries: %v", err)
		}
	})
	return h
}

// write puts n records, round-robin over every registry, most with an
// attachment of random (incompressible) bytes so each makes a real pack.
func (h *bundleHome) write(n int) {
	h.t.Helper()
	ctx := context.Background()
	for range n {
		h.n++
		def := h.c.Registries[h.n%len(h.c.Registries)]
		id := fmt.Sprintf("R-%04d", h.n)
		rec := map[string]string{"note": "bundle test " + id}
		for _, f := range def.Index {
			rec[f] = id
		}
		data, err := json.Marshal(rec)
		if err != nil {
			h.t.Fatal(err)
		}
		var atts []registry.Attachment
		if h.n%4 != 0 {
			b := make([]byte, 2<<10+h.n*1500)
			rand.Read(b)
			ref, err := h.regs.PutBlob(ctx, def.Name, bytes.NewReader(b))
			if err != nil {
				h.t.Fatal(err)
			}
			atts = []registry.Attachment{{Name: id + ".pdf", Size: ref.Size, Ref: ref}}
		}
		if _, err := h.regs.Put(ctx, def.Name, id, data, atts); err != nil {
			h.t.Fatalf("put %s/%s: %v", def.Name, id, err)
		}
	}
}

// published waits for the checkpoint covering every entry written.
func (h *bundleHome) published() ([]byte, ledger.Checkpoint) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	signed, cp, err := h.log.WaitPublished(ctx, h.log.Size())
	if err != nil {
		h.t.Fatal(err)
	}
	return signed, cp
}

func (h *bundleHome) source() replica.Source {
	return replica.LocalSource{Log: h.log, Blobs: h.regs.Blobs, Backend: h.blobs}
}

// export writes a bundle for site from the home's current checkpoint, in
// batches of four entries so that most carry a consistency proof.
func (h *bundleHome) export(site string, from uint64, root *ledger.Hash) (string, *bundle.Manifest) {
	h.t.Helper()
	h.published()
	dir := filepath.Join(h.t.TempDir(), "bundle")
	m, err := bundle.Export(context.Background(), h.source(), h.c, site, from, dir,
		bundle.ExportOptions{FromRoot: root, MaxBatchEntries: 4})
	if err != nil {
		h.t.Fatalf("export for %s from %d: %v", site, from, err)
	}
	return dir, m
}

// bundleSite is an embassy's mirror of the guest and its receiver.
type bundleSite struct {
	id    string
	dir   string // blobs/ and ledger/
	log   *ledger.Log
	blobs store.Backend
	recv  *replica.Receiver
}

func (h *bundleHome) newSite(id string) *bundleSite {
	h.t.Helper()
	return h.newSiteWith(id, nil)
}

// newSiteWith is newSite with receiver options set by with (a quota, a
// suspension).
func (h *bundleHome) newSiteWith(id string, with func(*replica.ReceiverOptions)) *bundleSite {
	h.t.Helper()
	s := &bundleSite{id: id, dir: h.t.TempDir()}
	var err error
	if s.log, err = ledger.Open(context.Background(), filepath.Join(s.dir, "ledger"),
		ledger.Options{Origin: h.c.Guest.Origin, Mirror: true, CheckpointInterval: time.Millisecond}); err != nil {
		h.t.Fatal(err)
	}
	if s.blobs, err = storefs.New(filepath.Join(s.dir, "blobs")); err != nil {
		h.t.Fatal(err)
	}
	key, err := keyfile.ReadEd25519(h.layout.Key("site-checkpoint", id), bundleProtector())
	if err != nil {
		h.t.Fatal(err)
	}
	cs, err := replica.NewReceiptCosigner(h.c, id, key)
	if err != nil {
		h.t.Fatal(err)
	}
	o := replica.ReceiverOptions{Charter: h.c, Site: id, Log: s.log, Blobs: s.blobs, Cosigner: cs}
	if with != nil {
		with(&o)
	}
	if s.recv, err = replica.NewReceiver(o); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		if err := s.recv.Close(); err != nil {
			h.t.Errorf("close receiver of %s: %v", id, err)
		}
		if err := s.log.Close(); err != nil {
			h.t.Errorf("close mirror of %s: %v", id, err)
		}
	})
	return s
}

func (h *bundleHome) importInto(s *bundleSite, dir string) *bundle.Imported {
	h.t.Helper()
	res, err := bundle.Import(context.Background(), dir, s.recv, nil)
	if err != nil {
		h.t.Fatalf("import into %s: %v", s.id, err)
	}
	return res
}

// checkMirror asserts that the site's mirror publishes exactly the home's
// checkpoint of size and verifies as an auditor would.
func (h *bundleHome) checkMirror(s *bundleSite, signed []byte, size uint64) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, cp, err := s.log.WaitPublished(ctx, size)
	if err != nil {
		h.t.Fatalf("site %s never published size %d: %v", s.id, size, err)
	}
	if cp.Size != size || !bytes.Equal(got, signed) {
		h.t.Fatalf("site %s publishes a checkpoint of size %d, want the home's of size %d:\n%s", s.id, cp.Size, size, got)
	}
	if s.log.MirrorSize() != size {
		h.t.Fatalf("site %s mirror holds %d entries, want %d", s.id, s.log.MirrorSize(), size)
	}
	vs, err := replica.HomeWriter{Charter: h.c}.Verifiers(cp.Epoch)
	if err != nil {
		h.t.Fatal(err)
	}
	rep, err := ledger.Verify(ctx, ledger.DirFetcher(s.log.Dir()), ledger.VerifyOptions{Origin: h.c.Guest.Origin, Verifiers: vs})
	if err != nil {
		h.t.Fatalf("verify the mirror of %s: %v", s.id, err)
	}
	if rep.Checkpoint.Size != size || rep.Checkpoint.Root != cp.Root {
		h.t.Fatalf("verify of %s: checkpoint %+v, want size %d", s.id, rep.Checkpoint, size)
	}
}

// checkBlobs asserts that the site holds every chunk of every record it
// is placed to hold, up to size.
func (h *bundleHome) checkBlobs(s *bundleSite, size uint64) {
	h.t.Helper()
	ctx := context.Background()
	place := replica.Placement{Charter: h.c, Site: s.id}
	stores := map[string]*store.Store{}
	defer func() {
		for _, st := range stores {
			st.Close()
		}
	}()
	var checked int
	err := ledger.Scan(ctx, ledger.DirFetcher(h.log.Dir()), 0, size, func(idx uint64, e []byte) error {
		reg, ok, rec, err := place.Entry(e)
		if err != nil || !ok || rec == nil || len(rec.Chunks) == 0 {
			return err
		}
		ids := rec.Chunks
		st := stores[reg]
		if st == nil {
			if st, err = store.Open(ctx, store.Prefixed(s.blobs, registry.BlobPrefix(reg)), store.Options{}); err != nil {
				return err
			}
			stores[reg] = st
		}
		for _, id := range ids {
			if !st.Has(id) {
				return fmt.Errorf("entry %d (%s): chunk %x missing at %s", idx, reg, id[:8], s.id)
			}
		}
		checked++
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if checked == 0 {
		h.t.Fatalf("no attachment checked at %s", s.id)
	}
}

func TestBundleRoundTripEmptySite(t *testing.T) {
	h := newBundleHome(t)
	h.write(24)
	signed, cp := h.published()
	dir, m := h.export(bundleSouth, 0, nil)
	if m.From != 0 || m.Size != cp.Size || m.Site != bundleSouth || m.Guest != h.c.Guest.ID || m.Origin != h.c.Guest.Origin {
		t.Fatalf("manifest %+v", m)
	}
	nBatches := 0
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "batches/") {
			nBatches++
		}
	}
	if nBatches < 3 || m.Packs() == 0 {
		t.Fatalf("bundle has %d batches and %d packs; the test wants several of each", nBatches, m.Packs())
	}
	checkBundlePerms(t, dir)

	s := h.newSite(bundleSouth)
	res := h.importInto(s, dir)
	if res.Size != cp.Size || res.Entries != cp.Size || res.Packs != m.Packs() || res.Withheld != m.Withheld {
		t.Fatalf("import %+v; manifest %+v", res, m)
	}
	if _, _, err := replica.OpenReceipt(h.c, replica.HomeWriter{Charter: h.c}, bundleSouth, res.Receipt); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	h.checkMirror(s, signed, cp.Size)
	h.checkBlobs(s, cp.Size)

	// Replication continues from there by itself: a shipper resumes from
	// the site's state, sending nothing the bundle brought.
	h.write(6)
	signed2, cp2 := h.published()
	tr := replica.NewTracker([]string{bundleSouth}, nil)
	sh, err := replica.NewShipper(replica.ShipperOptions{Charter: h.c, Site: bundleSouth, Source: h.source(), Sink: s.recv,
		Tracker: tr, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sh.Run(ctx)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	err = tr.WaitSite(wctx, bundleSouth, cp2.Size-1)
	wcancel()
	cancel()
	<-done
	if err != nil {
		t.Fatalf("replication after the bundle: %v", err)
	}
	h.checkMirror(s, signed2, cp2.Size)
	h.checkBlobs(s, cp2.Size)
	if got := s.recv.Stats().Entries; got != int64(cp2.Size) {
		t.Errorf("the site took %d entries in all, want each of %d once", got, cp2.Size)
	}
}

func TestBundleIntoSiteHoldingPrefix(t *testing.T) {
	h := newBundleHome(t)
	h.write(10)
	_, cp1 := h.published()
	s := h.newSite(bundleNorth)
	dir1, _ := h.export(bundleNorth, 0, nil)
	h.importInto(s, dir1)

	h.write(14)
	signed, cp := h.published()
	// The site's own checkpoint tells the exporter where it stands.
	_, hcp := s.log.Checkpoint()
	if hcp.Size != cp1.Size {
		t.Fatalf("site publishes size %d, want %d", hcp.Size, cp1.Size)
	}
	// A root that is not the site's is a fork: the export refuses it.
	bad := hcp.Root
	bad[0] ^= 1
	if _, err := bundle.Export(context.Background(), h.source(), h.c, bundleNorth, hcp.Size, filepath.Join(t.TempDir(), "b"),
		bundle.ExportOptions{FromRoot: &bad}); err == nil || !strings.Contains(err.Error(), "not a prefix") {
		t.Fatalf("export from a forked root: %v", err)
	}
	dir, m := h.export(bundleNorth, hcp.Size, &hcp.Root)
	if m.From != cp1.Size || m.Size != cp.Size {
		t.Fatalf("manifest from %d size %d, want %d and %d", m.From, m.Size, cp1.Size, cp.Size)
	}
	res := h.importInto(s, dir)
	if res.Entries != cp.Size-cp1.Size || res.Size != cp.Size {
		t.Fatalf("import %+v", res)
	}
	h.checkMirror(s, signed, cp.Size)
	h.checkBlobs(s, cp.Size)
}

func TestBundlePlacement(t *testing.T) {
	h := newBundleHome(t)
	h.write(20)
	dirS, mS := h.export(bundleSouth, 0, nil)
	dirN, _ := h.export(bundleNorth, 0, nil)

	for _, tc := range []struct {
		dir, site, absent, present string
	}{
		{dirS, bundleSouth, "land", "legal-acts"},
		{dirN, bundleNorth, "legal-acts", "land"},
	} {
		if _, err := os.Stat(filepath.Join(tc.dir, "blobs", tc.absent)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("bundle for %s holds packs of %s, which the charter does not place there (%v)", tc.site, tc.absent, err)
		}
		if _, err := os.Stat(filepath.Join(tc.dir, "blobs", tc.present)); err != nil {
			t.Errorf("bundle for %s lacks the packs of %s: %v", tc.site, tc.present, err)
		}
		withheld := 0
		for _, e := range bundleEntries(t, tc.dir) {
			d, err := ledger.DecodeEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			switch d.Type {
			case ledger.TypeWithheld:
				withheld++
			case ledger.TypeRecord:
				rec, err := registry.UnmarshalRecordEntry(d.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if rec.Registry == tc.absent {
					t.Errorf("bundle for %s carries a %s record unwithheld", tc.site, tc.absent)
				}
			}
		}
		if withheld == 0 {
			t.Errorf("bundle for %s withholds nothing", tc.site)
		}
	}
	// The 20 records go round-robin over the charter's registries: those
	// of registries not placed at south (land) are withheld.
	want := uint64(0)
	for i := range 20 {
		if !slices.Contains(h.c.Registries[i%len(h.c.Registries)].Sites, bundleSouth) {
			want++
		}
	}
	if want == 0 || mS.Withheld != want {
		t.Errorf("manifest for south counts %d withheld stubs, want %d", mS.Withheld, want)
	}

	// A site the bundle was not made for refuses it whole: north may hold
	// land, and a bundle cut for south lacks it.
	s := h.newSite(bundleNorth)
	_, err := bundle.Import(context.Background(), dirS, s.recv, nil)
	assertBundleRefused(t, err, "manifest.json", "made for site")
}

// bundleEntries reads every entry of a bundle's batches, in order.
func bundleEntries(t *testing.T, dir string) [][]byte {
	t.Helper()
	m := readBundleManifest(t, dir)
	var out [][]byte
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, "batches/") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		b, err := replica.ParseBatch(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Entries...)
	}
	return out
}

func checkBundlePerms(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if p != dir && fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readBundleManifest(t *testing.T, dir string) *bundle.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, bundle.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m bundle.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func writeBundleManifest(t *testing.T, dir string, m *bundle.Manifest) {
	t.Helper()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ManifestName), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rehash makes the manifest agree with a file as it now is: a forger's
// bundle rather than a damaged one.
func rehash(t *testing.T, dir, path string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		t.Fatal(err)
	}
	m := readBundleManifest(t, dir)
	for i := range m.Files {
		if m.Files[i].Path == path {
			sum := sha256.Sum256(data)
			m.Files[i].SHA256, m.Files[i].Size = hex.EncodeToString(sum[:]), int64(len(data))
		}
	}
	writeBundleManifest(t, dir, m)
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(data)
	}
	data[off] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// recordOffset is where, in an encoded batch, the first entry that is
// not a withheld stub begins. (A stub's leaf is the hash it carries, so
// only its payload is covered by the tree; a record's every byte is.)
func recordOffset(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replica.ParseBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	off := 8 + 8 + 4 + len(b.Checkpoint) + 1 + 32*len(b.Proof) + 4
	for _, e := range b.Entries {
		if got := binary.BigEndian.Uint16(data[off:]); int(got) != len(e) {
			t.Fatalf("batch layout: entry length %d at %d, want %d", got, off, len(e))
		}
		off += 2
		if e[1] != byte(ledger.TypeWithheld) {
			return off
		}
		off += len(e)
	}
	t.Fatalf("%s holds only withheld stubs", path)
	return 0
}

func copyBundle(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// siteFilesDigest is every file under a directory with its hash.
func siteFilesDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertBundleRefused(t *testing.T, err error, part, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("bundle accepted; want refused at %s", part)
	}
	var be *bundle.Error
	if !errors.As(err, &be) || !errors.Is(err, replica.ErrRefused) {
		t.Fatalf("error %v (%T) is not a refused bundle", err, err)
	}
	if be.Part != part || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q names part %q; want part %q and %q in the message", err, be.Part, part, msg)
	}
}

func TestBundleDamage(t *testing.T) {
	h := newBundleHome(t)
	h.write(10)
	s := h.newSite(bundleSouth)
	old, _ := h.export(bundleSouth, 0, nil)
	h.importInto(s, old)
	held := s.log.MirrorSize()

	h.write(20)
	good, m := h.export(bundleSouth, held, nil)
	other, _ := h.export(bundleNorth, held, nil)
	var batches, packs []string
	for _, f := range m.Files {
		switch {
		case strings.HasPrefix(f.Path, "batches/"):
			batches = append(batches, f.Path)
		case strings.HasPrefix(f.Path, "blobs/"):
			packs = append(packs, f.Path)
		}
	}
	if len(batches) < 3 || len(packs) < 2 {
		t.Fatalf("%d batches and %d packs: the test wants more", len(batches), len(packs))
	}
	// Flipping an entry's time leaves it decodable and its leaf changed.
	flipTime := func(dir, batch string) {
		path := filepath.Join(dir, batch)
		flipByte(t, path, recordOffset(t, path)+17)
	}

	cases := []struct {
		name   string
		bundle string // default: a copy of good
		damage func(dir string)
		part   string
		msg    string
	}{
		{name: "batch entry flipped", damage: func(dir string) {
			flipTime(dir, batches[0])
		}, part: batches[0], msg: "SHA-256"},
		{name: "batch entry flipped, manifest rehashed", damage: func(dir string) {
			flipTime(dir, batches[0])
			rehash(t, dir, batches[0])
		}, part: batches[0], msg: "not a prefix of the checkpoint"},
		{name: "last batch entry flipped, manifest rehashed", damage: func(dir string) {
			flipTime(dir, batches[len(batches)-1])
			rehash(t, dir, batches[len(batches)-1])
		}, part: batches[len(batches)-1], msg: "give root"},
		{name: "entry version flipped, manifest rehashed", damage: func(dir string) {
			// The version byte of the batch's first entry: it no longer
			// decodes, and the error names its index.
			path := filepath.Join(dir, batches[1])
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := replica.ParseBatch(data)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, path, 8+8+4+len(b.Checkpoint)+1+32*len(b.Proof)+4+2)
			rehash(t, dir, batches[1])
		}, part: "entry " + strings.TrimSuffix(strings.TrimPrefix(batches[1], "batches/"), ".batch"), msg: "entry version"},
		{name: "pack flipped", damage: func(dir string) {
			flipByte(t, filepath.Join(dir, packs[1]), 100)
		}, part: packs[1], msg: "does not match its name"},
		{name: "pack flipped, manifest rehashed", damage: func(dir string) {
			flipByte(t, filepath.Join(dir, packs[1]), 100)
			rehash(t, dir, packs[1])
		}, part: packs[1], msg: "a pack's is its name"},
		{name: "checkpoint signature flipped", damage: func(dir string) {
			flipByte(t, filepath.Join(dir, "checkpoint"), -5)
		}, part: "checkpoint", msg: "SHA-256"},
		{name: "checkpoint signature flipped, manifest rehashed", damage: func(dir string) {
			flipByte(t, filepath.Join(dir, "checkpoint"), -5)
			rehash(t, dir, "checkpoint")
		}, part: "checkpoint", msg: "open checkpoint"},
		{name: "batch missing", damage: func(dir string) {
			if err := os.Remove(filepath.Join(dir, batches[1])); err != nil {
				t.Fatal(err)
			}
		}, part: batches[1], msg: "no such file"},
		{name: "unlisted file", damage: func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, "blobs", "README.txt"), []byte("hello"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, part: "blobs/README.txt", msg: "not listed"},
		{name: "manifest hash mismatch", damage: func(dir string) {
			mm := readBundleManifest(t, dir)
			for i := range mm.Files {
				if mm.Files[i].Path == batches[2] {
					mm.Files[i].SHA256 = strings.Repeat("ab", 32)
				}
			}
			writeBundleManifest(t, dir, mm)
		}, part: batches[2], msg: "the manifest says " + strings.Repeat("ab", 32)},
		{name: "manifest missing", damage: func(dir string) {
			if err := os.Remove(filepath.Join(dir, bundle.ManifestName)); err != nil {
				t.Fatal(err)
			}
		}, part: "manifest.json", msg: "did not finish"},
		{name: "bundle for another site", bundle: other, part: "manifest.json", msg: `made for site "embassy-north"`},
		{name: "from is not the site's size", bundle: old, part: "manifest.json", msg: fmt.Sprintf("starts at entry 0, site %s holds %d entries", bundleSouth, held)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.bundle
			if src == "" {
				src = good
			}
			dir := copyBundle(t, src)
			if tc.damage != nil {
				tc.damage(dir)
			}
			blobsBefore := siteFilesDigest(t, filepath.Join(s.dir, "blobs"))
			sizeBefore := s.log.MirrorSize()
			_, err := bundle.Import(context.Background(), dir, s.recv, nil)
			assertBundleRefused(t, err, tc.part, tc.msg)
			if tc.bundle == old && !errors.Is(err, replica.ErrGap) {
				t.Errorf("error %v does not wrap ErrGap", err)
			}
			if got := s.log.MirrorSize(); got != sizeBefore {
				t.Errorf("refused import changed the mirror: %d entries, was %d", got, sizeBefore)
			}
			blobsAfter := siteFilesDigest(t, filepath.Join(s.dir, "blobs"))
			if fmt.Sprint(blobsAfter) != fmt.Sprint(blobsBefore) {
				t.Errorf("refused import changed the blob directory:\nbefore %v\nafter  %v", blobsBefore, blobsAfter)
			}
		})
	}

	// Verify alone agrees, and the good bundle still goes in.
	if _, err := bundle.Verify(context.Background(), good, h.c, nil, bundleSouth, bundle.Holding{Log: s.log, Blobs: s.blobs}); err != nil {
		t.Fatalf("verify the good bundle: %v", err)
	}
	signed, cp := h.published()
	h.importInto(s, good)
	h.checkMirror(s, signed, cp.Size)
	h.checkBlobs(s, cp.Size)
}

// A chunk referenced by a record must come with the bundle or be at the
// site already: a bundle whose pack was removed, manifest and all, is
// refused naming the entry.
func TestBundleMissingPack(t *testing.T) {
	h := newBundleHome(t)
	h.write(8)
	dir, m := h.export(bundleSouth, 0, nil)
	var drop string
	kept := m.Files[:0]
	for _, f := range m.Files {
		if drop == "" && strings.HasPrefix(f.Path, "blobs/") {
			drop = f.Path
			continue
		}
		kept = append(kept, f)
	}
	m.Files = kept
	if err := os.Remove(filepath.Join(dir, drop)); err != nil {
		t.Fatal(err)
	}
	writeBundleManifest(t, dir, m)
	s := h.newSite(bundleSouth)
	_, err := bundle.Import(context.Background(), dir, s.recv, nil)
	var be *bundle.Error
	if !errors.As(err, &be) || !strings.HasPrefix(be.Part, "entry ") || !errors.Is(err, replica.ErrMissingBlob) {
		t.Fatalf("import without pack %s: %v; want a refusal naming an entry", drop, err)
	}
	if s.log.MirrorSize() != 0 {
		t.Fatalf("refused import left %d entries", s.log.MirrorSize())
	}
}

// The site's own receiver decides whether a bundle fits the guest's quota
// and whether the host suspends the guest, before a byte is taken: the
// packs would otherwise go in (PutObject does not ask about suspension)
// and the batches be refused after them.
func TestBundleQuotaAndSuspension(t *testing.T) {
	h := newBundleHome(t)
	h.write(8)
	signed, cp := h.published()
	dir, m := h.export(bundleSouth, 0, nil)
	// What the import asks room for: every batch and pack (the
	// checkpoint travels inside each batch).
	var need int64
	for _, f := range m.Files {
		if f.Path != "checkpoint" {
			need += f.Size
		}
	}

	for _, tc := range []struct {
		name string
		with func(*replica.ReceiverOptions)
		want error
	}{
		// Room for all but one byte of it.
		{"quota", func(o *replica.ReceiverOptions) { o.Quota = need - 1 }, replica.ErrQuota},
		{"suspended", func(o *replica.ReceiverOptions) {
			o.Suspended = func() error { return errors.New("notice of suspension 7") }
		}, replica.ErrSuspended},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.newSiteWith(bundleSouth, tc.with)
			before := siteFilesDigest(t, filepath.Join(s.dir, "blobs"))
			res, err := bundle.Import(context.Background(), dir, s.recv, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("import: %v; want %v", err, tc.want)
			}
			if res == nil || res.Before != 0 || res.Entries != 0 || res.Packs != 0 {
				t.Fatalf("refused import reports %+v", res)
			}
			if s.log.MirrorSize() != 0 || s.recv.Used() != 0 {
				t.Fatalf("refused import left %d entries, %d bytes counted", s.log.MirrorSize(), s.recv.Used())
			}
			if after := siteFilesDigest(t, filepath.Join(s.dir, "blobs")); len(after) != len(before) {
				t.Fatalf("refused import stored %d blob files", len(after)-len(before))
			}
		})
	}

	// Exactly the room it needs: taken, and counted against the quota.
	s := h.newSiteWith(bundleSouth, func(o *replica.ReceiverOptions) { o.Quota = need })
	res := h.importInto(s, dir)
	if res.Size != cp.Size {
		t.Fatalf("import %+v", res)
	}
	if used := s.recv.Used(); used <= 0 || used > need {
		t.Fatalf("the site counts %d bytes for a bundle of %d", used, need)
	}
	h.checkMirror(s, signed, cp.Size)
}
