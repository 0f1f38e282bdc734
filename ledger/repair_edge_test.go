package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// writerAndMirror opens a writer and a mirror, closed when the test
// ends, both holding n entries, published.
func writerAndMirror(t *testing.T, n int) (testKey, *Log, *Log) {
	t.Helper()
	ctx := context.Background()
	k := newTestKey(t, testOrigin)
	w := openTestLog(t, t.TempDir(), k)
	t.Cleanup(func() { w.Close() })
	m := openTestMirror(t, t.TempDir())
	t.Cleanup(func() { m.Close() })
	entries, signed := writerBatch(t, w, 0, n, 1)
	if _, err := m.AppendMirrored(ctx, entries, signed, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.WaitPublished(ctx, uint64(n)); err != nil {
		t.Fatal(err)
	}
	return k, w, m
}

// TestRepairRightEdgeOnline: a running mirror whose partial bundle at the
// right edge is flipped restores it from the writer's copy by itself
// (RepairRightEdge), with the log open; a peer whose entry differs is
// refused by name and nothing is written; with the edge sound again the
// mirror accepts the next batch and the ledger verifies.
func TestRepairRightEdgeOnline(t *testing.T) {
	ctx := context.Background()
	k, w, m := writerAndMirror(t, 300)
	rel := EntriesPath(1, 300-TileWidth)
	path := filepath.Join(m.Dir(), filepath.FromSlash(rel))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := int64(2 + binary.BigEndian.Uint16(b) + 2 + EntryHeaderSize + 3) // inside entry 257
	flipByte(t, path, at)
	if err := m.CheckRightEdge(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("flipped edge: %v", err)
	}

	// A forged peer: the writer's ledger with entry 258 changed.
	forged := t.TempDir()
	if err := os.CopyFS(forged, os.DirFS(w.Dir())); err != nil {
		t.Fatal(err)
	}
	fpath := filepath.Join(forged, filepath.FromSlash(rel))
	fb, _ := os.ReadFile(fpath)
	n0 := int(binary.BigEndian.Uint16(fb))
	n1 := int(binary.BigEndian.Uint16(fb[2+n0:]))
	flipByte(t, fpath, int64(2+n0+2+n1+2+EntryHeaderSize+1))
	before := snapshotDir(t, m.Dir())
	_, err = m.RepairRightEdge(ctx, DirFetcher(forged), nil)
	var fe *ForgedEntryError
	if !errors.As(err, &fe) || fe.Index != 258 {
		t.Fatalf("repair from a forged peer: %v, want entry 258 refused", err)
	}
	checkUnchanged(t, m.Dir(), before)

	rep, err := m.RepairRightEdge(ctx, DirFetcher(w.Dir()), nil)
	if err != nil {
		t.Fatalf("repair from the writer: %v", err)
	}
	if len(rep.Damage) != 1 || rep.Damage[0].Index != 257 || rep.First != TileWidth || rep.End != 300 || len(rep.Rewritten) != 1 || rep.Rewritten[0] != path {
		t.Fatalf("report: %+v", rep)
	}
	if err := m.CheckRightEdge(); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
	if rep, err := m.RepairRightEdge(ctx, DirFetcher(forged), nil); err != nil || len(rep.Damage) != 0 {
		t.Fatalf("repair of a sound edge: %+v %v", rep, err)
	}
	next, signed := writerBatch(t, w, 300, 10, 1)
	if _, err := m.AppendMirrored(ctx, next, signed, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.WaitPublished(ctx, 310); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, DirFetcher(m.Dir()), VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)}); err != nil {
		t.Fatalf("verify the repaired mirror: %v", err)
	}
}

// TestRepairRightEdgeMissingFile: the partial bundle at a running
// mirror's right edge removed by someone else is damage (CheckRightEdge)
// and is restored from a peer.
func TestRepairRightEdgeMissingFile(t *testing.T) {
	ctx := context.Background()
	_, w, m := writerAndMirror(t, 20)
	path := filepath.Join(m.Dir(), filepath.FromSlash(EntriesPath(0, 20)))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	var de *DamageError
	if err := m.CheckRightEdge(); !errors.As(err, &de) || de.File != path {
		t.Fatalf("missing edge bundle: %v, want damage naming %s", err, path)
	}
	rep, err := m.RepairRightEdge(ctx, DirFetcher(w.Dir()), nil)
	if err != nil || rep.Restored != 20 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if err := m.CheckRightEdge(); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
}

// TestRepairBundleOnline: a byte flipped in a full bundle below the right
// edge of a running mirror. CheckBundle names the entry; RepairBundle
// refuses a peer's wrong entry and restores the bundle from the writer,
// each entry checked against the level-0 tile proved against the
// mirror's checkpoint.
func TestRepairBundleOnline(t *testing.T) {
	ctx := context.Background()
	k, w, m := writerAndMirror(t, 300)
	if err := m.CheckBundle(ctx, 0); err != nil {
		t.Fatalf("sound bundle: %v", err)
	}
	path := filepath.Join(m.Dir(), filepath.FromSlash(EntriesPath(0, 0)))
	b, _ := os.ReadFile(path)
	n0 := int(binary.BigEndian.Uint16(b))
	flipByte(t, path, int64(2+n0+2+EntryHeaderSize+1)) // entry 1
	var de *DamageError
	if err := m.CheckBundle(ctx, 0); !errors.As(err, &de) || de.Index != 1 || de.File != path {
		t.Fatalf("flipped bundle: %v, want entry 1 in %s", err, path)
	}
	forged := t.TempDir()
	if err := os.CopyFS(forged, os.DirFS(w.Dir())); err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(forged, filepath.FromSlash(EntriesPath(0, 0))), int64(2+n0+2+EntryHeaderSize+1))
	var fe *ForgedEntryError
	if _, err := m.RepairBundle(ctx, DirFetcher(forged), 0, nil); !errors.As(err, &fe) || fe.Index != 1 {
		t.Fatalf("repair from a forged peer: %v, want entry 1 refused", err)
	}
	rep, err := m.RepairBundle(ctx, DirFetcher(w.Dir()), 0, nil)
	if err != nil || len(rep.Damage) != 1 || rep.Rewritten[0] != path {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if err := m.CheckBundle(ctx, 0); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
	if _, err := Verify(ctx, DirFetcher(m.Dir()), VerifyOptions{Origin: testOrigin, Verifiers: note.VerifierList(k.verifier)}); err != nil {
		t.Fatalf("verify the repaired mirror: %v", err)
	}

	// A flipped leaf in the full level-0 tile: the tile no longer proves,
	// and no peer's entries are taken against it.
	tpath := filepath.Join(m.Dir(), filepath.FromSlash(TilePath(0, 0, 0)))
	flipByte(t, tpath, 32*5+3)
	if err := m.CheckBundle(ctx, 0); !errors.As(err, &de) || de.File != tpath || !strings.Contains(err.Error(), "do not prove") {
		t.Fatalf("flipped level-0 tile: %v, want damage naming %s", err, tpath)
	}
	before := snapshotDir(t, m.Dir())
	if _, err := m.RepairBundle(ctx, DirFetcher(w.Dir()), 0, nil); err == nil || !strings.Contains(err.Error(), "chancery verify") {
		t.Fatalf("repair over a damaged tile: %v", err)
	}
	checkUnchanged(t, m.Dir(), before)
}
