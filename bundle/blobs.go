package bundle

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/chancery-gov/chancery/store"
)

// dirBlobs serves a bundle's blobs/<registry>/ directory as a read-only
// backend holding packs under data/<sha256>. List shows nothing: the
// scratch store that verifies them adopts each pack by name, in manifest
// order, so the first bad one is the one named.
type dirBlobs struct{ root string }

func (b dirBlobs) path(name string) (string, error) {
	if _, ok := store.ParsePackName(name); !ok {
		return "", fmt.Errorf("bundle: %q is not a pack name", name)
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

func (b dirBlobs) Load(_ context.Context, name string, off, length int64) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if length == 0 {
		length = fi.Size() - off
	}
	if off < 0 || length < 0 || off+length > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("bundle: %s: range %d+%d past its %d bytes", name, off, length, fi.Size())
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, length), f}, nil
}

func (b dirBlobs) Stat(_ context.Context, name string) (int64, error) {
	p, err := b.path(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("bundle: %s: not a regular file", name)
	}
	return fi.Size(), nil
}

func (dirBlobs) List(context.Context, string, func(string, int64) error) error { return nil }

func (dirBlobs) Save(_ context.Context, name string, _ io.Reader, _ int64) error {
	return fmt.Errorf("bundle: save %s: a bundle is read-only", name)
}

func (dirBlobs) Remove(_ context.Context, name string) error {
	return fmt.Errorf("bundle: remove %s: a bundle is read-only", name)
}
