package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Fetcher reads a ledger's files by their C2SP path ("checkpoint",
// "tile/0/x001/234", "tile/entries/005.p/17"). A missing file is an error
// wrapping fs.ErrNotExist.
type Fetcher interface {
	Fetch(ctx context.Context, path string) ([]byte, error)
}

// DirFetcher reads a ledger from a directory.
type DirFetcher string

// Fetch implements Fetcher.
func (d DirFetcher) Fetch(ctx context.Context, path string) ([]byte, error) {
	return d.fetchInto(ctx, path, nil)
}

// fetchInto is Fetch into buf, grown where the file is larger (a new
// buffer where buf is nil): a scan
// of a million entries reads four thousand bundles, and a new buffer
// for each was most of what a restore allocated.
func (d DirFetcher) fetchInto(ctx context.Context, path string, buf []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if strings.Contains(path, "..") {
		return nil, fmt.Errorf("ledger path %q: not a tile path", path)
	}
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(path)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// One byte more than the size, so that a file grown since the Stat
	// is read whole, as ReadFile would.
	buf = slices.Grow(buf[:0], int(st.Size())+1)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
	}
}

// HTTPFetcher reads a ledger served over HTTP(S) under a base URL, as any
// static file server serves a ledger directory.
type HTTPFetcher struct {
	Base   string // URL of the ledger prefix, without a trailing slash
	Client *http.Client
}

// Fetch implements Fetcher.
func (h HTTPFetcher) Fetch(ctx context.Context, path string) ([]byte, error) {
	url := strings.TrimSuffix(h.Base, "/") + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("fetch %s: %w", url, fs.ErrNotExist)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetch %s: HTTP %s", url, resp.Status)
	}
	// A full tile is 8 KiB; a full entry bundle at most 256 × 64 KiB.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256*(MaxEntrySize+2)+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	return b, nil
}

// fetchTile reads the tile (or entry bundle, level -1) that holds index idx
// for a tree of the given size: the full tile when the tree covers it, else
// the partial one, falling back to the full tile, whose prefix it is, when a
// partial has been deleted after the tile filled. full says which was read:
// only a full tile may hold more than width hashes or entries.
func fetchTile(ctx context.Context, f Fetcher, level int, idx, size uint64) (data []byte, width int, full bool, err error) {
	return fetchTileInto(ctx, f, nil, level, idx, size)
}

// fetchTileInto is fetchTile that reads into buf, where f can
// (DirFetcher) and buf is not nil; the result then aliases buf.
func fetchTileInto(ctx context.Context, f Fetcher, buf []byte, level int, idx, size uint64) (data []byte, width int, full bool, err error) {
	fetch := f.Fetch
	if fi, ok := f.(DirFetcher); ok && buf != nil {
		fetch = func(ctx context.Context, path string) ([]byte, error) { return fi.fetchInto(ctx, path, buf) }
	}
	var fullPath, partial string
	if level < 0 {
		width = tileWidthAt(0, idx, size)
		fullPath, partial = EntriesPath(idx, 0), EntriesPath(idx, width)
	} else {
		width = tileWidthAt(uint64(level), idx, size)
		fullPath, partial = TilePath(uint64(level), idx, 0), TilePath(uint64(level), idx, width)
	}
	if width == TileWidth {
		b, err := fetch(ctx, fullPath)
		return b, width, true, err
	}
	b, err := fetch(ctx, partial)
	if err == nil {
		return b, width, false, nil
	}
	if b2, err2 := fetch(ctx, fullPath); err2 == nil {
		return b2, width, true, nil
	}
	return nil, width, false, err
}

// tileWidthAt is how many hashes of tile idx at a tile level a tree of the
// given size covers.
func tileWidthAt(level, idx, size uint64) int {
	n := size >> (TileHeight * level) // nodes at this tree level
	switch full := n / TileWidth; {
	case idx < full:
		return TileWidth
	case idx == full:
		return int(n % TileWidth)
	default:
		return 0
	}
}

// ReadEntry reads the encoded entry at index from the entry bundles of a
// tree of the given size. It reads the bundle only up to that entry, so
// damage further along a bundle does not spill onto entries before it.
// Callers that do not trust the storage check the entry's inclusion proof.
func ReadEntry(ctx context.Context, f Fetcher, index, size uint64) ([]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("entry %d: beyond the tree size %d", index, size)
	}
	b, _, _, err := fetchTile(ctx, f, -1, index/TileWidth, size)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	pos := int(index % TileWidth)
	off := 0
	for i := 0; ; i++ {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("entry %d: bundle %d ends before it", index, index/TileWidth)
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < l {
			return nil, fmt.Errorf("entry %d: bundle %d ends inside entry %d", index, index/TileWidth, i)
		}
		if i == pos {
			return b[off : off+l : off+l], nil
		}
		off += l
	}
}

// Scan calls fn with every entry in [from, size) in order, reading the
// entry bundles of a tree of the given size.
func Scan(ctx context.Context, f Fetcher, from, size uint64, fn func(index uint64, entry []byte) error) error {
	return scan(ctx, f, from, size, false, fn)
}

// ScanReusing is Scan for a reader that copies what it keeps of an entry
// (a restore copies the few it wants): each entry aliases a buffer the
// next bundle is read into, so fn must not keep it after it returns.
func ScanReusing(ctx context.Context, f Fetcher, from, size uint64, fn func(index uint64, entry []byte) error) error {
	return scan(ctx, f, from, size, true, fn)
}

func scan(ctx context.Context, f Fetcher, from, size uint64, reuse bool, fn func(index uint64, entry []byte) error) error {
	es := make([][]byte, 0, TileWidth)
	var buf []byte
	if reuse {
		buf = make([]byte, 0, 64<<10)
	}
	for b := from / TileWidth; b*TileWidth < size; b++ {
		data, width, full, err := fetchTileInto(ctx, f, buf, -1, b, size)
		if reuse {
			buf = data[:0] // grown, where it was, for the next bundle
		}
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", b, err)
		}
		es, err = splitBundleInto(es[:0], data)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", b, err)
		}
		if len(es) < width || (!full && len(es) != width) {
			return fmt.Errorf("entry bundle %d: holds %d entries, need %d", b, len(es), width)
		}
		for i, e := range es[:width] {
			idx := b*TileWidth + uint64(i)
			if idx < from {
				continue
			}
			if err := fn(idx, e); err != nil {
				return err
			}
		}
	}
	return nil
}
