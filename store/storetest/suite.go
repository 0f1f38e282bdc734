// Package storetest is the contract every store.Backend must pass. Each
// backend's tests call Suite with a constructor for an empty backend.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/chancery-gov/chancery/store"
)

// Suite runs the backend contract. newBackend must return an empty backend
// each time it is called (a fresh directory or bucket prefix).
func Suite(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, be store.Backend)
	}{
		{"SaveLoad", testSaveLoad},
		{"LoadRange", testLoadRange},
		{"Missing", testMissing},
		{"SizeMismatch", testSizeMismatch},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"ListStop", testListStop},
		{"Remove", testRemove},
		{"InvalidNames", testInvalidNames},
		{"Concurrent", testConcurrent},
		{"Large", testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func load(t *testing.T, be store.Backend, name string, off, length int64) ([]byte, error) {
	t.Helper()
	rc, err := be.Load(context.Background(), name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func save(t *testing.T, be store.Backend, name string, data []byte) {
	t.Helper()
	if err := be.Save(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save %s: %v", name, err)
	}
}

func testSaveLoad(t *testing.T, be store.Backend) {
	for _, n := range []int{0, 1, 4095, 4096, 1 << 20} {
		name := fmt.Sprintf("data/%064x", n)
		want := random(t, n)
		save(t, be, name, want)
		got, err := load(t, be, name, 0, 0)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("load %s: %d bytes, err %v; want %d bytes", name, len(got), err, n)
		}
		size, err := be.Stat(context.Background(), name)
		if err != nil || size != int64(n) {
			t.Fatalf("stat %s = %d, %v; want %d", name, size, err, n)
		}
	}
}

func testLoadRange(t *testing.T, be store.Backend) {
	data := random(t, 10000)
	save(t, be, "data/range", data)
	for _, r := range []struct{ off, length int64 }{{0, 1}, {1, 9999}, {5000, 0}, {9999, 1}, {1234, 4321}, {0, 10000}} {
		got, err := load(t, be, "data/range", r.off, r.length)
		end := r.off + r.length
		if r.length == 0 {
			end = int64(len(data))
		}
		if err != nil || !bytes.Equal(got, data[r.off:end]) {
			t.Errorf("load %d+%d: %d bytes, %v", r.off, r.length, len(got), err)
		}
	}
	// Past the end must fail (at Load or while reading), never be short.
	for _, r := range []struct{ off, length int64 }{{9990, 20}, {10001, 1}, {20000, 0}} {
		got, err := load(t, be, "data/range", r.off, r.length)
		if err == nil {
			t.Errorf("load %d+%d past the end: got %d bytes and no error", r.off, r.length, len(got))
		}
	}
}

func testMissing(t *testing.T, be store.Backend) {
	ctx := context.Background()
	if _, err := be.Load(ctx, "data/nothing", 0, 0); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("load missing: %v, want fs.ErrNotExist", err)
	}
	if _, err := be.Load(ctx, "data/nothing", 10, 5); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("load missing range: %v, want fs.ErrNotExist", err)
	}
	if _, err := be.Stat(ctx, "data/nothing"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("stat missing: %v, want fs.ErrNotExist", err)
	}
	if err := be.Remove(ctx, "data/nothing"); err != nil {
		t.Errorf("remove missing: %v, want nil", err)
	}
}

// testSizeMismatch checks that a reader shorter or longer than the
// declared size stores nothing: a half-written pack must never be visible.
func testSizeMismatch(t *testing.T, be store.Backend) {
	ctx := context.Background()
	data := random(t, 1000)
	if err := be.Save(ctx, "data/short", bytes.NewReader(data), 2000); err == nil {
		t.Error("save with a short reader succeeded")
	}
	if _, err := be.Stat(ctx, "data/short"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("after a failed save, stat: %v, want fs.ErrNotExist", err)
	}
	if err := be.Save(ctx, "data/long", bytes.NewReader(data), 500); err == nil {
		t.Error("save with a long reader succeeded")
	}
	if _, err := be.Stat(ctx, "data/long"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("after a failed save, stat: %v, want fs.ErrNotExist", err)
	}
	failing := io.MultiReader(bytes.NewReader(data), errReader{})
	if err := be.Save(ctx, "data/failing", failing, 2000); err == nil {
		t.Error("save with a failing reader succeeded")
	}
	if _, err := be.Stat(ctx, "data/failing"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("after a failed save, stat: %v, want fs.ErrNotExist", err)
	}
	n := 0
	be.List(ctx, "", func(string, int64) error { n++; return nil })
	if n != 0 {
		t.Errorf("failed saves left %d objects", n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("storetest: injected read failure") }

func testOverwrite(t *testing.T, be store.Backend) {
	save(t, be, "index/x1", []byte("first"))
	save(t, be, "index/x1", []byte("second, longer"))
	got, err := load(t, be, "index/x1", 0, 0)
	if err != nil || string(got) != "second, longer" {
		t.Fatalf("after overwrite: %q, %v", got, err)
	}
}

func testList(t *testing.T, be store.Backend) {
	ctx := context.Background()
	want := map[string]int64{}
	for i := range 30 {
		dir := []string{"data", "index", "keys"}[i%3]
		name := fmt.Sprintf("%s/%064x", dir, i*7919)
		data := random(t, i)
		save(t, be, name, data)
		want[name] = int64(i)
	}
	save(t, be, "a", []byte("x"))
	want["a"] = 1
	got := map[string]int64{}
	if err := be.List(ctx, "", func(name string, size int64) error {
		if _, dup := got[name]; dup {
			t.Errorf("list: %s twice", name)
		}
		got[name] = size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
		t.Fatalf("list all:\n got %v\nwant %v", sorted(got), sorted(want))
	}
	for _, prefix := range []string{"data/", "index/", "keys/", "nothing/", "data/000"} {
		got := map[string]int64{}
		if err := be.List(ctx, prefix, func(name string, size int64) error {
			got[name] = size
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		w := map[string]int64{}
		for n, s := range want {
			if strings.HasPrefix(n, prefix) {
				w[n] = s
			}
		}
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(w)) {
			t.Errorf("list %q:\n got %v\nwant %v", prefix, sorted(got), sorted(w))
		}
	}
}

func sorted(m map[string]int64) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

func testListStop(t *testing.T, be store.Backend) {
	for i := range 5 {
		save(t, be, fmt.Sprintf("data/stop%d", i), []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := be.List(context.Background(), "data/", func(string, int64) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("list with a failing callback: %v after %d calls; want the callback's error after 1", err, calls)
	}
}

func testRemove(t *testing.T, be store.Backend) {
	ctx := context.Background()
	save(t, be, "data/gone", []byte("bye"))
	save(t, be, "data/kept", []byte("stay"))
	if err := be.Remove(ctx, "data/gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, "data/gone"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("stat after remove: %v", err)
	}
	var names []string
	be.List(ctx, "data/", func(n string, _ int64) error { names = append(names, n); return nil })
	if fmt.Sprint(names) != "[data/kept]" {
		t.Errorf("list after remove: %v", names)
	}
}

func testInvalidNames(t *testing.T, be store.Backend) {
	ctx := context.Background()
	for _, name := range []string{"", "/abs", "a//b", "../escape", "data/../x", "data/.hidden", "a b", "trailing/"} {
		if err := be.Save(ctx, name, bytes.NewReader(nil), 0); err == nil {
			t.Errorf("save %q succeeded", name)
		}
	}
}

// testConcurrent saves and reads many objects at once; under -race this
// also checks the backend's own locking.
func testConcurrent(t *testing.T, be store.Backend) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				name := fmt.Sprintf("data/c%d-%d", w, i)
				data := bytes.Repeat([]byte{byte(w), byte(i)}, 5000)
				if err := be.Save(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
					errs <- err
					return
				}
				rc, err := be.Load(ctx, name, 0, 0)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: read back %d bytes, %v", name, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testLarge(t *testing.T, be store.Backend) {
	if testing.Short() {
		t.Skip("short")
	}
	data := random(t, 40<<20)
	save(t, be, "data/large", data)
	got, err := load(t, be, "data/large", 33<<20, 1<<20)
	if err != nil || !bytes.Equal(got, data[33<<20:34<<20]) {
		t.Fatalf("range of a large object: %d bytes, %v", len(got), err)
	}
}
