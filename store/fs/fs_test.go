package fs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Suite(t, func(t *testing.T) store.Backend {
		be, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return be
	})
}

// TestPrefixedSuite runs the backend contract through a registry's view
// of an fs backend: each registry's Store sits on such a view.
func TestPrefixedSuite(t *testing.T) {
	storetest.Suite(t, func(t *testing.T) store.Backend {
		be, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return store.Prefixed(be, "registries/population/")
	})
}

// TestPrefixedShared runs the contract through sibling views of one fs
// backend at once, with objects of a neighbouring registry present
// throughout, so that a view leaking into another fails the suite's exact
// listings.
func TestPrefixedShared(t *testing.T) {
	be, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// "registries/p" is a string prefix of every view below.
	neighbour := store.Prefixed(be, "registries/p/")
	for _, name := range []string{"data/0000", "index/0000", "a"} {
		if err := neighbour.Save(context.Background(), name, strings.NewReader("n"), 1); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	storetest.Suite(t, func(t *testing.T) store.Backend {
		n++
		return store.Prefixed(be, fmt.Sprintf("registries/p%d/", n))
	})
}

// TestLayout pins the on-disk fan-out and that temporary files are not
// listed as objects.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	be, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := be.Save(ctx, "data/abcdef", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "ab", "abcdef")); err != nil {
		t.Fatalf("fan-out path: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "ab", ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var names []string
	be.List(ctx, "", func(n string, _ int64) error { names = append(names, n); return nil })
	if len(names) != 1 || names[0] != "data/abcdef" {
		t.Fatalf("list = %v", names)
	}
}
