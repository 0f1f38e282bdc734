package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// An index object records where chunks live, so Open need not read every
// pack. Layout:
//
//	"CHIDX001" | npacks uint32 BE | npacks × (pack[32] | n uint32 BE | n × (id[32] | off uint32 BE | length uint32 BE))
//
// Its name is index/<hex SHA-256 of the object>, which makes corruption
// visible without a key. Index objects are a cache of the pack headers:
// one that fails its hash is ignored and the packs it covered are read
// again (Check reports it).
const (
	indexMagic    = "CHIDX001"
	indexEntryLen = 32 + 4 + 4
)

func indexName(h [32]byte) string { return "index/" + hex.EncodeToString(h[:]) }

// packEntries is the slice of the index that one pack contributes.
type packEntries struct {
	pack    PackID
	entries []packEntry
}

func encodeIndex(groups []packEntries) []byte {
	n := len(indexMagic) + 4
	for _, g := range groups {
		n += 36 + indexEntryLen*len(g.entries)
	}
	out := make([]byte, 0, n)
	out = append(out, indexMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(groups)))
	for _, g := range groups {
		out = append(out, g.pack[:]...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(g.entries)))
		for _, e := range g.entries {
			out = append(out, e.id[:]...)
			out = binary.BigEndian.AppendUint32(out, e.off)
			out = binary.BigEndian.AppendUint32(out, e.length)
		}
	}
	return out
}

// parseIndex is strict: exact lengths, no empty groups, no zero-length or
// overflowing entries, no trailing bytes.
func parseIndex(data []byte) ([]packEntries, error) {
	if len(data) < len(indexMagic)+4 || string(data[:len(indexMagic)]) != indexMagic {
		return nil, errors.New("index: bad magic or short object")
	}
	p := data[len(indexMagic):]
	npacks := binary.BigEndian.Uint32(p)
	p = p[4:]
	if uint64(npacks)*36 > uint64(len(p)) {
		return nil, fmt.Errorf("index: %d packs cannot fit in %d bytes", npacks, len(p))
	}
	groups := make([]packEntries, 0, npacks)
	for i := uint32(0); i < npacks; i++ {
		if len(p) < 36 {
			return nil, fmt.Errorf("index: group %d truncated", i)
		}
		g := packEntries{pack: PackID(p[:32])}
		n := binary.BigEndian.Uint32(p[32:])
		p = p[36:]
		if n == 0 || uint64(n)*indexEntryLen > uint64(len(p)) {
			return nil, fmt.Errorf("index: group %d declares %d entries in %d bytes", i, n, len(p))
		}
		g.entries = make([]packEntry, n)
		for j := range g.entries {
			e := &g.entries[j]
			copy(e.id[:], p[:32])
			e.off = binary.BigEndian.Uint32(p[32:])
			e.length = binary.BigEndian.Uint32(p[36:])
			if e.length == 0 || e.length > maxSealedLen || uint64(e.off)+uint64(e.length) > maxPackSize {
				return nil, fmt.Errorf("index: group %d entry %d: bad range %d+%d", i, j, e.off, e.length)
			}
			p = p[indexEntryLen:]
		}
		groups = append(groups, g)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("index: %d trailing bytes", len(p))
	}
	return groups, nil
}

func indexObject(groups []packEntries) (name string, data []byte) {
	data = encodeIndex(groups)
	return indexName(sha256.Sum256(data)), data
}

// packSize is the size of the pack object that g's entries describe: the
// entries tile the data region (parsePackHeader enforces it for packs, and
// every group, also in an index object, lists all of a pack's entries, not
// only the ones that won the dedup), then come header and trailer. Keeping
// it costs 8 bytes per pack instead of a Stat per pack when listing.
func packSize(entries []packEntry) int64 {
	var end int64
	for _, e := range entries {
		end = max(end, int64(e.off)+int64(e.length))
	}
	return end + int64(len(entries))*packEntryLen + packTrailerLen
}

// loc is a durable location; the pack is an index into index.packs so an
// entry costs 12 bytes beside its 32-byte key (about 50 bytes with the map's
// overhead: 10M chunks ≈ 500 MiB, see docs/store.md).
type loc struct {
	pack, off, length uint32
}

// pendingLoc is a chunk that is not yet in a durable pack: either still
// being sealed by some Put (pb == nil, wait on ready) or sitting in a pack
// that is being filled or uploaded.
type pendingLoc struct {
	pb     *pendingPack
	off    uint32
	length uint32
	ready  chan struct{}
}

// pendingPack is a packBuilder shared with readers until it is durable.
type pendingPack struct {
	mu sync.Mutex
	b  packBuilder
	// pid is set once the pack is finished (finish appends its header
	// and may run once): an upload that failed is retried with it.
	pid      PackID
	finished bool
}

// index maps chunk ids to locations. It is safe for concurrent use.
type index struct {
	mu      sync.RWMutex
	packs   []PackID
	sizes   []int64 // per pack, beside packs: for catch-up listings
	packNum map[PackID]uint32
	byID    map[ID]loc
	pending map[ID]*pendingLoc
	// unsaved are durable packs not yet described by an index object.
	unsaved []packEntries
}

func newIndex() *index {
	return &index{packNum: map[PackID]uint32{}, byID: map[ID]loc{}, pending: map[ID]*pendingLoc{}}
}

// addPack records a durable pack's entries. The first location of an id
// wins: a chunk stored twice (a crash between upload and index write, then
// a retry) is harmless.
func (x *index) addPack(g packEntries, unsaved bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addPackLocked(g)
	if unsaved {
		x.unsaved = append(x.unsaved, g)
	}
}

// adopt records a pack someone else uploaded, unless the index already
// knows it; the check and the insert share one lock so that concurrent
// adoptions of one pack put it in the next index object once.
func (x *index) adopt(g packEntries) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.packNum[g.pack]; ok {
		return false
	}
	x.addPackLocked(g)
	x.unsaved = append(x.unsaved, g)
	return true
}

func (x *index) addPackLocked(g packEntries) {
	n, ok := x.packNum[g.pack]
	if !ok {
		n = uint32(len(x.packs))
		x.packs = append(x.packs, g.pack)
		x.sizes = append(x.sizes, packSize(g.entries))
		x.packNum[g.pack] = n
	}
	for _, e := range g.entries {
		if _, dup := x.byID[e.id]; !dup {
			x.byID[e.id] = loc{pack: n, off: e.off, length: e.length}
		}
	}
}

type reserveResult int

const (
	reserveHave reserveResult = iota // already stored or being packed
	reserveMine                      // caller must seal and pack it
	reserveWait                      // another Put is sealing it: wait, then ask again
)

// reserve is the dedup decision. Exactly one concurrent caller gets
// reserveMine for a new id; the others wait until it is at least in a
// pending pack, so no Put returns a Ref naming a chunk that a Flush could
// miss.
func (x *index) reserve(id ID) (reserveResult, chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[id]; ok {
		return reserveHave, nil
	}
	if p, ok := x.pending[id]; ok {
		if p.pb == nil {
			return reserveWait, p.ready
		}
		return reserveHave, nil
	}
	x.pending[id] = &pendingLoc{ready: make(chan struct{})}
	return reserveMine, nil
}

// unreserve gives an id back after the reserving Put failed, waking waiters
// so one of them takes over.
func (x *index) unreserve(id ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.pending[id]; ok && p.pb == nil {
		delete(x.pending, id)
		close(p.ready)
	}
}

func (x *index) setPending(id ID, pb *pendingPack, e packEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.pending[id]
	p.pb, p.off, p.length = pb, e.off, e.length
	close(p.ready)
}

// commit moves a pack's chunks from pending to durable.
func (x *index) commit(g packEntries) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addPackLocked(g)
	for _, e := range g.entries {
		delete(x.pending, e.id)
	}
	x.unsaved = append(x.unsaved, g)
}

// lookup returns either a durable location or a pending one.
func (x *index) lookup(id ID) (pack PackID, l loc, pend *pendingLoc, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if l, ok := x.byID[id]; ok {
		return x.packs[l.pack], l, nil, true
	}
	if p, ok := x.pending[id]; ok && p.pb != nil {
		return PackID{}, loc{}, p, true
	}
	return PackID{}, loc{}, nil, false
}

// takeUnsaved hands the unsaved groups to a Flush; putBack returns them if
// writing the index object failed.
func (x *index) takeUnsaved() []packEntries {
	x.mu.Lock()
	defer x.mu.Unlock()
	u := x.unsaved
	x.unsaved = nil
	return u
}

func (x *index) putBack(u []packEntries) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.unsaved = append(u, x.unsaved...)
}

func (x *index) count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}
