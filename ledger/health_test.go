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

	"github.com/chancery-gov/chancery/internal/testnet"
)

// TestWALFullRecovers: a commit whose new write-ahead log segment cannot
// be preallocated (the disk is full) fails only the appends in it: the
// log says why in Health, takes appends again as soon as there is room,
// with no reopen, and holds every acknowledged entry, and none of the
// refused ones, after a reopen. Before, the failed roll stopped the log
// for good, and left a segment file behind that made the next roll fail.
func TestWALFullRecovers(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ledger")
	wal := filepath.Join(dir, walDir)
	// Only the write-ahead log is on the small filesystem: its segment
	// roll is what fills it, not the tiles.
	testnet.MountTmpfs(t, wal, 256<<10)
	k := newTestKey(t, testOrigin)
	opts := Options{Origin: testOrigin, Signer: k.signer, CheckpointInterval: time.Millisecond, SyncInterval: time.Hour, SegmentSize: 64 << 10}
	l, err := Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	ballast := filepath.Join(wal, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 96<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	big := func(i int) Entry {
		e := testEntry(i, 1)
		e.Payload = bytes.Repeat([]byte{byte(i)}, 4000)
		return e
	}
	var acked []uint64
	var full error
	for i := 0; full == nil; i++ {
		if i == 200 {
			t.Fatal("200 appends of 4 KB into 256 KiB all acknowledged")
		}
		idx, err := l.Append(ctx, big(i))
		if err == nil {
			acked = append(acked, idx)
		}
		full = err
	}
	if !errors.Is(full, ErrNoSpace) || !strings.Contains(full.Error(), wal) {
		t.Fatalf("append on a full disk: %v, want ErrNoSpace naming %s", full, wal)
	}
	if h := l.Health(); !errors.Is(h, ErrNoSpace) {
		t.Fatalf("health on a full disk: %v", h)
	}
	t.Logf("%d appends acknowledged, then: %v", len(acked), full)

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if h := l.Health(); h != nil {
		t.Fatalf("health once there is room: %v", h)
	}
	for i := range 10 { // fewer than a segment holds
		idx, err := l.Append(ctx, big(1000+i))
		if err != nil {
			t.Fatalf("append %d once there is room, without a reopen: %v", i, err)
		}
		acked = append(acked, idx)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	for i, idx := range acked {
		if idx != uint64(i) {
			t.Fatalf("acknowledged indices %v: not contiguous at %d (a refused append took an index)", acked, i)
		}
	}
	if l.Size() != uint64(len(acked)) {
		t.Fatalf("reopened: %d entries, %d acknowledged", l.Size(), len(acked))
	}
}
