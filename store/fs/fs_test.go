package fs_test

import (
	"context"
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
