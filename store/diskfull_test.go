package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
)

// TestStoreRecoversFromFullDisk: a pack upload that fails because the
// backend's disk is full does not stop the store for good. While the disk
// is full Put and Flush fail with the disk's error; once space returns
// the same Store takes writes again, without a reopen, and every blob
// whose Put returned before (its chunks were held in memory meanwhile)
// reads back after a Flush.
func TestStoreRecoversFromFullDisk(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "blobs")
	testnet.MountTmpfs(t, dir, 4<<20)
	be, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, be, store.Options{Chunking: testChunking(t), PackSize: 256 << 10})
	sl := newTestSealer(t, 1)
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}

	type blob struct {
		ref  store.Ref
		data []byte
	}
	var returned []blob
	var full error
	for i := 0; full == nil && i < 64; i++ {
		d := content(uint64(i), 100<<10, 0)
		ref, err := s.Put(ctx, sl, bytes.NewReader(d))
		if err == nil {
			returned = append(returned, blob{ref, d})
			err = s.Flush(ctx)
		}
		full = err
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", full)
	}
	t.Logf("%d blobs put, then %v", len(returned), full)
	if _, err := s.Put(ctx, sl, bytes.NewReader(content(999, 10<<10, 0))); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on a full disk: %v, want ENOSPC", err)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	d := content(1000, 100<<10, 0)
	ref, err := s.Put(ctx, sl, bytes.NewReader(d))
	if err != nil {
		t.Fatalf("put after space returned, same store: %v", err)
	}
	returned = append(returned, blob{ref, d})
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("flush after space returned: %v", err)
	}
	for i, b := range returned {
		got, err := get(s, sl, b.ref)
		if err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("blob %d after recovery: %v", i, err)
		}
	}
	// And from the disk alone.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, be, store.Options{Chunking: testChunking(t), PackSize: 256 << 10})
	for i, b := range returned {
		got, err := get(s2, sl, b.ref)
		if err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("blob %d after reopening: %v", i, err)
		}
	}
}
