package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/store"
)

// defaultPoll is how often a source that can only poll looks for a newer
// checkpoint.
const defaultPoll = 200 * time.Millisecond

// PollCheckpoint waits until the checkpoint f serves is larger than size,
// looking every poll (default 200ms), and returns it, signed. A missing
// checkpoint is waited for like a smaller one. It is the Next of every
// Source that can only read a published ledger (PeerSource, DirSource).
func PollCheckpoint(ctx context.Context, f ledger.Fetcher, size uint64, poll time.Duration) ([]byte, ledger.Checkpoint, error) {
	if poll <= 0 {
		poll = defaultPoll
	}
	for {
		signed, err := f.Fetch(ctx, ledger.CheckpointPath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, ledger.Checkpoint{}, err
		}
		if err == nil {
			cp, err := ledger.ParseSignedCheckpoint(signed)
			if err != nil {
				return nil, ledger.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
			}
			if cp.Size > size {
				return signed, cp, nil
			}
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return nil, ledger.Checkpoint{}, ctx.Err()
		}
	}
}

// DirSource is a Source over a ledger directory and a guest's blob backend
// that it only ever reads: what an offline bundle is exported from at the
// home (`chancery bundle export`), with no key and without opening the
// ledger, so the home's daemon may keep running. It opens each registry's
// store keyless on first use and sees the packs that were durable then;
// Close releases them.
type DirSource struct {
	dir   string
	blobs store.Backend
	// Poll is how often Next looks for a newer checkpoint (default 200ms).
	Poll time.Duration

	mu     sync.Mutex
	stores map[string]*store.Store
}

// NewDirSource returns a source reading the ledger in dir and the blobs
// of blobs (the guest's backend, registries under registry.BlobPrefix).
func NewDirSource(dir string, blobs store.Backend) *DirSource {
	return &DirSource{dir: dir, blobs: blobs, stores: map[string]*store.Store{}}
}

// Fetcher implements Source.
func (s *DirSource) Fetcher() ledger.Fetcher { return ledger.DirFetcher(s.dir) }

// Next implements Source: it polls the checkpoint file.
func (s *DirSource) Next(ctx context.Context, size uint64) ([]byte, ledger.Checkpoint, error) {
	signed, cp, err := PollCheckpoint(ctx, s.Fetcher(), size, s.Poll)
	if err != nil && ctx.Err() == nil {
		return nil, cp, fmt.Errorf("ledger %s: %w", s.dir, err)
	}
	return signed, cp, err
}

func (s *DirSource) store(ctx context.Context, reg string) (*store.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stores[reg]; ok {
		return st, nil
	}
	st, err := OpenReadOnly(ctx, s.blobs, reg)
	if err != nil {
		return nil, err
	}
	s.stores[reg] = st
	return st, nil
}

// Locate implements Source.
func (s *DirSource) Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error) {
	st, err := s.store(ctx, reg)
	if err != nil {
		return nil, err
	}
	return locate(st, reg, ids)
}

// Object implements Source.
func (s *DirSource) Object(ctx context.Context, reg, name string) ([]byte, error) {
	if _, ok := store.ParsePackName(name); !ok {
		return nil, fmt.Errorf("%q is not a pack name", name)
	}
	return readObject(ctx, store.Prefixed(s.blobs, registry.BlobPrefix(reg)), name)
}

// Close releases the stores; it never writes to the backend.
func (s *DirSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.stores {
		CloseReadOnly(st)
	}
	s.stores = map[string]*store.Store{}
	return nil
}

// OpenReadOnly opens a registry's blob store in a guest's backend keyless
// and over a view that refuses every write, so that looking chunks up can
// never change what it reads. Close it with CloseReadOnly.
func OpenReadOnly(ctx context.Context, blobs store.Backend, reg string) (*store.Store, error) {
	st, err := store.Open(ctx, readOnly{store.Prefixed(blobs, registry.BlobPrefix(reg))}, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("blob store of registry %s: %w", reg, err)
	}
	return st, nil
}

// CloseReadOnly closes a store opened over a read-only view. Close
// flushes, and a flush there can only fail (an index object for packs that
// had none would be written otherwise), which is what read-only means: the
// error is expected and dropped.
func CloseReadOnly(st *store.Store) { _ = st.Close() }

// readOnly is a view of a backend that refuses every write.
type readOnly struct{ store.Backend }

func (readOnly) Save(_ context.Context, name string, _ io.Reader, _ int64) error {
	return fmt.Errorf("store: save %s: read-only view", name)
}

func (readOnly) Remove(_ context.Context, name string) error {
	return fmt.Errorf("store: remove %s: read-only view", name)
}
