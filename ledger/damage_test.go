package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// snapshotDir reads every file under dir, so that a test can tell that a
// refused Open changed nothing.
func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkUnchanged(t *testing.T, dir string, before map[string][]byte) {
	t.Helper()
	after := snapshotDir(t, dir)
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s was modified", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// walFrames lists the offset, first index and entry count of every frame
// of a segment.
type walFrame struct {
	off     int64
	first   uint64
	entries int
}

func walFrames(t *testing.T, path string) []walFrame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []walFrame
	for off := int64(0); ; {
		first, es, n, err := parseFrame(b[off:])
		if err != nil {
			return out
		}
		out = append(out, walFrame{off, first, len(es)})
		off += n
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// serveLedger serves a ledger directory over HTTP, as a site does.
func serveLedger(t *testing.T, dir string) Fetcher {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return HTTPFetcher{Base: srv.URL}
}

// killChildAfter runs TestCrashChild (the crash test's child) on dir until
// it has printed at least n acknowledgements, then SIGKILLs it, and
// returns what it acknowledged.
// The child's sync and checkpoint intervals are both every.
// env is added to the child's environment.
func killChildAfter(t *testing.T, dir, seedHex, every string, n int, env ...string) map[uint64]crashAck {
	t.Helper()
	cmd, stdout := startCrashChild(t, append([]string{crashEnvDir + "=" + dir, crashEnvKey + "=" + seedHex, crashEnvRound + "=0", crashEnvSync + "=" + every, crashEnvPublish + "=" + every}, env...)...)
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
	defer timer.Stop()
	acks := map[uint64]crashAck{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "ack" {
			idx, err := strconv.ParseUint(f[1], 10, 64)
			sum, err2 := hex.DecodeString(f[2])
			if err != nil || err2 != nil || len(sum) != 32 {
				t.Fatalf("child printed %q", sc.Text())
			}
			acks[idx] = crashAck{[32]byte(sum), 0}
			if len(acks) == n {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		} else if len(f) > 0 && f[0] == "error" {
			t.Fatalf("child: %s", sc.Text())
		}
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended by itself")
	}
	if len(acks) < n {
		t.Fatalf("child acknowledged %d entries, want %d", len(acks), n)
	}
	return acks
}

// TestDamagedFrameIsNotATornTail is issue 11, item 1: a SIGKILLed
// ledger with one byte flipped in a write-ahead log frame that valid
// frames follow. Open must refuse, naming the segment, offset and index,
// and change nothing; Repair from a site that holds the entries must then
// bring back every acknowledged entry. (Before the fix, Open set the frame
// and everything after it aside as a "torn tail" and dropped them.)
func TestDamagedFrameIsNotATornTail(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	seedHex := hex.EncodeToString(seed)
	signer, verifier := crashSigner(t, seedHex)
	dir := t.TempDir()
	// No sync point during the run: every entry is in the log's one
	// segment. And one checkpoint only, at the first commit: the damaged
	// frame is past what was published, as at a home whose checkpoint
	// lags its acknowledgements, so only the frames after it tell that
	// it was acknowledged.
	acked := killChildAfter(t, dir, seedHex, "1h", 400)
	published, err := os.ReadFile(filepath.Join(dir, CheckpointPath))
	if err != nil {
		t.Fatal(err)
	}
	pubCp, err := ParseSignedCheckpoint(published)
	if err != nil {
		t.Fatal(err)
	}

	// The peer: a copy of the ledger recovered as it was at the kill.
	peerDir := t.TempDir()
	if err := os.CopyFS(peerDir, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(peerDir, walDir, lockName))
	pl, err := Open(context.Background(), peerDir, crashOptions(t, signer, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	peerSize := pl.Size()
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}

	segs, err := listSegments(filepath.Join(dir, walDir))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v: %v", segs, err)
	}
	frames := walFrames(t, segs[0].path)
	if len(frames) < 4 {
		t.Fatalf("only %d frames", len(frames))
	}
	bad := frames[len(frames)/2]
	if bad.first < pubCp.Size {
		t.Fatalf("the published checkpoint (size %d) covers the frame at %d: the test would not tell a torn tail from damage", pubCp.Size, bad.first)
	}
	flipByte(t, segs[0].path, bad.off+frameHeaderSize+EntryHeaderSize+5)
	before := snapshotDir(t, dir)

	_, err = Open(context.Background(), dir, crashOptions(t, signer, "", ""))
	var de *DamageError
	if !errors.As(err, &de) || !errors.Is(err, ErrDamaged) {
		t.Fatalf("open of a log with a damaged frame: %v, want a *DamageError", err)
	}
	for _, want := range []string{filepath.Base(segs[0].path), fmt.Sprintf("offset %d", bad.off), fmt.Sprintf("entry %d", bad.first), "damaged"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if de.File != segs[0].path || de.Offset != bad.off || de.Index != bad.first {
		t.Errorf("damage %+v, want %s offset %d entry %d", de, segs[0].path, bad.off, bad.first)
	}
	checkUnchanged(t, dir, before)

	rep, err := Repair(context.Background(), dir, RepairOptions{Origin: crashOrigin, Verifiers: note.VerifierList(verifier), Peer: serveLedger(t, peerDir)})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if rep.Restored != uint64(bad.entries) || len(rep.Damage) != 1 || len(rep.SavedAs) != 1 {
		t.Fatalf("repair report %+v, want %d entries restored", rep, bad.entries)
	}
	if b, err := os.ReadFile(rep.SavedAs[0]); err != nil || !bytes.Equal(b, before[segs[0].path]) {
		t.Fatalf("the damaged segment was not kept as it was: %v", err)
	}
	l, err := Open(context.Background(), dir, crashOptions(t, signer, "", ""))
	if err != nil {
		t.Fatalf("open after repair: %v", err)
	}
	size := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if size != peerSize {
		t.Fatalf("repaired ledger holds %d entries, the peer %d", size, peerSize)
	}
	crashCheckEntries(t, 0, dir, size, acked)
	if _, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{Origin: crashOrigin, Verifiers: note.VerifierList(verifier)}); err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
}

// TestDamagedFrameBelowSyncPoint: a damaged frame that the sync point
// covers, the last one or one in the middle, is damage; Open says so and
// modifies nothing (before the fix it zeroed every frame from the bad one
// on, then complained that the log ended before the sync point).
func TestDamagedFrameBelowSyncPoint(t *testing.T) {
	k := newTestKey(t, testOrigin)
	src := t.TempDir()
	l := openTestLog(t, src, k)
	want := map[uint64][]byte{}
	for i := range 30 {
		e := testEntry(i, 1)
		idx, err := l.Append(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		want[idx], _ = e.MarshalBinary()
	}
	if err := l.Close(); err != nil { // a sync point at 30
		t.Fatal(err)
	}
	peer := t.TempDir()
	if err := os.CopyFS(peer, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	for _, which := range []string{"middle", "last"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			segs, _ := listSegments(filepath.Join(dir, walDir))
			frames := walFrames(t, segs[0].path)
			if len(frames) != 30 {
				t.Fatalf("%d frames", len(frames))
			}
			bad := frames[5]
			if which == "last" {
				bad = frames[29]
			}
			flipByte(t, segs[0].path, bad.off+frameHeaderSize+EntryHeaderSize+2)
			before := snapshotDir(t, dir)
			_, err := Open(context.Background(), dir, Options{Origin: testOrigin, Signer: k.signer})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d (entry %d)", bad.off, bad.first)) {
				t.Fatalf("open: %v, want damage at offset %d entry %d", err, bad.off, bad.first)
			}
			checkUnchanged(t, dir, before)

			if _, err := Repair(context.Background(), dir, RepairOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier), Peer: DirFetcher(peer)}); err != nil {
				t.Fatalf("repair: %v", err)
			}
			l := openTestLog(t, dir, k)
			defer l.Close()
			if l.Size() != 30 {
				t.Fatalf("size %d after repair", l.Size())
			}
		})
	}
}

// TestRepairRefusesWrongEntries: entries from a peer that does not hold
// this ledger's tree are refused, and nothing is written.
func TestRepairRefusesWrongEntries(t *testing.T) {
	k := newTestKey(t, testOrigin)
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		l := openTestLog(t, d, k)
		for i := range 20 {
			e := testEntry(i, 1)
			if d == other && i == 7 {
				e.Payload = []byte("a different entry 7")
			}
			if _, err := l.Append(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := listSegments(filepath.Join(dir, walDir))
	frames := walFrames(t, segs[0].path)
	flipByte(t, segs[0].path, frames[7].off+frameHeaderSize+EntryHeaderSize+1)
	before := snapshotDir(t, dir)
	_, err := Repair(context.Background(), dir, RepairOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier), Peer: DirFetcher(other)})
	if err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("repair from a peer with a different entry 7: %v", err)
	}
	checkUnchanged(t, dir, before)
}

// TestDamagedRightEdgeBundle is issue 11, item 2: a flipped byte in the
// partial entry bundle at the tree's right edge. Open must not carry the
// damaged entry into the next bundle: it refuses, naming the file and
// entry; Verify names them too (before: the hash tile); Repair restores
// the entry; and a running mirror's CheckRightEdge finds the damage
// before it accepts a batch.
func TestDamagedRightEdgeBundle(t *testing.T) {
	k := newTestKey(t, testOrigin)
	dir := t.TempDir()
	w := openTestLog(t, dir, k)
	m := openTestMirror(t, t.TempDir())
	defer m.Close()
	entries, signed := writerBatch(t, w, 0, 300, 1)
	if _, err := m.AppendMirrored(context.Background(), entries, signed, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	peer := t.TempDir()
	if err := os.CopyFS(peer, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	rel := EntriesPath(1, 300-TileWidth)
	path := filepath.Join(dir, filepath.FromSlash(rel))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A byte inside entry 257 (the second of the bundle).
	at := int64(2 + binary.BigEndian.Uint16(b) + 2 + EntryHeaderSize + 3)
	flipByte(t, path, at)

	rep, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)})
	if err == nil || !strings.Contains(err.Error(), rel) || !strings.Contains(err.Error(), "entry 257") {
		t.Fatalf("verify of a flipped bundle: %v (%+v), want an error naming %s and entry 257", err, rep, rel)
	}

	before := snapshotDir(t, dir)
	_, err = Open(context.Background(), dir, Options{Origin: testOrigin, Signer: k.signer})
	var de *DamageError
	if !errors.As(err, &de) || de.File != path || de.Index != 257 {
		t.Fatalf("open with a flipped right-edge bundle: %v, want damage in %s at entry 257", err, path)
	}
	checkUnchanged(t, dir, before)

	if _, err := Repair(context.Background(), dir, RepairOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier), Peer: DirFetcher(peer)}); err != nil {
		t.Fatalf("repair: %v", err)
	}
	l := openTestLog(t, dir, k)
	next, signed := writerBatch(t, l, 300, 10, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)}); err != nil {
		t.Fatalf("verify after repair and 10 more entries: %v", err)
	}

	// The mirror: its stored right edge is damaged while it runs.
	if err := m.CheckRightEdge(); err != nil {
		t.Fatalf("sound mirror: %v", err)
	}
	mpath := filepath.Join(m.Dir(), filepath.FromSlash(rel))
	flipByte(t, mpath, at)
	if err := m.CheckRightEdge(); !errors.As(err, &de) || de.Index != 257 || de.File != mpath {
		t.Fatalf("mirror with a flipped right-edge bundle: %v, want damage in %s at entry 257", err, mpath)
	}
	flipByte(t, mpath, at)
	if _, err := m.AppendMirrored(context.Background(), next, signed, nil); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedFrameInEarlierSegment: a SIGKILLed ledger whose write-ahead
// log spans several segments, with a byte flipped in a frame of the
// first. Open refuses and changes nothing; repair from a peer restores
// every acknowledged entry, the later segments untouched.
func TestDamagedFrameInEarlierSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	seedHex := hex.EncodeToString(seed)
	signer, verifier := crashSigner(t, seedHex)
	dir := t.TempDir()
	acked := killChildAfter(t, dir, seedHex, "1h", 600, crashEnvSegment+"=16384")
	peerDir := t.TempDir()
	if err := os.CopyFS(peerDir, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(peerDir, walDir, lockName))
	opts := crashOptions(t, signer, "16384", "")
	pl, err := Open(context.Background(), peerDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	peerSize := pl.Size()
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(filepath.Join(dir, walDir))
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments: %v", len(segs), err)
	}
	frames := walFrames(t, segs[0].path)
	bad := frames[len(frames)/2]
	flipByte(t, segs[0].path, bad.off+frameHeaderSize+EntryHeaderSize+1)
	before := snapshotDir(t, dir)
	_, err = Open(context.Background(), dir, opts)
	var de *DamageError
	if !errors.As(err, &de) || de.File != segs[0].path || de.Offset != bad.off || de.Index != bad.first {
		t.Fatalf("open: %v, want damage in %s offset %d entry %d", err, segs[0].path, bad.off, bad.first)
	}
	checkUnchanged(t, dir, before)
	rep, err := Repair(context.Background(), dir, RepairOptions{Origin: crashOrigin, Verifiers: note.VerifierList(verifier), Peer: serveLedger(t, peerDir)})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if len(rep.Rewritten) != 1 || rep.Rewritten[0] != segs[0].path || rep.Restored != uint64(bad.entries) {
		t.Fatalf("repair report %+v", rep)
	}
	for _, s := range segs[1:] {
		if b, _ := os.ReadFile(s.path); !bytes.Equal(b, before[s.path]) {
			t.Errorf("repair rewrote %s, which was sound", s.path)
		}
	}
	l, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("open after repair: %v", err)
	}
	size := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if size != peerSize {
		t.Fatalf("repaired ledger holds %d entries, the peer %d", size, peerSize)
	}
	crashCheckEntries(t, 0, dir, size, acked)
}

// TestRangeRootOfEmptyRange: the root checks of Repair and the mirror
// take the empty tree's root for an empty range, which gives no hash of
// its own (a repair of a log killed before its first sync point, with an
// empty checkpoint on disk, panicked on it under load).
func TestRangeRootOfEmptyRange(t *testing.T) {
	rng := rangeFactory().NewEmptyRange(0)
	root, err := rangeRoot(rng)
	if err != nil || root != emptyRoot {
		t.Fatalf("empty range: %x, %v; want the empty tree's root %x", root, err, emptyRoot)
	}
	h := EntryLeafHash([]byte("entry"))
	if err := rng.Append(h[:], nil); err != nil {
		t.Fatal(err)
	}
	if root, err := rangeRoot(rng); err != nil || root != h {
		t.Fatalf("one leaf: %x, %v; want the leaf's hash %x", root, err, h)
	}
}
