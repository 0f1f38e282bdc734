package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestAppendReopenVerify(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	want := appendConcurrently(t, l, 3000, 32, 1)
	if got := l.Size(); got != 3000 {
		t.Fatalf("size %d, want 3000", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Every acknowledged index holds exactly the entry appended there.
	f := DirFetcher(dir)
	for b := uint64(0); b < (3000+255)/256; b++ {
		data, _, _, err := fetchTile(context.Background(), f, -1, b, 3000)
		if err != nil {
			t.Fatal(err)
		}
		es, err := splitBundle(data)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range es {
			if idx := b*256 + uint64(i); string(want[idx]) != string(e) {
				t.Fatalf("entry %d differs from what Append acknowledged", idx)
			}
		}
	}
	rep, err := Verify(context.Background(), f, VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 3000 || !rep.SignatureChecked || rep.Checkpoint.Epoch != 1 {
		t.Fatalf("report %+v", rep)
	}

	// Reopen: nothing replayed past the sync point Close made, and appends go on.
	l = openTestLog(t, dir, k)
	if r := l.Recovery(); r.Size != 3000 || r.Replayed != 0 || r.Torn != nil {
		t.Fatalf("recovery %+v", r)
	}
	appendConcurrently(t, l, 1000, 8, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(context.Background(), f, VerifyOptions{Verifiers: note.VerifierList(k.verifier)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 4000 || len(rep.Epochs) != 2 {
		t.Fatalf("report %+v", rep)
	}
}

func TestReplayWithoutSyncPoint(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	appendConcurrently(t, l, 1000, 4, 1)
	l.Close()
	// Forget the sync point and every tile: the write-ahead log alone must
	// rebuild the same ledger.
	cp1, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	os.Remove(filepath.Join(dir, walDir, markerName))
	os.RemoveAll(filepath.Join(dir, "tile"))
	l = openTestLog(t, dir, k)
	if r := l.Recovery(); r.Replayed != 1000 {
		t.Fatalf("recovery %+v", r)
	}
	l.Close()
	cp2, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if string(cp1) != string(cp2) {
		t.Fatalf("rebuilt checkpoint differs:\n%s\n%s", cp1, cp2)
	}
	if _, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{Verifiers: note.VerifierList(k.verifier)}); err != nil {
		t.Fatal(err)
	}
}

func TestStaleEpochRefused(t *testing.T) {
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, t.TempDir(), k)
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Append(ctx, testEntry(0, 5)); err != nil {
		t.Fatal(err)
	}
	_, err := l.Append(ctx, testEntry(1, 4))
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("append of epoch 4 after 5: %v, want ErrStaleEpoch", err)
	}
	if _, err := l.Append(ctx, testEntry(2, 5)); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailSetAside(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	appendConcurrently(t, l, 500, 4, 1)
	l.Close()
	segs, _ := listSegments(filepath.Join(dir, walDir))
	last := segs[len(segs)-1].path
	data, _ := os.ReadFile(last)
	end := len(strings.TrimRight(string(data), "\x00"))
	// A commit that a crash cut short: a header and half a payload.
	f, _ := os.OpenFile(last, os.O_RDWR, 0)
	f.WriteAt([]byte{0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 1, 244, 7, 7, 7}, int64(end))
	f.Close()
	l = openTestLog(t, dir, k)
	r := l.Recovery()
	if r.Torn == nil || r.Torn.Offset != int64(end) || r.Size != 500 {
		t.Fatalf("recovery %+v", r)
	}
	if saved, err := os.ReadFile(r.Torn.SavedAs); err != nil || len(saved) != 19 {
		t.Fatalf("torn bytes not kept aside: %v (%d bytes)", err, len(saved))
	}
	appendConcurrently(t, l, 10, 2, 1)
	l.Close()
	if _, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionBeforeTailRefused(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l, err := Open(context.Background(), dir, Options{Origin: testOrigin, Signer: k.signer, SegmentSize: 4096, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	appendConcurrently(t, l, 400, 1, 1)
	// Take the state as a crash would leave it: before Close trims the log.
	crashed := t.TempDir()
	if err := copyLive(dir, crashed); err != nil {
		t.Fatal(err)
	}
	l.Close()
	segs, _ := listSegments(filepath.Join(crashed, walDir))
	if len(segs) < 2 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	f, _ := os.OpenFile(segs[0].path, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, 40)
	f.Close()
	_, err = Open(context.Background(), crashed, Options{Origin: testOrigin, Signer: k.signer})
	if err == nil || !strings.Contains(err.Error(), segmentName(segs[0].first)) {
		t.Fatalf("open over a corrupt older segment: %v", err)
	}
}

func TestLostEntriesRefused(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	appendConcurrently(t, l, 100, 1, 1)
	l.Close()
	os.RemoveAll(filepath.Join(dir, walDir))
	os.RemoveAll(filepath.Join(dir, "tile"))
	_, err := Open(context.Background(), dir, Options{Origin: testOrigin, Signer: k.signer})
	if err == nil || !strings.Contains(err.Error(), "acknowledged entries are missing") {
		t.Fatalf("open after losing the log: %v", err)
	}
}

func TestFrameCap(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	big := func(n int) []Entry {
		es := make([]Entry, n)
		for i := range es {
			es[i] = Entry{Type: TypeRecord, Epoch: 1, Time: time.UnixMilli(1), Payload: make([]byte, 60_000)}
		}
		return es
	}
	ctx := context.Background()
	if _, err := l.AppendBatch(ctx, big(300)); err == nil {
		t.Fatal("an 18 MB batch was accepted into one commit")
	}
	// Two 9 MB batches at once cannot share a frame: they go as two.
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := l.AppendBatch(ctx, big(150)); errs <- err }()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.Commits != 2 {
		t.Fatalf("%d commits for two 9 MB batches, want 2", st.Commits)
	}
	l.Close()
	l = openTestLog(t, dir, k)
	defer l.Close()
	if r := l.Recovery(); r.Size != 300 {
		t.Fatalf("recovery %+v", r)
	}
}

// TestSecondOpenRefused: a second opener of a ledger (another process, or
// a stray second Open here) is refused instead of interleaving frames.
func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	if _, err := Open(context.Background(), dir, Options{Origin: testOrigin, Signer: k.signer}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, k) // released by Close
	l.Close()
}

// TestScanReusingMatchesScan: over a ledger whose bundles differ in size
// (some over the reused buffer's first 64 KiB, the last one partial),
// ScanReusing gives from any start exactly the entries Scan gives, each
// read before the next bundle overwrites it.
func TestScanReusingMatchesScan(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := openTestLog(t, dir, k)
	ctx := context.Background()
	const n = 900
	for i := range n {
		e := testEntry(i, 1)
		if i%41 == 0 {
			e.Payload = bytes.Repeat([]byte{byte(i)}, 9000+i)
		}
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.WaitPublished(ctx, n); err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint64{0, 1, 255, 256, 700, n - 1} {
		var want [][]byte
		if err := Scan(ctx, DirFetcher(dir), from, n, func(_ uint64, e []byte) error { want = append(want, e); return nil }); err != nil {
			t.Fatal(err)
		}
		i := 0
		err := ScanReusing(ctx, DirFetcher(dir), from, n, func(idx uint64, e []byte) error {
			if idx != from+uint64(i) || !bytes.Equal(e, want[i]) {
				t.Fatalf("from %d: entry %d (index %d) differs from Scan's", from, i, idx)
			}
			i++
			return nil
		})
		if err != nil || i != len(want) || len(want) != int(n-from) {
			t.Fatalf("from %d: %d entries (%v), Scan %d, want %d", from, i, err, len(want), n-from)
		}
	}
}
