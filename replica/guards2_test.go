package replica_test

// The receiver's guards the second mutation round found untested (see
// docs/testing.md, "Guards and mutation testing"): what a hostile or
// broken peer could send a receiver, and what it must get back.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/store"
)

// signTree signs, with the home's key, a checkpoint over exactly these
// entries: a writer vouching for a tree it built itself, whatever is in
// it.
func (f *fixture) signTree(t *testing.T, entries [][]byte, epoch uint64) []byte {
	t.Helper()
	return f.signAsHome(t, ledger.Checkpoint{Origin: f.c.Guest.Origin, Size: uint64(len(entries)), Root: rootOf(t, entries), Epoch: epoch})
}

// signAsHome signs a checkpoint with the home's key, whatever it says.
func (f *fixture) signAsHome(t *testing.T, cp ledger.Checkpoint) []byte {
	t.Helper()
	s, _, err := ledger.NewLogSigner(f.c.Guest.Origin, f.siteKey(home))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ledger.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// failingBlobs is a blob backend that fails listing (so a registry's store
// cannot open) or saving index objects (so a pack is stored but its index
// is not).
type failingBlobs struct {
	store.Backend
	list, index bool
}

var errBackend = errors.New("backend unavailable")

func (b failingBlobs) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	if b.list {
		return errBackend
	}
	return b.Backend.List(ctx, prefix, fn)
}

func (b failingBlobs) Save(ctx context.Context, name string, data io.Reader, size int64) error {
	if b.index && strings.Contains(name, "index/") {
		return errBackend
	}
	return b.Backend.Save(ctx, name, data, size)
}

// testLearner is a Learner that refuses a batch when told to, and records
// what it is asked to commit.
type testLearner struct {
	replica.Writers
	refuse  error
	commits []uint64
}

func (l *testLearner) Learn(first uint64, entries [][]byte) (replica.Writers, error) {
	if l.refuse != nil {
		return nil, l.refuse
	}
	return l.Writers, nil
}

func (l *testLearner) Commit(first uint64, entries [][]byte, cp ledger.Checkpoint) {
	l.commits = append(l.commits, first)
}

// TestAcceptGuards: a batch at exactly the fence's epoch is taken; a
// Learner's refusal of a batch's orders refuses the batch; entries that do
// not decode, or records whose attachments do not parse, are refused even
// under a checkpoint the writer signed over them; an empty batch the
// mirror refuses is a refusal, not a batch taken; withheld stubs are
// counted; and the Accepted hook sees each batch taken.
func TestAcceptGuards(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	ctx := context.Background()
	f.mustPut("business", "B-1", nil)
	f.mustPut("business", "B-2", nil)
	land := f.mustPut("land", "L-1", randomBytes(8<<10))
	signed, cp := f.published()
	if cp.Epoch != 1 {
		t.Fatalf("home at epoch %d, want 1", cp.Epoch)
	}

	t.Run("fence at the batch's epoch", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(south, func(o *replica.ReceiverOptions) {
			o.Fence = func() (uint64, string) { return 1, "fenced from epoch 1" }
		})
		if _, err := r.Accept(ctx, f.batch(south, 0, cp.Size, signed, false)); err != nil {
			t.Fatalf("epoch-1 batch at a site fenced from epoch 1: %v", err)
		}
	})

	t.Run("learner refuses", func(t *testing.T) {
		f := f.with(t)
		l := &testLearner{Writers: replica.HomeWriter{Charter: f.c}, refuse: errors.New("an order is under-signed")}
		r := f.guardReceiver(south, func(o *replica.ReceiverOptions) { o.Writers = l })
		b := f.batch(south, 0, cp.Size, signed, false)
		if _, err := r.Accept(ctx, b); !errors.Is(err, replica.ErrRefused) || !strings.Contains(err.Error(), "under-signed") {
			t.Fatalf("batch whose orders the learner refuses: %v, want its refusal", err)
		}
		if n := r.Log().MirrorSize(); n != 0 || len(l.commits) != 0 {
			t.Fatalf("refused batch: mirror at %d, commits %v", n, l.commits)
		}
		// Control: the learner content, the batch is taken and committed.
		l.refuse = nil
		if _, err := r.Accept(ctx, b); err != nil {
			t.Fatalf("batch the learner takes: %v", err)
		}
		if len(l.commits) != 1 || l.commits[0] != 0 {
			t.Fatalf("commits %v, want [0]", l.commits)
		}
	})

	t.Run("undecodable entries under a writer's checkpoint", func(t *testing.T) {
		junk, err := ledger.Entry{Type: ledger.TypeRecord, Epoch: 1, Time: time.Now(), Payload: []byte("no record")}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for name, e := range map[string][]byte{"no entry": []byte("xx"), "no record": junk} {
			f := f.with(t)
			r := f.guardReceiver(north, func(*replica.ReceiverOptions) {})
			entries := [][]byte{e}
			_, err := r.Accept(ctx, &replica.Batch{First: 0, Checkpoint: f.signTree(t, entries, 1), Entries: entries})
			if !errors.Is(err, replica.ErrRefused) {
				t.Errorf("%s: %v, want ErrRefused", name, err)
			}
			if n := r.Log().MirrorSize(); n != 0 {
				t.Errorf("%s: mirror at %d", name, n)
			}
		}
	})

	t.Run("chunk set that does not parse", func(t *testing.T) {
		f := f.with(t)
		var bad []byte
		for _, e := range f.homeEntries(cp.Size) {
			if rec := recordOf(t, e); rec != nil && rec.Registry == "land" {
				d, err := ledger.DecodeEntry(e)
				if err != nil {
					t.Fatal(err)
				}
				// Two chunk ids out of order: not a set as the format
				// requires.
				lo, hi := store.ID{1}, store.ID{2}
				rec.Chunks = []store.ID{lo, hi}
				if d.Payload, err = rec.MarshalBinary(); err != nil {
					t.Fatal(err)
				}
				i := bytes.Index(d.Payload, append(lo[:], hi[:]...))
				copy(d.Payload[i:], hi[:])
				copy(d.Payload[i+32:], lo[:])
				if bad, err = d.MarshalBinary(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if bad == nil {
			t.Fatalf("no land record %d in the log", land.Index)
		}
		r := f.guardReceiver(north, func(*replica.ReceiverOptions) {})
		entries := [][]byte{bad}
		_, err := r.Accept(ctx, &replica.Batch{First: 0, Checkpoint: f.signTree(t, entries, 1), Entries: entries})
		if !errors.Is(err, replica.ErrRefused) {
			t.Fatalf("record whose chunk set does not parse: %v, want ErrRefused", err)
		}
		if n := r.Log().MirrorSize(); n != 0 {
			t.Fatalf("mirror at %d", n)
		}
	})

	t.Run("empty batch the mirror refuses", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(north, func(*replica.ReceiverOptions) {})
		// Size 0 with a root that is not the empty tree's, signed by the
		// writer: no gap, and the mirror refuses it.
		wrong := f.signAsHome(t, ledger.Checkpoint{Origin: f.c.Guest.Origin, Size: 0, Root: cp.Root, Epoch: 1})
		_, err := r.Accept(ctx, &replica.Batch{First: 0, Checkpoint: wrong})
		if !errors.Is(err, replica.ErrRefused) {
			t.Fatalf("empty batch under a wrong root: %v, want ErrRefused", err)
		}
		if st := r.Stats(); st.Refused != 1 || st.Batches != 0 {
			t.Fatalf("stats %+v, want one refusal and no batch", st)
		}
	})

	t.Run("empty batch short of its checkpoint", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(south, func(*replica.ReceiverOptions) {})
		// A sender with nothing to send under a checkpoint of a larger
		// tree is behind, not hostile: a gap, so it resumes from State.
		_, err := r.Accept(ctx, &replica.Batch{First: 0, Checkpoint: signed})
		if gap, ok := errorsAsGap(err); !ok || gap.Size != 0 {
			t.Fatalf("empty batch under a checkpoint of size %d: %v, want a GapError at 0", cp.Size, err)
		}
		if st := r.Stats(); st.Refused != 0 {
			t.Fatalf("stats %+v: a gap counted as a refusal", st)
		}
	})

	t.Run("withheld counted, Accepted told", func(t *testing.T) {
		f := f.with(t)
		var seen []*replica.Batch
		r := f.guardReceiver(south, func(o *replica.ReceiverOptions) {
			o.Accepted = func(b *replica.Batch) { seen = append(seen, b) }
		})
		b := f.batch(south, 0, cp.Size, signed, false)
		if len(b.Entries) == 2 {
			t.Fatal("the batch must not hold as many other entries as withheld ones")
		}
		if _, err := r.Accept(ctx, b); err != nil {
			t.Fatal(err)
		}
		// One land record, which south may not hold, went as a stub.
		if st := r.Stats(); st.Withheld != 1 || st.Entries != int64(len(b.Entries)) {
			t.Fatalf("stats %+v, want 1 withheld of %d entries", st, len(b.Entries))
		}
		if len(seen) != 1 || seen[0] != b {
			t.Fatalf("Accepted saw %d batches, want this one", len(seen))
		}
	})
}

// TestObjectGuards: the pack calls refuse a registry the charter does not
// place at the site and a name that is no pack's, before touching the
// store; a store that cannot open, or an index that cannot be written, is
// an error, not a crash or a silent success.
func TestObjectGuards(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	ctx := context.Background()
	f.mustPut("land", "L-1", randomBytes(8<<10))
	names := f.packsOf("land")
	data, err := replica.LocalSource{Backend: f.homeBlobs}.Object(ctx, "land", names[0])
	if err != nil {
		t.Fatal(err)
	}

	t.Run("not placed", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(south, func(*replica.ReceiverOptions) {})
		if _, err := r.Missing(ctx, "land", names); !errors.Is(err, replica.ErrNotPlaced) {
			t.Errorf("Missing of land at south: %v, want ErrNotPlaced", err)
		}
		if _, err := r.Locate(ctx, "land", nil); !errors.Is(err, replica.ErrNotPlaced) {
			t.Errorf("Locate in land at south: %v, want ErrNotPlaced", err)
		}
		if _, err := r.Object(ctx, "land", names[0]); !errors.Is(err, replica.ErrNotPlaced) {
			t.Errorf("Object of land at south: %v, want ErrNotPlaced", err)
		}
	})

	t.Run("not a pack name", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(north, func(*replica.ReceiverOptions) {})
		if err := r.PutObject(ctx, "land", names[0], data); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"index", "data", "x"} {
			if _, err := r.Missing(ctx, "land", []string{bad}); !errors.Is(err, replica.ErrRefused) {
				t.Errorf("Missing(%q): %v, want ErrRefused", bad, err)
			}
			if err := r.PutObject(ctx, "land", bad, data); !errors.Is(err, replica.ErrRefused) {
				t.Errorf("PutObject(%q): %v, want ErrRefused", bad, err)
			}
			if _, err := r.Object(ctx, "land", bad); !errors.Is(err, replica.ErrRefused) {
				t.Errorf("Object(%q): %v, want ErrRefused", bad, err)
			}
		}
		if got, err := r.Object(ctx, "land", names[0]); err != nil || string(got) != string(data) {
			t.Fatalf("the pack itself: %d bytes, %v", len(got), err)
		}
	})

	t.Run("store cannot open", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(north, func(o *replica.ReceiverOptions) {
			o.Blobs = failingBlobs{Backend: o.Blobs, list: true}
		})
		if _, err := r.Missing(ctx, "land", names); !errors.Is(err, errBackend) {
			t.Errorf("Missing: %v, want the backend's error", err)
		}
		if err := r.PutObject(ctx, "land", names[0], data); !errors.Is(err, errBackend) {
			t.Errorf("PutObject: %v, want the backend's error", err)
		}
		if _, err := r.Locate(ctx, "land", nil); !errors.Is(err, errBackend) {
			t.Errorf("Locate: %v, want the backend's error", err)
		}
	})

	t.Run("index cannot be written", func(t *testing.T) {
		f := f.with(t)
		r := f.guardReceiver(north, func(o *replica.ReceiverOptions) {
			o.Blobs = failingBlobs{Backend: o.Blobs, index: true}
		})
		if err := r.PutObject(ctx, "land", names[0], data); !errors.Is(err, errBackend) {
			t.Errorf("PutObject with its index unwritable: %v, want the backend's error", err)
		}
		if st := r.Stats(); st.Objects != 0 {
			t.Errorf("stats %+v: a pack whose index failed counted as stored", st)
		}
	})
}

// TestAcceptStoreCannotOpen: a batch whose record needs a chunk check,
// at a site whose blob store cannot open, is an error, not a crash.
func TestAcceptStoreCannotOpen(t *testing.T) {
	f := newFixture(t, fixtureOptions{noReplicator: true})
	ctx := context.Background()
	f.mustPut("land", "L-1", randomBytes(8<<10))
	signed, cp := f.published()
	r := f.guardReceiver(north, func(o *replica.ReceiverOptions) {
		o.Blobs = failingBlobs{Backend: o.Blobs, list: true}
	})
	if _, err := r.Accept(ctx, f.batch(north, 0, cp.Size, signed, false)); !errors.Is(err, errBackend) {
		t.Fatalf("batch with a land record, blob store failing: %v, want the backend's error", err)
	}
	if n := r.Log().MirrorSize(); n != 0 {
		t.Fatalf("mirror at %d", n)
	}
}
