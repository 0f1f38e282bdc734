package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// Index serves the data tracker without scanning the ledger: the ledger
// indices of the access entries, by the blinded record ids they name (the
// record read or verified, each result of a find). A citizen's person
// record is keyed by their person id, so its blinded id is the blinded
// person id, and their linked records' blinded ids lead to the rest.
//
// The index holds no plaintext and nothing sealed: only the blinded ids
// the entries carry in clear, and ledger positions. It lives in memory
// and is rebuilt from the ledger, as the registries' indexes are: on the
// first Track after it is made (an unsealing), then kept up to date by
// indexing, at each Track, the entries published since the last one,
// whoever appended them (this service, the officials' API, replication).
type Index struct {
	log *ledger.Log

	mu   sync.Mutex
	next uint64                // entries [0, next) are indexed; next is a published size
	by   map[[32]byte][]uint64 // blinded record id → ledger indices, ascending
}

// NewIndex returns an empty index of log's access entries; the first
// Track builds it.
func NewIndex(log *ledger.Log) *Index {
	return &Index{log: log, by: map[[32]byte][]uint64{}}
}

// catchUp indexes the access entries in [x.next, size). x.mu is held.
func (x *Index) catchUp(ctx context.Context, size uint64) error {
	if size <= x.next {
		return nil
	}
	err := ledger.Scan(ctx, ledger.DirFetcher(x.log.Dir()), x.next, size, func(index uint64, raw []byte) error {
		le, err := ledger.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("ledger entry %d: %w", index, err)
		}
		if le.Type != ledger.TypeAccess {
			return nil
		}
		var e continuity.AccessEntry
		if err := json.Unmarshal(le.Payload, &e); err != nil {
			return nil // not an entry the tracker can read (Track skips it too)
		}
		add := func(b []byte) {
			if len(b) != 32 {
				return
			}
			k := [32]byte(b)
			if l := x.by[k]; len(l) == 0 || l[len(l)-1] != index {
				x.by[k] = append(l, index)
			}
		}
		add(e.BlindID)
		for _, r := range e.Results {
			add(r.BlindID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data tracker index: %w", err)
	}
	x.next = size
	return nil
}

// errDone stops a scan once the entries wanted from a tile are read.
var errDone = errors.New("done")

// Track is the package's Track served from the index: the same list,
// reading only the entry bundles that hold the citizen's entries.
func (x *Index) Track(ctx context.Context, keys *seal.Keyring, person string, owned map[string][]string) ([]Seen, error) {
	blind := blindOwned(keys, owned)
	_, cp, err := x.log.WaitPublished(ctx, x.log.Size())
	if err != nil {
		return nil, fmt.Errorf("data tracker: wait for the ledger's checkpoint: %w", err)
	}
	x.mu.Lock()
	err = x.catchUp(ctx, cp.Size)
	// Read at the size this call waited for: another call may have
	// indexed further, and its entries show at the next read.
	size := cp.Size
	var want []uint64
	for _, m := range blind {
		for b := range m {
			for _, i := range x.by[b] {
				if i < size {
					want = append(want, i)
				}
			}
		}
	}
	x.mu.Unlock()
	if err != nil {
		return nil, err
	}
	slices.Sort(want)
	want = slices.Compact(want)

	var out []Seen
	f := ledger.DirFetcher(x.log.Dir())
	for i := 0; i < len(want); {
		// The wanted entries of one entry bundle: one read.
		bundle := want[i] / ledger.TileWidth
		j := i
		for j < len(want) && want[j]/ledger.TileWidth == bundle {
			j++
		}
		group := want[i:j]
		k := 0
		err := ledger.Scan(ctx, f, group[0], size, func(index uint64, raw []byte) error {
			if index != group[k] {
				return nil
			}
			s, ok, err := seenIn(keys, person, blind, index, raw)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, s)
			}
			if k++; k == len(group) {
				return errDone
			}
			return nil
		})
		if err != nil && !errors.Is(err, errDone) {
			return nil, fmt.Errorf("data tracker: %w", err)
		}
		i = j
	}
	return out, nil
}
