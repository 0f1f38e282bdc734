// Package fs is the embedded default store backend: objects are files in
// one directory tree.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/store"
)

// Backend keeps each object in a file. A name "dir/abcdef" is stored as
// <root>/dir/ab/abcdef: the two-character fan-out keeps directories at a
// few thousand entries even with millions of packs, which matters for
// ext4/xfs lookup times and for anyone who has to ls the tree.
type Backend struct {
	root string
}

var _ store.Backend = (*Backend)(nil)

// New opens (creating if needed) a backend rooted at dir.
func New(dir string) (*Backend, error) {
	// Durably: a root whose name a power loss takes takes every blob.
	if err := fsutil.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fs backend: create root %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fs backend: root %s: %w", dir, err)
	}
	return &Backend{root: abs}, nil
}

// Root returns the directory the backend stores into.
func (b *Backend) Root() string { return b.root }

func fanout(base string) string {
	if len(base) < 2 {
		return base
	}
	return base[:2]
}

func (b *Backend) path(name string) (string, error) {
	if !store.ValidName(name) {
		return "", fmt.Errorf("fs backend %s: invalid object name %q", b.root, name)
	}
	dir, base := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i], name[i+1:]
	}
	return filepath.Join(b.root, filepath.FromSlash(dir), fanout(base), base), nil
}

// Save writes to a temporary file beside the target, fsyncs it, renames it
// into place and fsyncs the directory, so that after a crash the name holds
// either nothing or all of the data.
func (b *Backend) Save(ctx context.Context, name string, data io.Reader, size int64) (err error) {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := b.mkdirDurable(dir); err != nil {
		return fmt.Errorf("fs backend: save %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("fs backend: save %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, data}, size+1))
	if err != nil {
		return fmt.Errorf("fs backend: save %s: write %s: %w", name, tmp, err)
	}
	if n != size {
		return fmt.Errorf("fs backend: save %s: got %d bytes, want %d", name, n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fs backend: save %s: fsync %s: %w", name, tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fs backend: save %s: close %s: %w", name, tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("fs backend: save %s: rename to %s: %w", name, p, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("fs backend: save %s: %w", name, err)
	}
	return nil
}

// mkdirDurable creates dir and its missing parents, fsyncing each parent
// so the new directory entries survive a crash along with the file.
func (b *Backend) mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir && len(parent) >= len(b.root) {
		if err := b.mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, iofs.ErrExist) {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return fsutil.SyncDir(parent)
}

// ctxReader lets a cancelled context stop a long copy.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Load opens the file and checks the range against its size first, so a
// truncated object is an error instead of a short read.
func (b *Backend) Load(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 || length < 0 {
		return nil, fmt.Errorf("fs backend: load %s: bad range %d+%d", name, off, length)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("fs backend: load %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fs backend: load %s: %w", name, err)
	}
	if length == 0 {
		length = fi.Size() - off
	}
	if off > fi.Size() || off+length > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("fs backend: load %s: range %d+%d beyond size %d: %w", name, off, length, fi.Size(), io.ErrUnexpectedEOF)
	}
	return &sectionFile{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// Stat returns the file's size.
func (b *Backend) Stat(ctx context.Context, name string) (int64, error) {
	p, err := b.path(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("fs backend: stat %s: %w", name, err)
	}
	return fi.Size(), nil
}

// List walks the directory under the prefix and maps each file back to its
// name by dropping the fan-out directory; temporary files (leading ".") and
// anything that does not sit under its own fan-out are not objects.
func (b *Backend) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		base := d.Name()
		fan := filepath.Dir(p)
		if strings.HasPrefix(base, ".") || filepath.Base(fan) != fanout(base) {
			return nil
		}
		rel, err := filepath.Rel(b.root, filepath.Dir(fan))
		if err != nil {
			return err
		}
		name := base
		if rel != "." {
			name = filepath.ToSlash(rel) + "/" + base
		}
		if !strings.HasPrefix(name, prefix) || !store.ValidName(name) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return fn(name, fi.Size())
	})
	if err != nil {
		return fmt.Errorf("fs backend %s: list %q: %w", b.root, prefix, err)
	}
	return nil
}

// Remove deletes the file; a missing file is not an error.
func (b *Backend) Remove(ctx context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("fs backend: remove %s: %w", name, err)
	}
	return nil
}
