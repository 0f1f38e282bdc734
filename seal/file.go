package seal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxSmallFile bounds key files, shares and sealed shares: each is at most
// a few kilobytes, so anything larger is not one.
const maxSmallFile = 64 << 10

// maxPackageFile bounds a custody package: 255 custodians with hybrid
// post-quantum recipients (about 2 KB each) and sealed shares (about 1.7 KB
// each) come to under 1 MiB.
const maxPackageFile = 4 << 20

// writeNewFile writes data to path atomically and never over an existing
// file: it writes and fsyncs a temporary file in the same directory,
// hard-links it to path (link fails if path exists, even under a concurrent
// writer), removes the temporary name and fsyncs the directory.
//
// It is the same discipline as internal/keyfile's, which does not export it.
func writeNewFile(path string, data []byte, perm os.FileMode) (err error) {
	if _, err := os.Lstat(path); err == nil {
		return os.ErrExist
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if rmErr := os.Remove(tmpName); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
			err = fmt.Errorf("remove temp file: %w", rmErr)
		}
	}()
	// Chmod explicitly: a umask must never widen a secret's mode, and the
	// check on read depends on it.
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// readPrivateFile reads a regular file that only its owner may access. The
// mode is checked on the open descriptor, so a rename between check and
// read cannot swap in another file.
func readPrivateFile(path string, limit int64) ([]byte, error) {
	return readFile(path, limit, true)
}

func readFile(path string, limit int64, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (mode %s)", fi.Mode())
	}
	if perm := fi.Mode().Perm(); private && perm&0o077 != 0 {
		return nil, fmt.Errorf("permissions %#o are too open: group or others can access it; run chmod 600 %s", perm, path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("file is %d bytes, more than the %d allowed", fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file grew beyond %d bytes while being read", limit)
	}
	return data, nil
}
