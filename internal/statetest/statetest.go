// Package statetest gives tests a founded Demo Republic cheaply: founding
// one costs scrypt and key generation, so a test binary founds it once
// and hands each test a copy. It is imported by tests only.
package statetest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

// Founded is a Demo Republic founded on first use, its key files sealed
// under a passphrase.
type Founded struct {
	pass []byte
	once sync.Once
	dir  string
	err  error
}

// New returns a Founded whose key files open with pass. Found nothing
// yet: the first Copy does.
func New(pass string) *Founded { return &Founded{pass: []byte(pass)} }

// Protector opens the founded state's key files (a low scrypt work factor:
// these are test keys).
func (f *Founded) Protector() keyfile.Protector {
	return keyfile.Protector{Passphrase: f.pass, WorkFactor: 10}
}

// Copy returns a fresh copy of the founded state in a directory the test
// owns.
func (f *Founded) Copy(t testing.TB) string {
	t.Helper()
	f.once.Do(func() {
		dir, err := os.MkdirTemp("", "chancery-founded-")
		if err != nil {
			f.err = err
			return
		}
		f.dir = dir
		_, f.err = found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: f.Protector(), NoLedger: true})
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	dir := t.TempDir()
	if err := CopyDir(f.dir, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Remove deletes the founded original; TestMain calls it after the run.
func (f *Founded) Remove() {
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

// CopyDir copies a directory's regular files keeping their modes: key
// files must stay 0600 or they are refused.
func CopyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, info.Mode().Perm())
	})
}
