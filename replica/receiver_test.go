package replica_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// remoteFor serves a receiver over loopback HTTP and returns its client.
func remoteFor(t *testing.T, f *fixture, r *replica.Receiver) *replica.Remote {
	t.Helper()
	srv := httptest.NewServer(f.serve(r))
	t.Cleanup(srv.Close)
	return &replica.Remote{Base: srv.URL, Guest: f.guest, Client: f.client}
}

// shipPacks gives a receiver the packs a batch's records reference.
func shipPacks(t *testing.T, f *fixture, sink replica.Sink, b *replica.Batch) int {
	t.Helper()
	ctx := context.Background()
	src := replica.LocalSource{Log: f.home, Blobs: f.regs.Blobs, Backend: f.homeBlobs}
	n := 0
	for _, e := range b.Entries {
		rec := recordOf(t, e)
		if rec == nil || len(rec.Chunks) == 0 {
			continue
		}
		ids, err := replica.Chunks(rec)
		if err != nil {
			t.Fatal(err)
		}
		names, err := src.Locate(ctx, rec.Registry, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			data, err := src.Object(ctx, rec.Registry, name)
			if err != nil {
				t.Fatal(err)
			}
			if err := sink.PutObject(ctx, rec.Registry, name, data); err != nil {
				t.Fatalf("ship %s of %s: %v", name, rec.Registry, err)
			}
			n++
		}
	}
	return n
}

// TestQuota: a guest over its quota at a site is refused with ErrQuota,
// in process and across HTTP (507), for entries and for packs alike, and
// nothing of what was refused is kept.
func TestQuota(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	for i := range 24 {
		f.mustPut("business", fmt.Sprintf("B-%d", i), nil)
	}
	signed, cp := f.published()
	f.mustPut("business", "B-att", randomBytes(32<<10))
	b := f.batch(north, 0, cp.Size, signed, false)
	batchBytes := 0
	for _, e := range b.Entries {
		batchBytes += len(e)
	}
	const quota = 4 << 10
	if batchBytes <= quota {
		t.Fatalf("batch of %d bytes fits the %d-byte quota", batchBytes, quota)
	}
	packs := f.packsOf("business")
	if len(packs) != 1 {
		t.Fatalf("business has %d packs", len(packs))
	}
	pack, err := replica.LocalSource{Backend: f.homeBlobs}.Object(context.Background(), "business", packs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(pack) <= quota {
		t.Fatalf("pack of %d bytes fits the quota", len(pack))
	}

	ctx := context.Background()
	for _, via := range []string{"in process", "http"} {
		t.Run(via, func(t *testing.T) {
			f := f.with(t)
			r, _ := f.freshReceiver(north, quota)
			var sink replica.Sink = r
			if via == "http" {
				sink = remoteFor(t, f, r)
			}
			_, err := sink.Accept(ctx, b)
			if !errors.Is(err, replica.ErrQuota) {
				t.Fatalf("batch of %d bytes over a %d-byte quota: %v, want ErrQuota", batchBytes, quota, err)
			}
			err = sink.PutObject(ctx, "business", packs[0], pack)
			if !errors.Is(err, replica.ErrQuota) {
				t.Fatalf("pack of %d bytes over a %d-byte quota: %v, want ErrQuota", len(pack), quota, err)
			}
			if got := r.Log().MirrorSize(); got != 0 {
				t.Fatalf("mirror holds %d entries after a refusal", got)
			}
			if r.Used() != 0 {
				t.Fatalf("receiver counts %d bytes used after refusals", r.Used())
			}
			if missing, err := sink.Missing(ctx, "business", packs); err != nil || len(missing) != 1 {
				t.Fatalf("pack kept after a refusal: missing %v, %v", missing, err)
			}
			if st := r.Stats(); st.Refused != 2 || st.Batches != 0 || st.Objects != 0 {
				t.Fatalf("stats after two refusals: %+v", st)
			}
			st, err := sink.State(ctx)
			if err != nil || st.Size != 0 || st.Receipt != nil {
				t.Fatalf("state after refusals: %+v, %v", st, err)
			}
		})
	}
	// Control: with room enough, the same batch and pack are taken.
	r, _ := f.freshReceiver(north, int64(batchBytes+len(pack)))
	if _, err := r.Accept(ctx, b); err != nil {
		t.Fatalf("batch within the quota: %v", err)
	}
	if err := r.PutObject(ctx, "business", packs[0], pack); err != nil {
		t.Fatalf("pack within the quota: %v", err)
	}
	if r.Used() != int64(batchBytes+len(pack)) {
		t.Fatalf("used %d, want %d", r.Used(), batchBytes+len(pack))
	}
	if err := r.PutObject(ctx, "business", packs[0], pack); err != nil {
		t.Fatalf("the same pack again: %v", err)
	}
	if r.Used() != int64(batchBytes+len(pack)) {
		t.Fatalf("a pack sent twice counted twice: used %d", r.Used())
	}
}

// TestReceiverRefusals: a receiver refuses a checkpoint not signed by the
// writer, an entry of a registry the charter keeps from the site, a
// record whose blobs were not shipped, an altered pack, and a batch that
// does not start at its size; each keeps nothing, and the honest batch is
// taken afterwards. Errors keep their identity across HTTP.
func TestReceiverRefusals(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	f.mustPut("population", "P-1", nil)
	land := f.mustPut("land", "L-1", randomBytes(20<<10))
	f.mustPut("legal-acts", "A-1", nil)
	f.mustPut("business", "B-1", nil)
	signed, cp := f.published()
	ctx := context.Background()
	for _, via := range []string{"in process", "http"} {
		sinkFor := func(t *testing.T, r *replica.Receiver) replica.Sink {
			if via == "http" {
				return remoteFor(t, f, r)
			}
			return r
		}
		t.Run(via+"/checkpoint of another key", func(t *testing.T) {
			f := f.with(t)
			r, _ := f.freshReceiver(north, 0)
			text, err := ledger.SplitNote(signed)
			if err != nil {
				t.Fatal(err)
			}
			signer, _, err := ledger.NewLogSigner(f.c.Guest.Origin, f.siteKey(north))
			if err != nil {
				t.Fatal(err)
			}
			forged, err := note.Sign(&note.Note{Text: string(text)}, signer)
			if err != nil {
				t.Fatal(err)
			}
			b := f.batch(north, 0, cp.Size, forged, false)
			shipPacks(t, f, r, b)
			_, err = sinkFor(t, r).Accept(ctx, b)
			if !errors.Is(err, replica.ErrRefused) {
				t.Fatalf("checkpoint signed by north's key: %v, want ErrRefused", err)
			}
			if got := r.Log().MirrorSize(); got != 0 {
				t.Fatalf("mirror holds %d entries", got)
			}
			// Control: the writer's own checkpoint over the same entries.
			b.Checkpoint = signed
			receipt, err := sinkFor(t, r).Accept(ctx, b)
			if err != nil || receipt == nil {
				t.Fatalf("the writer's batch: receipt %q, %v", receipt, err)
			}
			got, _, err := replica.OpenReceipt(f.c, replica.HomeWriter{Charter: f.c}, north, receipt)
			if err != nil || got.Size != cp.Size {
				t.Fatalf("receipt: %+v, %v", got, err)
			}
			if _, _, err := replica.OpenReceipt(f.c, replica.HomeWriter{Charter: f.c}, south, receipt); err == nil {
				t.Fatal("north's receipt opens as south's")
			}
		})
		t.Run(via+"/registry not placed", func(t *testing.T) {
			f := f.with(t)
			r, dir := f.freshReceiver(south, 0)
			b := f.batch(south, 0, cp.Size, signed, true)
			_, err := sinkFor(t, r).Accept(ctx, b)
			if !errors.Is(err, replica.ErrNotPlaced) {
				t.Fatalf("land entry sent whole to south: %v, want ErrNotPlaced", err)
			}
			if got := r.Log().MirrorSize(); got != 0 {
				t.Fatalf("mirror holds %d entries", got)
			}
			// Nor may south be given land's packs.
			names := f.packsOf("land")
			data, err := replica.LocalSource{Backend: f.homeBlobs}.Object(ctx, "land", names[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := sinkFor(t, r).PutObject(ctx, "land", names[0], data); !errors.Is(err, replica.ErrNotPlaced) {
				t.Fatalf("land pack to south: %v, want ErrNotPlaced", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "blobs", "registries", "land")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("south's blobs have a land directory: %v", err)
			}
			// Control: withheld, the same entries are taken.
			if _, err := sinkFor(t, r).Accept(ctx, f.batch(south, 0, cp.Size, signed, false)); err != nil {
				t.Fatalf("batch with land withheld: %v", err)
			}
		})
		t.Run(via+"/blob not shipped", func(t *testing.T) {
			f := f.with(t)
			r, _ := f.freshReceiver(north, 0)
			b := f.batch(north, 0, cp.Size, signed, false)
			_, err := sinkFor(t, r).Accept(ctx, b)
			if !errors.Is(err, replica.ErrMissingBlob) {
				t.Fatalf("land record %d without its pack: %v, want ErrMissingBlob", land.Index, err)
			}
			if got := r.Log().MirrorSize(); got != 0 {
				t.Fatalf("mirror holds %d entries", got)
			}
			// An altered pack is refused and not kept.
			names := f.packsOf("land")
			data, err := replica.LocalSource{Backend: f.homeBlobs}.Object(ctx, "land", names[0])
			if err != nil {
				t.Fatal(err)
			}
			bad := append([]byte(nil), data...)
			bad[len(bad)/2] ^= 1
			err = sinkFor(t, r).PutObject(ctx, "land", names[0], bad)
			if !errors.Is(err, replica.ErrRefused) || !strings.Contains(err.Error(), names[0]) {
				t.Fatalf("altered pack: %v, want ErrRefused naming %s", err, names[0])
			}
			if _, err := sinkFor(t, r).Accept(ctx, b); !errors.Is(err, replica.ErrMissingBlob) {
				t.Fatalf("after an altered pack: %v, want ErrMissingBlob", err)
			}
			// Control: once the pack is shipped, the batch is taken.
			if n := shipPacks(t, f, sinkFor(t, r), b); n != 1 {
				t.Fatalf("shipped %d packs", n)
			}
			if _, err := sinkFor(t, r).Accept(ctx, b); err != nil {
				t.Fatalf("batch after its pack: %v", err)
			}
		})
		t.Run(via+"/gap", func(t *testing.T) {
			f := f.with(t)
			r, _ := f.freshReceiver(south, 0)
			first := f.batch(south, 0, 2, signed, false)
			if len(first.Proof) == 0 {
				t.Fatal("a batch short of its checkpoint carries no proof")
			}
			receipt, err := sinkFor(t, r).Accept(ctx, first)
			if err != nil || receipt != nil {
				t.Fatalf("batch short of its checkpoint: receipt %q, %v", receipt, err)
			}
			_, err = sinkFor(t, r).Accept(ctx, f.batch(south, 3, cp.Size, signed, false))
			gap, ok := errorsAsGap(err)
			if !ok || !errors.Is(err, replica.ErrGap) || gap.Size != 2 {
				t.Fatalf("batch from 3 to a site holding 2: %v, want a GapError with size 2", err)
			}
			// Sent twice, a batch is a gap too, never a duplicate.
			_, err = sinkFor(t, r).Accept(ctx, first)
			if gap, ok := errorsAsGap(err); !ok || gap.Size != 2 {
				t.Fatalf("batch sent twice: %v, want a GapError with size 2", err)
			}
			if got := r.Log().MirrorSize(); got != 2 {
				t.Fatalf("mirror holds %d entries, want 2", got)
			}
			if _, err := sinkFor(t, r).Accept(ctx, f.batch(south, 2, cp.Size, signed, false)); err != nil {
				t.Fatalf("batch from the site's size: %v", err)
			}
			if st := r.Stats(); st.Refused != 0 || st.Entries != int64(cp.Size) {
				t.Fatalf("stats: %+v", st)
			}
		})
	}
}

// TestAcceptSenderGone: a batch whose sender goes away while the mirror
// commits it is still taken (the ledger commits what it queued), so it
// counts against the quota and is not a refusal; the sender resumes from
// State past it.
func TestAcceptSenderGone(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	for i := range 8 {
		f.mustPut("business", fmt.Sprintf("B-%d", i), nil)
	}
	signed, cp := f.published()
	b := f.batch(north, 0, cp.Size, signed, false)
	size := 0
	for _, e := range b.Entries {
		size += len(e)
	}
	r, _ := f.freshReceiver(north, int64(size))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Accept(ctx, b)
	if err == nil {
		t.Skip("the commit won the race with the cancelled context")
	}
	if got := r.Log().MirrorSize(); got != cp.Size {
		t.Fatalf("mirror holds %d entries after an interrupted batch of %d: %v", got, cp.Size, err)
	}
	if r.Used() != int64(size) {
		t.Errorf("receiver counts %d bytes used; the batch it holds is %d (%v)", r.Used(), size, err)
	}
	if st := r.Stats(); st.Refused != 0 {
		t.Errorf("a batch taken counted as refused: %+v (%v)", st, err)
	}
	st, err := r.State(context.Background())
	if err != nil || st.Size != cp.Size {
		t.Fatalf("state: %+v, %v", st, err)
	}
}

// rootOf is the RFC 6962 root over the entries' leaf hashes.
func rootOf(t *testing.T, entries [][]byte) ledger.Hash {
	t.Helper()
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, e := range entries {
		h := ledger.EntryLeafHash(e)
		if err := rng.Append(h[:], nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Hash(root)
}

// TestAcceptStaleEpoch is fencing at a site: once its mirror holds an
// entry of epoch 2, a batch of epoch 1 is refused as stale even when it
// is signed with the home's key over a correct tree, and the error says
// so in process and across HTTP (409).
func TestAcceptStaleEpoch(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	ctx := context.Background()
	f.mustPut("business", "B-1", nil)
	if _, err := f.home.Append(ctx, ledger.Entry{Type: ledger.TypeOrder, Epoch: 2, Time: time.Now(), Payload: []byte("epoch 2 begins")}); err != nil {
		t.Fatal(err)
	}
	f.mustPut("business", "B-2", nil)
	signed, cp := f.published()
	if cp.Epoch != 2 {
		t.Fatalf("home at epoch %d", cp.Epoch)
	}
	homeKey, err := keyfile.ReadEd25519(f.layout.Key("site-checkpoint", home), protector())
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := ledger.NewLogSigner(f.c.Guest.Origin, homeKey)
	if err != nil {
		t.Fatal(err)
	}
	held := f.homeEntries(cp.Size)
	extend := func(epoch uint64) *replica.Batch {
		e, err := ledger.Entry{Type: ledger.TypeNotice, Epoch: epoch, Time: time.Now(), Payload: []byte("a notice")}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		c := ledger.Checkpoint{Origin: f.c.Guest.Origin, Size: cp.Size + 1, Root: rootOf(t, append(held[:len(held):len(held)], e)), Epoch: epoch}
		s, err := ledger.SignCheckpoint(c, signer)
		if err != nil {
			t.Fatal(err)
		}
		return &replica.Batch{First: cp.Size, Checkpoint: s, Entries: [][]byte{e}}
	}
	for _, via := range []string{"in process", "http"} {
		t.Run(via, func(t *testing.T) {
			f := f.with(t)
			r, _ := f.freshReceiver(north, 0)
			var sink replica.Sink = r
			if via == "http" {
				sink = remoteFor(t, f, r)
			}
			if _, err := sink.Accept(ctx, f.batch(north, 0, cp.Size, signed, false)); err != nil {
				t.Fatal(err)
			}
			_, err := sink.Accept(ctx, extend(1))
			if !errors.Is(err, ledger.ErrStaleEpoch) {
				t.Fatalf("epoch 1 batch after epoch 2: %v, want ErrStaleEpoch", err)
			}
			if got := r.Log().MirrorSize(); got != cp.Size {
				t.Fatalf("mirror holds %d entries, want %d", got, cp.Size)
			}
			// Control: the same batch at epoch 2 is taken.
			if _, err := sink.Accept(ctx, extend(2)); err != nil {
				t.Fatalf("epoch 2 batch: %v", err)
			}
		})
	}
}

// TestUsage: what a guest holds, as the quota counts it, is its ledger's
// files and its blobs, and not the write-ahead log a ledger preallocates.
func TestUsage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger"), ledger.Options{Origin: "ledger.usage.example", Mirror: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	files := map[string]int{"ledger/checkpoint": 211, "ledger/tile/0/000": 8192, "ledger/wal/extra": 1 << 20}
	for name, n := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var wal, outside int64
	err = filepath.WalkDir(filepath.Join(dir, "ledger"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if strings.Contains(filepath.ToSlash(p), "/ledger/wal/") {
			wal += fi.Size()
		} else {
			outside += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := storefs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := blobs.Save(ctx, "land/data/00", strings.NewReader("pack bytes"), 10); err != nil {
		t.Fatal(err)
	}
	got, err := replica.Usage(ctx, filepath.Join(dir, "ledger"), blobs)
	if err != nil {
		t.Fatal(err)
	}
	if want := outside + 10; got != want {
		t.Fatalf("Usage = %d, want %d: the ledger without its write-ahead log (%d bytes left out) and the blobs", got, want, wal)
	}
	if outside < 211+8192 {
		t.Fatalf("the ledger holds %d bytes outside its write-ahead log, fewer than the test wrote", outside)
	}
}
