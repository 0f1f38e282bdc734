package ledger

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func openTestMirror(t testing.TB, dir string) *Log {
	t.Helper()
	m, err := Open(context.Background(), dir, Options{Origin: testOrigin, Mirror: true, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writerBatch appends n entries to the writer and returns them encoded with
// the writer's checkpoint for exactly the tree they complete.
func writerBatch(t testing.TB, w *Log, first, n int, epoch uint64) ([][]byte, []byte) {
	t.Helper()
	ctx := context.Background()
	es := make([]Entry, n)
	enc := make([][]byte, n)
	for i := range es {
		es[i] = testEntry(first+i, epoch)
		enc[i], _ = es[i].MarshalBinary()
	}
	if _, err := w.AppendBatch(ctx, es); err != nil {
		t.Fatal(err)
	}
	signed, cp, err := w.WaitPublished(ctx, uint64(first+n))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(first+n) {
		t.Fatalf("writer published size %d, want %d", cp.Size, first+n)
	}
	return enc, signed
}

// TestMirrorFollowsWriter ships random batches, with record entries
// randomly withheld, and checks that the mirror holds the writer's tree
// tile for tile, publishes the writer's checkpoint, survives a restart and
// passes Verify with the writer's key.
func TestMirrorFollowsWriter(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		rnd := rand.New(rand.NewPCG(seed, seed))
		k := newTestKey(t, testOrigin)
		wdir, mdir := t.TempDir(), t.TempDir()
		w := openTestLog(t, wdir, k)
		m := openTestMirror(t, mdir)
		ctx := context.Background()
		total, withheld := 0, 0
		var epoch uint64 = 1
		var last []byte
		for round := 0; round < 12; round++ {
			if rnd.IntN(4) == 0 {
				epoch++
			}
			n := 1 + rnd.IntN(400)
			enc, signed := writerBatch(t, w, total, n, epoch)
			ship := make([][]byte, n)
			for i, e := range enc {
				ship[i] = e
				if e[1] == byte(TypeRecord) && rnd.IntN(3) == 0 {
					s, err := Withhold(e)
					if err != nil {
						t.Fatal(err)
					}
					ship[i] = s
					withheld++
				}
			}
			// Ship in pieces ending short of the checkpoint, each with
			// its consistency proof, then the last piece.
			prover := NewProver(DirFetcher(wdir), 0)
			for len(ship) > 1 && rnd.IntN(2) == 0 {
				cut := 1 + rnd.IntN(len(ship)-1)
				end := uint64(total + cut)
				prf, err := prover.Consistency(ctx, end, uint64(total+n))
				if err != nil {
					t.Fatal(err)
				}
				if len(prf) > 0 {
					bad := append([]Hash(nil), prf...)
					bad[0][0] ^= 1
					if _, err := m.AppendMirrored(ctx, ship[:cut], signed, bad); err == nil {
						t.Fatalf("seed %d: accepted a piece with a forged consistency proof", seed)
					}
				}
				if _, err := m.AppendMirrored(ctx, ship[:cut], signed, prf); err != nil {
					t.Fatalf("seed %d round %d piece to %d: %v", seed, round, end, err)
				}
				ship, total, n = ship[cut:], total+cut, n-cut
			}
			cp, err := m.AppendMirrored(ctx, ship, signed, nil)
			if err != nil {
				t.Fatalf("seed %d round %d: %v", seed, round, err)
			}
			total += n
			if cp.Size != uint64(total) {
				t.Fatalf("mirror accepted size %d, want %d", cp.Size, total)
			}
			last = signed
			if round == 6 { // restart mid-way
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				m = openTestMirror(t, mdir)
				if got := m.MirrorSize(); got != uint64(total) {
					t.Fatalf("after restart mirror size %d, want %d", got, total)
				}
			}
		}
		if _, _, err := m.WaitPublished(ctx, uint64(total)); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.Checkpoint(); !bytes.Equal(got, last) {
			t.Fatalf("mirror publishes\n%s\nwant the writer's\n%s", got, last)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(ctx, DirFetcher(mdir), VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)})
		if err != nil {
			t.Fatalf("seed %d: verify mirror: %v", seed, err)
		}
		if rep.ByType[TypeWithheld] != uint64(withheld) || rep.Entries != uint64(total) {
			t.Fatalf("verify saw %d entries, %d withheld; want %d, %d", rep.Entries, rep.ByType[TypeWithheld], total, withheld)
		}
		// Hash tiles are identical; bundles differ only where withheld.
		sameFiles(t, filepath.Join(wdir, "tile", "0"), filepath.Join(mdir, "tile", "0"))
	}
}

// sameFiles checks that every file under a is in b with the same bytes.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	err := filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			t.Errorf("tile %s differs between writer and mirror", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no tiles under %s", a)
	}
}

func TestMirrorRefuses(t *testing.T) {
	ctx := context.Background()
	k := newTestKey(t, testOrigin)
	w := openTestLog(t, t.TempDir(), k)
	defer w.Close()
	m := openTestMirror(t, t.TempDir())
	defer m.Close()

	enc, signed := writerBatch(t, w, 0, 50, 3)
	if _, err := m.Append(ctx, testEntry(0, 3)); !errors.Is(err, ErrMirror) {
		t.Fatalf("Append on a mirror: %v, want ErrMirror", err)
	}
	if _, err := w.Append(ctx, Entry{Type: TypeWithheld, Epoch: 3, Time: time.Now(), Payload: make([]byte, 32)}); err == nil {
		t.Fatal("a writer appended a withheld stub")
	}
	if _, err := w.AppendMirrored(ctx, enc, signed, nil); !errors.Is(err, ErrNotMirror) {
		t.Fatalf("AppendMirrored on a writer: %v", err)
	}

	flip := func(i, at int) [][]byte {
		c := make([][]byte, len(enc))
		copy(c, enc)
		c[i] = bytes.Clone(enc[i])
		c[i][at] ^= 1
		return c
	}
	otherKey := newTestKey(t, "other.example/log")
	otherLog, err := Open(ctx, t.TempDir(), Options{Origin: "other.example/log", Signer: otherKey.signer, CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer otherLog.Close()
	_, otherSigned := writerBatch(t, otherLog, 0, 50, 3)
	badStub, _ := Entry{Type: TypeWithheld, Epoch: 3, Time: time.UnixMilli(1_700_000_000_007), Payload: make([]byte, 32)}.MarshalBinary()
	shortStub := append(bytes.Clone(badStub[:EntryHeaderSize]), 1, 2, 3)
	stubbed := func(i int, s []byte) [][]byte {
		c := append([][]byte(nil), enc...)
		c[i] = s
		return c
	}
	cases := []struct {
		name    string
		entries [][]byte
		signed  []byte
		want    string
		is      error
	}{
		{"payload byte flipped", flip(17, EntryHeaderSize+2), signed, "give root", nil},
		{"epoch changed", flip(3, 9), signed, "", nil},
		{"entry missing", enc[1:], signed, "not a prefix", nil},
		{"entry reordered", append([][]byte{enc[1], enc[0]}, enc[2:]...), signed, "give root", nil},
		{"forged withheld stub", stubbed(7, badStub), signed, "give root", nil},
		{"malformed withheld stub", stubbed(7, shortStub), signed, "entry 7", nil},
		{"another log's checkpoint", enc, otherSigned, "origin", nil},
		{"checkpoint garbage", enc, []byte("not a note\n"), "checkpoint", nil},
	}
	for _, tc := range cases {
		_, err := m.AppendMirrored(ctx, tc.entries, tc.signed, nil)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.is)
		}
		if tc.want != "" && !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.want)
		}
		if m.MirrorSize() != 0 || m.Size() != 0 {
			t.Fatalf("%s: a refused batch changed the mirror", tc.name)
		}
	}
	if _, err := m.AppendMirrored(ctx, enc, signed, nil); err != nil {
		t.Fatalf("the genuine batch after refusals: %v", err)
	}
	// A resent batch is a gap, not a duplicate.
	if _, err := m.AppendMirrored(ctx, enc, signed, nil); !errors.Is(err, ErrMirrorGap) {
		t.Fatalf("resent batch: %v, want ErrMirrorGap", err)
	}
	// An older epoch after a newer one is fenced.
	enc2, signed2 := writerBatch(t, w, 50, 5, 3)
	if _, err := m.AppendMirrored(ctx, enc2, signed2, nil); err != nil {
		t.Fatal(err)
	}
	old := testEntry(99, 2)
	ob, _ := old.MarshalBinary()
	if _, err := m.AppendMirrored(ctx, [][]byte{ob}, signed2, nil); !errors.Is(err, ErrMirrorGap) && !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale entry: %v", err)
	}
}

// TestMirrorStaleEpochRefused builds a writer whose tree has an entry of an
// older epoch after a newer one (as a fenced home would) and checks that a
// mirror refuses it even with a valid signature.
func TestMirrorStaleEpochRefused(t *testing.T) {
	ctx := context.Background()
	k := newTestKey(t, testOrigin)
	m := openTestMirror(t, t.TempDir())
	defer m.Close()
	e5, _ := testEntry(0, 5).MarshalBinary()
	e4, _ := testEntry(1, 4).MarshalBinary()
	rng := rangeFactory().NewEmptyRange(0)
	for _, e := range [][]byte{e5, e4} {
		h := EntryLeafHash(e)
		_ = rng.Append(h[:], nil)
	}
	r, _ := rng.GetRootHash(nil)
	signed, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: 2, Root: Hash(r), Epoch: 5}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AppendMirrored(ctx, [][]byte{e5, e4}, signed, nil); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("got %v, want ErrStaleEpoch", err)
	}
}

// TestMirrorReceivedBehind simulates a crash after a batch became durable
// but before its checkpoint was recorded: the mirror reopens with the whole
// log, keeps serving the older checkpoint, and continues from its size.
func TestMirrorReceivedBehind(t *testing.T) {
	ctx := context.Background()
	k := newTestKey(t, testOrigin)
	w := openTestLog(t, t.TempDir(), k)
	defer w.Close()
	dir := t.TempDir()
	m := openTestMirror(t, dir)
	enc1, s1 := writerBatch(t, w, 0, 10, 1)
	enc2, s2 := writerBatch(t, w, 10, 10, 1)
	if _, err := m.AppendMirrored(ctx, enc1, s1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AppendMirrored(ctx, enc2, s2, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, walDir, receivedName), s1, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CheckpointPath), s1, 0o644); err != nil {
		t.Fatal(err)
	}
	m = openTestMirror(t, dir)
	defer m.Close()
	if got, cp := m.Checkpoint(); !bytes.Equal(got, s1) || cp.Size != 10 {
		t.Fatalf("published size %d after reopen, want the recorded 10", cp.Size)
	}
	if m.MirrorSize() != 20 {
		t.Fatalf("mirror size %d, want 20", m.MirrorSize())
	}
	enc3, s3 := writerBatch(t, w, 20, 10, 1)
	if _, err := m.AppendMirrored(ctx, enc3, s3, nil); err != nil {
		t.Fatal(err)
	}
	if _, cp, err := m.WaitPublished(ctx, 30); err != nil || cp.Size != 30 {
		t.Fatalf("published %d, %v", cp.Size, err)
	}
	// A received checkpoint that claims more than the log holds is refused.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	_, s4 := writerBatch(t, w, 30, 10, 1)
	if err := os.WriteFile(filepath.Join(dir, walDir, receivedName), s4, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, Options{Origin: testOrigin, Mirror: true}); err == nil {
		t.Fatal("opened a mirror whose received checkpoint is beyond its log")
	}
}
