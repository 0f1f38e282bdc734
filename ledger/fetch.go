package ledger

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if strings.Contains(path, "..") {
		return nil, fmt.Errorf("ledger path %q: not a tile path", path)
	}
	return os.ReadFile(filepath.Join(string(d), filepath.FromSlash(path)))
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
// partial has been deleted after the tile filled.
func fetchTile(ctx context.Context, f Fetcher, level int, idx, size uint64) ([]byte, int, error) {
	var width int
	var full, partial string
	if level < 0 {
		width = tileWidthAt(0, idx, size)
		full, partial = EntriesPath(idx, 0), EntriesPath(idx, width)
	} else {
		width = tileWidthAt(uint64(level), idx, size)
		full, partial = TilePath(uint64(level), idx, 0), TilePath(uint64(level), idx, width)
	}
	if width == TileWidth {
		b, err := f.Fetch(ctx, full)
		return b, width, err
	}
	b, err := f.Fetch(ctx, partial)
	if err == nil {
		return b, width, nil
	}
	if b2, err2 := f.Fetch(ctx, full); err2 == nil {
		return b2, width, nil
	}
	return nil, width, err
}

// tileWidthAt is how many hashes of tile idx at a tile level a tree of the
// given size covers.
func tileWidthAt(level, idx, size uint64) int {
	n := size >> (TileHeight * level) // nodes at this tree level
	switch {
	case n >= (idx+1)*TileWidth:
		return TileWidth
	case n <= idx*TileWidth:
		return 0
	default:
		return int(n - idx*TileWidth)
	}
}

// ReadEntry reads the encoded entry at index from the entry bundles of a
// tree of the given size.
func ReadEntry(ctx context.Context, f Fetcher, index, size uint64) ([]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("entry %d: beyond the tree size %d", index, size)
	}
	b, width, err := fetchTile(ctx, f, -1, index/TileWidth, size)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	es, err := splitBundle(b)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	pos := int(index % TileWidth)
	if len(es) < width || pos >= len(es) {
		return nil, fmt.Errorf("entry %d: bundle %d holds %d entries, need %d", index, index/TileWidth, len(es), width)
	}
	return es[pos], nil
}
