package ledger

import (
	"fmt"
	"strconv"
	"strings"
)

// The C2SP tlog-tiles layout. Paths are relative to the log's prefix (the
// ledger directory, or the URL it is served under).

const (
	// TileHeight is the number of tree levels one tile spans: 2^8 = 256 hashes.
	TileHeight = 8
	// TileWidth is the number of hashes in a full tile, and of entries in a
	// full entry bundle.
	TileWidth = 1 << TileHeight
	// CheckpointPath is where the signed checkpoint lives.
	CheckpointPath = "checkpoint"
)

// TilePath is the path of the hash tile at the given tile level and index.
// width is the number of hashes for a partial tile (1..255) or 0 (or 256) for
// a full one.
func TilePath(level, index uint64, width int) string {
	return "tile/" + strconv.FormatUint(level, 10) + "/" + tileIndexPath(index, width)
}

// EntriesPath is the path of the entry bundle with the given index.
func EntriesPath(index uint64, width int) string {
	return "tile/entries/" + tileIndexPath(index, width)
}

// tileIndexPath encodes N in 3-digit groups, every group but the last
// prefixed with "x": 1234067 → x001/x234/067.
func tileIndexPath(n uint64, width int) string {
	var groups []string
	for {
		groups = append(groups, fmt.Sprintf("%03d", n%1000))
		n /= 1000
		if n == 0 {
			break
		}
	}
	var b strings.Builder
	for i := len(groups) - 1; i >= 0; i-- {
		if i > 0 {
			b.WriteByte('x')
		}
		b.WriteString(groups[i])
		if i > 0 {
			b.WriteByte('/')
		}
	}
	if width > 0 && width < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(width))
	}
	return b.String()
}

// ParseTilePath is the inverse of TilePath and EntriesPath: it returns the
// tile level (-1 for an entry bundle), index and partial width (0 for full).
// It is strict, so a static server fronted by it can reject anything else.
func ParseTilePath(p string) (level int, index uint64, width int, err error) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("tile path %q: does not start with tile/", p)
	}
	lvl, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("tile path %q: no index", p)
	}
	if lvl == "entries" {
		level = -1
	} else {
		l, err := strconv.ParseUint(lvl, 10, 8)
		if err != nil || l > 63 || strconv.FormatUint(l, 10) != lvl {
			return 0, 0, 0, fmt.Errorf("tile path %q: bad level %q", p, lvl)
		}
		level = int(l)
	}
	if idx, w, ok := strings.Cut(rest, ".p/"); ok {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 || n >= TileWidth || strconv.Itoa(n) != w {
			return 0, 0, 0, fmt.Errorf("tile path %q: bad partial width %q", p, w)
		}
		width, rest = n, idx
	}
	parts := strings.Split(rest, "/")
	for i, g := range parts {
		last := i == len(parts)-1
		if !last {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok {
				return 0, 0, 0, fmt.Errorf("tile path %q: group %q lacks its x prefix", p, parts[i])
			}
		}
		if len(g) != 3 || g[0] < '0' || g[0] > '9' || g[1] < '0' || g[1] > '9' || g[2] < '0' || g[2] > '9' {
			return 0, 0, 0, fmt.Errorf("tile path %q: bad index group %q", p, parts[i])
		}
		d, _ := strconv.Atoi(g)
		if index > (1<<64-1-uint64(d))/1000 {
			return 0, 0, 0, fmt.Errorf("tile path %q: index overflows", p)
		}
		index = index*1000 + uint64(d)
	}
	if tileIndexPath(index, width) != strings.TrimPrefix(strings.TrimPrefix(p, "tile/"+lvl+"/"), "") {
		return 0, 0, 0, fmt.Errorf("tile path %q: not in canonical form", p)
	}
	return level, index, width, nil
}

// partialWidth is the width of the rightmost tile at the given tile level
// for a tree of the given size: floor(size / 256^level) mod 256.
func partialWidth(level uint64, size uint64) int {
	return int((size >> (TileHeight * level)) % TileWidth)
}
