package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// fillFixture is a writer and a mirror of it that holds stubs for a random
// third of the record entries, with sync points after every integration.
type fillFixture struct {
	k          testKey
	wdir, mdir string
	w, m       *Log
	real       map[uint64][]byte // the writer's entries, by index
	stubs      map[uint64]bool
	total      int
	signed     []byte // the writer's newest checkpoint
}

func openSyncingMirror(t testing.TB, dir string) *Log {
	t.Helper()
	m, err := Open(context.Background(), dir, Options{Origin: testOrigin, Mirror: true, CheckpointInterval: time.Millisecond, SyncInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newFillFixture(t *testing.T, rnd *rand.Rand) *fillFixture {
	f := &fillFixture{k: newTestKey(t, testOrigin), wdir: t.TempDir(), mdir: t.TempDir(), real: map[uint64][]byte{}, stubs: map[uint64]bool{}}
	f.w = openTestLog(t, f.wdir, f.k)
	f.m = openSyncingMirror(t, f.mdir)
	return f
}

// ship appends n entries at the writer and ships them to the mirror.
func (f *fillFixture) ship(t *testing.T, rnd *rand.Rand, n int) {
	t.Helper()
	enc, signed := writerBatch(t, f.w, f.total, n, 1)
	ship := make([][]byte, n)
	for i, e := range enc {
		idx := uint64(f.total + i)
		f.real[idx] = e
		ship[i] = e
		if e[1] == byte(TypeRecord) || rnd.IntN(3) == 0 {
			s, err := Withhold(e)
			if err != nil {
				t.Fatal(err)
			}
			ship[i] = s
			f.stubs[idx] = true
		}
	}
	if _, err := f.m.AppendMirrored(context.Background(), ship, signed, nil); err != nil {
		t.Fatal(err)
	}
	f.total += n
	f.signed = signed
	if _, _, err := f.m.WaitPublished(context.Background(), uint64(f.total)); err != nil {
		t.Fatal(err)
	}
}

// waitSynced waits until the mirror's sync marker reaches size.
func waitSynced(t *testing.T, dir string, size uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := syncedSize(dir)
		if err != nil {
			t.Fatal(err)
		}
		if s >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync marker at %d, want %d", s, size)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkEntries reads every entry of the ledger in dir and checks it is
// the writer's, or its stub where stubs says.
func (f *fillFixture) checkEntries(t *testing.T, dir string, stubs map[uint64]bool) {
	t.Helper()
	n := 0
	err := Scan(context.Background(), DirFetcher(dir), 0, uint64(f.total), func(idx uint64, e []byte) error {
		n++
		want := f.real[idx]
		if stubs[idx] {
			want, _ = Withhold(want)
		}
		if !bytes.Equal(e, want) {
			return fmt.Errorf("entry %d: got type %d, want type %d (stub %v)", idx, e[1], want[1], stubs[idx])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != f.total {
		t.Fatalf("scanned %d entries, want %d", n, f.total)
	}
}

func (f *fillFixture) verify(t *testing.T, dir string, stubs int) {
	t.Helper()
	rep, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(f.k.verifier)})
	if err != nil {
		t.Fatalf("verify %s: %v", dir, err)
	}
	if rep.Entries != uint64(f.total) || rep.ByType[TypeWithheld] != uint64(stubs) {
		t.Fatalf("verify: %d entries, %d withheld; want %d, %d", rep.Entries, rep.ByType[TypeWithheld], f.total, stubs)
	}
}

func stubSet(t *testing.T, l *Log) map[uint64]bool {
	t.Helper()
	st, err := l.Withheld(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bool{}
	for _, s := range st {
		out[s.Index] = true
	}
	return out
}

// TestFillMirror fills a mirror's stubs: the open mirror fills full
// bundles below its sync point and reports the rest, the closed one fills
// those, and in every state the tree, the checkpoint and the entries
// check out after a reopen.
func TestFillMirror(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, seed*7))
			f := newFillFixture(t, rnd)
			defer f.w.Close()
			ctx := context.Background()
			for range 2 + rnd.IntN(4) {
				f.ship(t, rnd, 1+rnd.IntN(300))
			}
			// A sync point is offered only while entries arrive: the
			// marker may stay short of the end once they stop.
			waitSynced(t, f.mdir, 1)
			if got := stubSet(t, f.m); len(got) != len(f.stubs) {
				t.Fatalf("Withheld lists %d stubs, %d were shipped", len(got), len(f.stubs))
			}
			signed0, cp0 := f.m.Checkpoint()

			// Fill everything the open mirror can: full bundles below the
			// sync marker the fill read.
			all := map[uint64][]byte{}
			for idx := range f.stubs {
				all[idx] = f.real[idx]
			}
			filled, err := f.m.FillBatch(ctx, all)
			full := uint64(f.total)
			var nd *NotDurableError
			if errors.As(err, &nd) {
				full = nd.Synced / TileWidth * TileWidth
			} else if err != nil {
				t.Fatalf("fill: %v", err)
			}
			left, done := map[uint64]bool{}, map[uint64][]byte{}
			for idx := range f.stubs {
				if idx >= full {
					left[idx] = true
				} else {
					done[idx] = f.real[idx]
				}
			}
			if (len(left) > 0) != (nd != nil) || (nd != nil && len(nd.Pending) != len(left)) {
				t.Fatalf("fill with the sync point at %d: %v, want %d pending", full, err, len(left))
			}
			if filled != len(done) {
				t.Fatalf("filled %d, want %d", filled, len(done))
			}
			f.checkEntries(t, f.mdir, left)
			if got := stubSet(t, f.m); len(got) != len(left) {
				t.Fatalf("after fill Withheld lists %d, want %d", len(got), len(left))
			}
			// Again: nothing more to do.
			if n, err := f.m.FillBatch(ctx, done); n != 0 || err != nil {
				t.Fatalf("second fill: %d, %v", n, err)
			}
			if s, cp := f.m.Checkpoint(); !bytes.Equal(s, signed0) || cp.Root != cp0.Root {
				t.Fatal("the checkpoint changed")
			}

			// A crash now: a copy of the open mirror recovers to the same
			// tree with the filled entries.
			crash := t.TempDir()
			if err := copyLive(f.mdir, crash); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(crash, walDir, lockName))
			c, err := Open(ctx, crash, Options{Origin: testOrigin, Mirror: true})
			if err != nil {
				t.Fatalf("recover a copy of the filled mirror: %v", err)
			}
			if _, cp := c.Checkpoint(); cp.Root != cp0.Root || cp.Size != cp0.Size {
				t.Fatalf("recovered checkpoint %+v, want %+v", cp, cp0)
			}
			c.Close()
			f.checkEntries(t, crash, left)

			// Close, fill the rest, reopen.
			if err := f.m.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := FillClosed(ctx, f.mdir, all); err != nil {
				t.Fatalf("fill closed: %v", err)
			}
			f.m = openSyncingMirror(t, f.mdir)
			if _, cp := f.m.Checkpoint(); cp.Root != cp0.Root || cp.Size != cp0.Size {
				t.Fatalf("reopened checkpoint %+v, want %+v", cp, cp0)
			}
			if got := stubSet(t, f.m); len(got) != 0 {
				t.Fatalf("after closed fill %d stubs left", len(got))
			}
			f.checkEntries(t, f.mdir, nil)

			// The partial bundle the reopened mirror read back carries the
			// filled entries on when it completes; later stubs are new.
			f.stubs = map[uint64]bool{}
			f.ship(t, rnd, TileWidth)
			now := map[uint64]bool{}
			for idx := range f.stubs {
				now[idx] = true
			}
			f.checkEntries(t, f.mdir, now)
			if err := f.m.Close(); err != nil {
				t.Fatal(err)
			}
			f.verify(t, f.mdir, len(now))
		})
	}
}

// TestFillRefuses: a wrong entry, a stub, a non-stub index, an index past
// the end; each error names the index, and nothing is written.
func TestFillRefuses(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 9))
	f := newFillFixture(t, rnd)
	defer f.w.Close()
	defer f.m.Close()
	ctx := context.Background()
	f.ship(t, rnd, 2*TileWidth+10)
	waitSynced(t, f.mdir, TileWidth)
	var stub, real uint64 = 1 << 62, 1 << 62
	for idx := range uint64(TileWidth) {
		if f.stubs[idx] && stub == 1<<62 {
			stub = idx
		}
		if !f.stubs[idx] && real == 1<<62 {
			real = idx
		}
	}
	if stub == 1<<62 || real == 1<<62 {
		t.Fatal("fixture has no stub or no real entry in bundle 0")
	}
	before, _ := os.ReadFile(filepath.Join(f.mdir, EntriesPath(0, 0)))
	other := f.real[real]
	stubOf, _ := Withhold(f.real[stub])
	altered := bytes.Clone(f.real[stub])
	altered[len(altered)-1] ^= 1
	for _, c := range []struct {
		name  string
		index uint64
		entry []byte
		want  error
	}{
		{"altered entry", stub, altered, ErrFillMismatch},
		{"another entry", stub, other, ErrFillMismatch},
		{"a stub", stub, stubOf, ErrFillStub},
		{"non-stub index", real, f.real[stub], ErrNotWithheld},
	} {
		err := f.m.Fill(ctx, c.index, c.entry)
		var fe *FillError
		if !errors.Is(err, c.want) || !errors.As(err, &fe) || fe.Index != c.index {
			t.Errorf("%s: %v, want %v at index %d", c.name, err, c.want, c.index)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("entry %d", c.index)) {
			t.Errorf("%s: error %q does not name index %d", c.name, err, c.index)
		}
	}
	// A batch with one bad entry writes nothing of that bundle.
	bad := map[uint64][]byte{stub: f.real[stub]}
	for idx := range uint64(TileWidth) {
		if f.stubs[idx] && idx != stub {
			bad[idx] = altered
			break
		}
	}
	if len(bad) == 2 {
		if _, err := f.m.FillBatch(ctx, bad); !errors.Is(err, ErrFillMismatch) {
			t.Errorf("batch with a bad entry: %v", err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(f.mdir, EntriesPath(0, 0)))
	if !bytes.Equal(before, after) {
		t.Error("a refused fill changed the bundle")
	}
	// An index past the sync point or the end is pending, not refused.
	var nd *NotDurableError
	if err := f.m.Fill(ctx, uint64(f.total)+5, f.real[stub]); !errors.As(err, &nd) || nd.Pending[0] != uint64(f.total)+5 {
		t.Errorf("fill past the end: %v", err)
	}
	// The real fill still works.
	if err := f.m.Fill(ctx, stub, f.real[stub]); err != nil {
		t.Fatal(err)
	}
	// FillClosed refuses an open ledger.
	if _, err := FillClosed(ctx, f.mdir, map[uint64][]byte{stub: f.real[stub]}); !errors.Is(err, ErrLocked) {
		t.Errorf("FillClosed on an open ledger: %v", err)
	}
}

// copyLive copies the directory of an open log. The log's syncer may
// write and rename its marker's temporary file meanwhile: a file that
// vanishes between listing and reading is skipped, as is any temporary
// file (a crash leaves them behind, and recovery ignores them).
func copyLive(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if strings.HasSuffix(p, ".tmp") {
			return nil
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o600)
	})
}
