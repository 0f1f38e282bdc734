package replica_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/store"
)

// writeAll puts n records in every registry, every other one with an
// attachment, from one goroutine per registry, and returns the records by
// registry with the attachments' contents by record id.
func writeAll(t *testing.T, f *fixture, n int) (map[string][]*registry.Record, map[string][]byte) {
	t.Helper()
	var (
		mu   sync.Mutex
		recs = map[string][]*registry.Record{}
		atts = map[string][]byte{}
		wg   sync.WaitGroup
		errs = make(chan error, len(f.registries()))
	)
	for _, reg := range f.registries() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				id := fmt.Sprintf("%s-%d", reg, i)
				var att []byte
				if i%2 == 0 {
					att = randomBytes(8<<10 + i*1500)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := f.put(ctx, reg, id, att)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", id, err)
					return
				}
				mu.Lock()
				recs[reg] = append(recs[reg], r)
				if att != nil {
					atts[id] = att
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return recs, atts
}

// TestReplicateEveryRegistry: records with attachments in every registry
// reach both embassies; each mirror publishes the home's checkpoint byte
// for byte and verifies with the home's key; the registries the charter
// keeps from a site arrive there only as withheld stubs; and the land
// attachments shipped to north read back with the guest's keys.
func TestReplicateEveryRegistry(t *testing.T) {
	n := 6
	if testing.Short() {
		n = 4
	}
	f := newFixture(t, fixtureOptions{})
	recs, atts := writeAll(t, f, n)
	signed, cp := f.published()
	f.waitSites(cp.Size, 10*time.Second, embassies...)

	homeCheckpoint, err := os.ReadFile(filepath.Join(f.home.Dir(), ledger.CheckpointPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(homeCheckpoint, signed) {
		t.Fatalf("home's checkpoint file is not its published checkpoint")
	}
	// Count by registry what the home wrote.
	count := map[string]uint64{}
	for _, e := range f.homeEntries(cp.Size) {
		if rec := recordOf(t, e); rec != nil {
			count[rec.Registry]++
		}
	}
	if count["land"] != uint64(n) || count["legal-acts"] != uint64(n) {
		t.Fatalf("home holds %v record entries by registry, want %d each", count, n)
	}
	withheld := map[string]uint64{north: count["legal-acts"], south: count["land"]}

	for _, id := range embassies {
		s := f.sites[id]
		m := s.mirror()
		if got := m.MirrorSize(); got != cp.Size {
			t.Errorf("site %s: mirror size %d, writer %d", id, got, cp.Size)
		}
		// The receipt is given once entries are durable; the checkpoint is
		// published once their tiles are written.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		mSigned, _, err := m.WaitPublished(ctx, cp.Size)
		cancel()
		if err != nil {
			t.Fatalf("site %s: %v", id, err)
		}
		if !bytes.Equal(mSigned, signed) {
			t.Errorf("site %s publishes\n%s\nthe home published\n%s", id, mSigned, signed)
		}
		onDisk, err := os.ReadFile(filepath.Join(s.ledger, ledger.CheckpointPath))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, homeCheckpoint) {
			t.Errorf("site %s: checkpoint file differs from the home's", id)
		}
		rep := f.verify(s.ledger)
		if rep.Entries != cp.Size || rep.Checkpoint.Root != cp.Root {
			t.Errorf("site %s: verify saw %d entries, root %x; writer %d, %x", id, rep.Entries, rep.Checkpoint.Root, cp.Size, cp.Root)
		}
		if got := rep.ByType[ledger.TypeWithheld]; got != withheld[id] {
			t.Errorf("site %s holds %d withheld stubs, want %d", id, got, withheld[id])
		}
		if got := rep.ByType[ledger.TypeRecord]; got != cp.Size-withheld[id] {
			t.Errorf("site %s holds %d records, want %d", id, got, cp.Size-withheld[id])
		}
		st := s.receiver().Stats()
		if st.Refused != 0 {
			t.Errorf("site %s refused %d times", id, st.Refused)
		}
		if uint64(st.Withheld) != withheld[id] {
			t.Errorf("site %s counted %d withheld entries, want %d", id, st.Withheld, withheld[id])
		}
	}
	for _, l := range f.repl.Tracker().Lags() {
		if l.Entries != 0 || l.Size != cp.Size || !l.Connected {
			t.Errorf("lag of %s: %+v", l.Site, l)
		}
	}

	// The land attachments at north open with the guest's keys.
	seed, err := f.keys.ChunkerSeed()
	if err != nil {
		t.Fatal(err)
	}
	chunking, err := store.ChunkingFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Prefixed(f.sites[north].blobs, registry.BlobPrefix("land")), store.Options{Chunking: chunking})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	read := 0
	for _, r := range recs["land"] {
		for _, a := range r.Attachments {
			var buf bytes.Buffer
			if err := st.Get(ctx, f.keys.Registry("land").Blobs(), a.Ref, &buf); err != nil {
				t.Fatalf("land attachment of %s at north: %v", r.ID, err)
			}
			if !bytes.Equal(buf.Bytes(), atts[r.ID]) {
				t.Fatalf("land attachment of %s at north: %d bytes differ from the %d written", r.ID, buf.Len(), len(atts[r.ID]))
			}
			read++
		}
	}
	if read != (n+1)/2 {
		t.Fatalf("read %d land attachments at north, want %d", read, (n+1)/2)
	}
	// And south, which may not hold land, has no land store at all.
	if _, err := os.Stat(filepath.Join(f.sites[south].blobDir, "registries", "land")); err == nil {
		t.Errorf("south has a land blob directory")
	}
}

// searchMargin is longer than any needle TestPlacementOnDisk looks for.
const searchMargin = ledger.MaxEntrySize

// readTrimmed reads a file whole, except that a run of zeros at its end
// is cut to searchMargin bytes: write-ahead log segments are preallocated,
// and reading 64 MiB of zeros per segment into memory would dominate the
// test. Only an all-zero needle could be missed.
func readTrimmed(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []byte
	zeroRun := 0 // zero chunks read but not yet appended
	for {
		n, err := io.ReadFull(f, buf)
		if c := buf[:n]; bytes.Equal(c, zeroChunk[:n]) {
			zeroRun += n
		} else {
			out = append(out, make([]byte, zeroRun)...)
			out = append(out, c...)
			zeroRun = 0
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return append(out, make([]byte, min(zeroRun, searchMargin))...), nil
}

// zeroChunk is never written: it is what a chunk of zeros looks like.
var zeroChunk = make([]byte, readChunk)

const readChunk = 1 << 20

// siteFiles reads every file under a site's directories.
func siteFiles(t *testing.T, s *testSite) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	buf := make([]byte, readChunk)
	for _, root := range []string{s.ledger, s.blobDir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := readTrimmed(p, buf)
			if err != nil {
				return err
			}
			out[p] = b
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatalf("site %s holds no files", s.id)
	}
	return out
}

// TestPlacementOnDisk: once replicated, no file at a site holds the sealed
// body of a record of a registry the charter keeps from it, nor the name
// or id of any of that registry's packs; the same search finds what the
// site may hold.
func TestPlacementOnDisk(t *testing.T) {
	n := 4
	if testing.Short() {
		n = 2
	}
	f := newFixture(t, fixtureOptions{})
	writeAll(t, f, n)
	_, cp := f.published()
	f.waitSites(cp.Size, 10*time.Second, embassies...)
	// Let the mirrors write their tiles as well as their log.
	for _, id := range embassies {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := f.sites[id].mirror().WaitPublished(ctx, cp.Size)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	sealed := map[string][][]byte{}
	for _, e := range f.homeEntries(cp.Size) {
		if rec := recordOf(t, e); rec != nil {
			sealed[rec.Registry] = append(sealed[rec.Registry], rec.Sealed)
		}
	}
	type secret struct {
		what string
		b    []byte
	}
	secretsOf := func(reg string) []secret {
		var out []secret
		for i, s := range sealed[reg] {
			out = append(out, secret{fmt.Sprintf("sealed body %d of %s", i, reg), s})
		}
		packs := f.packsOf(reg)
		if len(packs) == 0 {
			t.Fatalf("registry %s has no packs at the home", reg)
		}
		for _, p := range packs {
			h := strings.TrimPrefix(p, "data/")
			id, _ := hex.DecodeString(h)
			out = append(out, secret{"pack name " + p, []byte(h)}, secret{"pack id " + h[:16], id})
		}
		return out
	}
	find := func(files map[string][]byte, s secret) string {
		for p, b := range files {
			if bytes.Contains(b, s.b) || strings.Contains(p, string(s.b)) {
				return p
			}
		}
		return ""
	}
	for _, tc := range []struct{ site, kept, control string }{
		{south, "land", "population"},
		{north, "legal-acts", "business"},
	} {
		files := siteFiles(t, f.sites[tc.site])
		for _, s := range secretsOf(tc.kept) {
			if p := find(files, s); p != "" {
				t.Errorf("site %s holds %s in %s", tc.site, s.what, p)
			}
		}
		// Positive control: the same search finds what the site may hold.
		for _, s := range secretsOf(tc.control) {
			if find(files, s) == "" {
				t.Errorf("control: site %s should hold %s but the search found it nowhere", tc.site, s.what)
			}
		}
	}
}
