package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/state"
)

// TestRepairCommand: a home whose write-ahead log has a damaged frame is
// refused by Open; chancery repair, from another copy of the ledger,
// brings it back, and verify passes.
func TestRepairCommand(t *testing.T) {
	dir, _ := demoState(t, 300)
	ledgerDir := state.Layout{Dir: dir}.Ledger("home")
	peer := t.TempDir()
	if err := os.CopyFS(peer, os.DirFS(ledgerDir)); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(ledgerDir, "wal", "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no write-ahead log segment")
	}
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Skip two frames and damage the third, which frames follow.
	off := 0
	for range 2 {
		off += 16 + int(binary.BigEndian.Uint32(b[off:]))
	}
	b[off+16+20] ^= 1
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := runRepair(context.Background(), repairOptions{ledgerDir: ledgerDir, from: peer}, &out); err != nil {
		t.Fatalf("repair: %v\n%s", err, out.String())
	}
	for _, want := range []string{"damage: " + seg, "restored", "rewrote " + seg} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := verifyOut(t, verifyOptions{target: ledgerDir, noState: true}); err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
	out.Reset()
	if err := runRepair(context.Background(), repairOptions{ledgerDir: ledgerDir, from: peer}, &out); err != nil || !strings.Contains(out.String(), "no damage found") {
		t.Fatalf("second repair: %v\n%s", err, out.String())
	}
}
