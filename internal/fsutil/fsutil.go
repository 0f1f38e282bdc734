// Package fsutil holds the file discipline that secrets and other small
// files need: written atomically, durably and never over an existing file;
// read with a size bound, and refused when others could read them.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteNew writes data to path atomically and never over an existing
// file: it writes and fsyncs a temporary file in the same directory,
// hard-links it to path (link fails if path exists, even under a concurrent
// writer), removes the temporary name and fsyncs the directory.
func WriteNew(path string, data []byte, perm os.FileMode) (err error) {
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
	if err := writeSynced(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// Replace writes data to path atomically and durably, over any file
// there: it writes and fsyncs path+".tmp", renames it over path and
// fsyncs the directory. A crash leaves the old file or the new one, and
// perhaps the temporary file, which the next Replace truncates. Callers
// are the one writer of path.
func Replace(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := writeSynced(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// writeSynced sets f's mode, writes data, fsyncs and closes f (on error
// too).
func writeSynced(f *os.File, data []byte, perm os.FileMode) error {
	// Chmod explicitly: a umask must never widen a secret's mode, and the
	// check on read depends on it.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync: %w", err)
	}
	return f.Close()
}

// SyncDir fsyncs a directory, so that names created or removed in it
// survive a crash.
func SyncDir(dir string) error {
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

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and
// fsyncs the parent of each directory it creates, so that the new names
// survive a power loss: without that, files made durable inside a new
// directory can vanish with its name.
func MkdirAll(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made meanwhile by another: its maker syncs
		}
		return err
	}
	return SyncDir(parent)
}

// ReadPrivate reads a regular file of at most limit bytes that only its
// owner may access. The mode is checked on the open descriptor, so a rename
// between check and read cannot swap in another file.
func ReadPrivate(path string, limit int64) ([]byte, error) {
	return read(path, limit, true)
}

// Read reads a regular file of at most limit bytes: the bound keeps a
// hostile or corrupt file from exhausting memory.
func Read(path string, limit int64) ([]byte, error) {
	return read(path, limit, false)
}

func read(path string, limit int64, private bool) ([]byte, error) {
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
