package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteNewAndReplace: WriteNew never overwrites, Replace always does;
// both leave the exact bytes with the exact mode whatever the umask, and
// no temporary file behind.
func TestWriteNewAndReplace(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	if err := WriteNew(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("two"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("WriteNew over an existing file: %v, want ErrExist", err)
	}
	if b, err := ReadPrivate(p, 10); err != nil || string(b) != "one" {
		t.Fatalf("after a refused WriteNew: %q, %v", b, err)
	}
	for i, data := range []string{"two", "three, longer", "4"} {
		if err := Replace(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := ReadPrivate(p, 100)
		if err != nil || string(b) != data {
			t.Fatalf("replace %d: %q, %v; want %q", i, b, err, data)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("directory holds %d names (%v): temporary files left behind", len(ents), err)
	}
}
