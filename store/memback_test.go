package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/storetest"
)

// memBackend keeps objects in memory, so property tests can run hundreds
// of replications without an fsync each. It passes the same contract
// suite as the real backends (TestMemBackend), so what the tests prove
// over it holds for them.
type memBackend struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func newMemBackend() *memBackend { return &memBackend{objs: map[string][]byte{}} }

func (m *memBackend) Save(ctx context.Context, name string, data io.Reader, size int64) error {
	if !store.ValidName(name) {
		return fmt.Errorf("mem backend: invalid name %q", name)
	}
	b, err := io.ReadAll(io.LimitReader(data, size+1))
	if err != nil {
		return fmt.Errorf("mem backend: save %s: %w", name, err)
	}
	if int64(len(b)) != size {
		return fmt.Errorf("mem backend: save %s: got %d bytes, want %d", name, len(b), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[name] = b
	return nil
}

func (m *memBackend) get(name string) ([]byte, error) {
	if !store.ValidName(name) {
		return nil, fmt.Errorf("mem backend: invalid name %q", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[name]
	if !ok {
		return nil, fmt.Errorf("mem backend: %s: %w", name, iofs.ErrNotExist)
	}
	return b, nil
}

func (m *memBackend) Load(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b, err := m.get(name)
	if err != nil {
		return nil, err
	}
	if length == 0 {
		length = int64(len(b)) - off
	}
	if off < 0 || length < 0 || off+length > int64(len(b)) {
		return nil, fmt.Errorf("mem backend: load %s: range %d+%d beyond %d bytes", name, off, length, len(b))
	}
	return io.NopCloser(bytes.NewReader(b[off : off+length])), nil
}

func (m *memBackend) Stat(ctx context.Context, name string) (int64, error) {
	b, err := m.get(name)
	return int64(len(b)), err
}

func (m *memBackend) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	m.mu.Lock()
	type obj struct {
		name string
		size int64
	}
	var objs []obj
	for n, b := range m.objs {
		if strings.HasPrefix(n, prefix) {
			objs = append(objs, obj{n, int64(len(b))})
		}
	}
	m.mu.Unlock()
	for _, o := range objs {
		if err := fn(o.name, o.size); err != nil {
			return fmt.Errorf("mem backend: list %q: %w", prefix, err)
		}
	}
	return nil
}

func (m *memBackend) Remove(ctx context.Context, name string) error {
	if !store.ValidName(name) {
		return fmt.Errorf("mem backend: invalid name %q", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, name)
	return nil
}

// set replaces an object's bytes behind the store's back, as a host could.
func (m *memBackend) set(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[name] = b
}

func TestMemBackend(t *testing.T) {
	storetest.Suite(t, func(t *testing.T) store.Backend { return newMemBackend() })
}
