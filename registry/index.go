package registry

import (
	"math/bits"
	"time"
)

// The in-memory index of a registry. A site rebuilds it from the ledger
// before it serves its first read after activation, so its shape is set by
// how fast that goes (rebuild.go). The registry is cut by blind id into
// shards that the rebuild fills on several cores at once, each small
// enough to stay in cache while it is filled; and every shard holds only
// pointer-free maps and arrays, as small as they can be, because at a
// million records the index's size is its cost: memory a process has not
// touched before costs far more than any work done in it (on the 2-core
// VM of docs/benchmarks.md, touching a fresh page takes about 18 µs), and
// the garbage collector never has to scan what holds no pointers.

// key is the part of a blind id or blinded index value the index keeps:
// the first 128 bits of the keyed MAC. Two different ids or values share
// it with probability 2^-128 per pair, and finding two that do would take
// about 2^64 uses of a registry's secret MAC key; a host that alters the
// stored ledger gains nothing by it that copying a whole blind id would
// not already give it, and reads check every entry against the signed
// tree. Half the bytes is a third less index.
type key [16]byte

func keyOf(b *[32]byte) key { return key(b[:16]) }

// shardCount is the number of shards of a registry's index. A record's
// versions all live in the shard of its blind id, so each shard can be
// rebuilt on its own, in ledger order. Find looks in every shard.
const shardCount = 256

func shardOf(k *key) int { return int(k[0]) % shardCount }

// none marks the absence of a record or version number.
const none = ^uint32(0)

// listBit marks a posting held in shard.lists.
const listBit = 1 << 31

// shard is the index of the records of one registry whose blind ids fall in
// it. Records are numbered in the order the shard first saw them.
type shard struct {
	recs   map[key]uint32  // blind id → record number
	states arena[recState] // by record number
	// older holds every version that is not a record's latest, each
	// linked to the next older one of its record.
	older arena[version]
	// vals holds the blinded index values of each record's latest version.
	vals arena[valRef]
	// byValue maps a blinded (field, value) to the records of this shard
	// whose latest version carries it.
	byValue map[key]posting
	lists   [][]uint32 // postings of more than two records
	free    []uint32   // unused entries of lists
}

// version is one version of a record as the index keeps it: a VersionInfo
// without pointers (time.Time holds one).
type version struct {
	num, index, epoch uint64
	ms                int64  // the entry's time, Unix milliseconds
	prev              uint32 // the record's next older version, in shard.older, or none
	deleted           bool
}

func (v *version) info() VersionInfo {
	return VersionInfo{Version: v.num, Index: v.index, Time: time.UnixMilli(v.ms).UTC(), Epoch: v.epoch, Deleted: v.deleted}
}

func versionOf(v VersionInfo) version {
	return version{num: v.Version, index: v.Index, epoch: v.Epoch, ms: v.Time.UnixMilli(), prev: none, deleted: v.Deleted}
}

type recState struct {
	latest version // its prev links the older versions, newest first
	vals   uint32  // the latest version's index values: nvals of shard.vals from vals
	nvals  uint8
	capv   uint8 // how many values the record's place in vals can hold
}

// valRef is one blinded index value of a record's latest version, and the
// record's position in the value's posting list (when it has a list), so
// that a record leaves a posting of thousands in constant time.
type valRef struct {
	key key
	pos uint32
}

// posting is the set of records that carry one index value: most values
// belong to one record (a national id) or two, and are held in place;
// more (a common last name) in shard.lists.
//
//	{a, none}: one record, a
//	{a, b}:    two records
//	{listBit | k, 0}: the records in lists[k]
type posting struct{ a, b uint32 }

// arena is an array that grows without moving what it holds: by chunks,
// each twice the size of the one before. Growing a slice of a million
// records copies it again and again (a quarter of the rebuild's time when
// the index used slices), and the part of a chunk not yet used is never
// touched, so it costs no page faults.
type arena[T any] struct {
	chunks [][]T
	n      uint32
}

const arenaBaseBits = 6 // the first chunk holds 64 elements

// chunkOf returns the chunk that holds element i and i's place in it.
func chunkOf(i uint32) (int, uint32) {
	j := uint64(i) + 1<<arenaBaseBits
	k := bits.Len64(j) - 1 - arenaBaseBits
	return k, uint32(j - 1<<(arenaBaseBits+k))
}

func (a *arena[T]) at(i uint32) *T {
	k, off := chunkOf(i)
	return &a.chunks[k][off]
}

func (a *arena[T]) len() uint32 { return a.n }

// slice returns the n elements from i, which alloc reserved together.
func (a *arena[T]) slice(i uint32, n int) []T {
	k, off := chunkOf(i)
	return a.chunks[k][off : off+uint32(n) : off+uint32(n)]
}

// alloc reserves n consecutive elements, n at most 256, in one chunk, and
// returns the first.
func (a *arena[T]) alloc(n int) uint32 {
	i := a.n
	k, off := chunkOf(i)
	for size := uint32(1) << (arenaBaseBits + k); off+uint32(n) > size; size *= 2 {
		i += size - off // start the next chunk; the rest of this one stays unused
		k, off = k+1, 0
	}
	for len(a.chunks) <= k {
		a.chunks = append(a.chunks, make([]T, 1<<(arenaBaseBits+len(a.chunks))))
	}
	a.n = i + uint32(n)
	return i
}

// newShard returns an empty shard. Its maps are not sized ahead: filled a
// shard at a time they grow in cache, and sized from a sample of the
// ledger they came out larger, and no faster, than grown (a sample tells
// how many records a registry has, not how many distinct values).
func newShard() shard {
	return shard{recs: map[key]uint32{}, byValue: map[key]posting{}}
}

// index adds a version of the record with the given blind id and blinded
// index values. Versions may arrive in any order; the index follows the
// one with the highest version number (the last to arrive among equal
// ones).
func (s *shard) index(blind *key, v version, vals []key) {
	rec, ok := s.recs[*blind]
	if !ok {
		rec = s.states.alloc(1)
		s.recs[*blind] = rec
		v.prev = none
		*s.states.at(rec) = recState{latest: v}
		s.setVals(rec, vals)
		return
	}
	st := s.states.at(rec)
	if v.num < st.latest.num {
		s.insertOlder(st, v)
		return
	}
	o := s.older.alloc(1)
	*s.older.at(o) = st.latest
	v.prev = o
	st.latest = v
	for i := st.vals; i < st.vals+uint32(st.nvals); i++ {
		ref := s.vals.at(i)
		s.remove(&ref.key, rec, ref.pos)
	}
	st.nvals = 0
	s.setVals(rec, vals)
}

// insertOlder links a version older than the latest into the record's
// history, after the versions above it and any of equal number.
func (s *shard) insertOlder(st *recState, v version) {
	n := s.older.alloc(1)
	nv := s.older.at(n)
	*nv = v
	link := &st.latest.prev
	for *link != none && s.older.at(*link).num > v.num {
		link = &s.older.at(*link).prev
	}
	nv.prev = *link
	*link = n
}

// setVals records the latest version's index values and adds the record to
// their postings. A value that appears twice is kept once.
func (s *shard) setVals(rec uint32, vals []key) {
	n := len(vals)
	if n == 0 {
		return
	}
	st := s.states.at(rec)
	if n > int(st.capv) {
		st.vals, st.capv = s.vals.alloc(n), uint8(n)
	}
	k := st.vals
next:
	for _, v := range vals {
		for j := st.vals; j < k; j++ {
			if s.vals.at(j).key == v {
				continue next
			}
		}
		ref := s.vals.at(k)
		*ref = valRef{key: v}
		st.nvals++
		s.add(&ref.key, rec, ref)
		k++
	}
}

// add puts rec into the posting of k; at is rec's valRef for k.
func (s *shard) add(k *key, rec uint32, at *valRef) {
	p, ok := s.byValue[*k]
	switch {
	case !ok:
		s.byValue[*k] = posting{rec, none}
	case p.a&listBit != 0:
		l := p.a &^ listBit
		at.pos = uint32(len(s.lists[l]))
		s.lists[l] = append(s.lists[l], rec)
	case p.b == none:
		s.byValue[*k] = posting{p.a, rec}
	default:
		var l uint32
		if n := len(s.free); n > 0 {
			l, s.free = s.free[n-1], s.free[:n-1]
		} else {
			l = uint32(len(s.lists))
			s.lists = append(s.lists, nil)
		}
		s.lists[l] = append(s.lists[l][:0], p.a, p.b, rec)
		s.setPos(p.a, k, 0)
		s.setPos(p.b, k, 1)
		at.pos = 2
		s.byValue[*k] = posting{listBit | l, 0}
	}
}

// remove takes rec, at position pos if the posting is a list, out of the
// posting of k.
func (s *shard) remove(k *key, rec, pos uint32) {
	p, ok := s.byValue[*k]
	switch {
	case !ok:
	case p.a&listBit != 0:
		l := p.a &^ listBit
		list := s.lists[l]
		last := uint32(len(list) - 1)
		if pos != last {
			moved := list[last]
			list[pos] = moved
			s.setPos(moved, k, pos)
		}
		s.lists[l] = list[:last]
		if last == 0 {
			delete(s.byValue, *k)
			s.free = append(s.free, l)
		}
	case p.a == rec && p.b == none:
		delete(s.byValue, *k)
	case p.a == rec:
		s.byValue[*k] = posting{p.b, none}
	case p.b == rec:
		s.byValue[*k] = posting{p.a, none}
	}
}

// setPos records rec's position in the posting list of k.
func (s *shard) setPos(rec uint32, k *key, pos uint32) {
	st := s.states.at(rec)
	for i := st.vals; i < st.vals+uint32(st.nvals); i++ {
		if ref := s.vals.at(i); ref.key == *k {
			ref.pos = pos
			return
		}
	}
}

// lookup returns the record state of a blind id, or nil.
func (s *shard) lookup(blind *key) *recState {
	rec, ok := s.recs[*blind]
	if !ok {
		return nil
	}
	return s.states.at(rec)
}

// versions calls fn with a record's versions, newest first, until it
// returns false.
func (s *shard) versions(st *recState, fn func(*version) bool) {
	if !fn(&st.latest) {
		return
	}
	for i := st.latest.prev; i != none; i = s.older.at(i).prev {
		if !fn(s.older.at(i)) {
			return
		}
	}
}

// history returns a record's versions, oldest first.
func (s *shard) history(st *recState) []VersionInfo {
	var out []VersionInfo
	s.versions(st, func(v *version) bool { out = append(out, v.info()); return true })
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// find appends the latest versions of the records in the posting of k
// that are not deleted.
func (s *shard) find(k *key, hits []VersionInfo) []VersionInfo {
	p, ok := s.byValue[*k]
	if !ok {
		return hits
	}
	add := func(rec uint32) {
		if v := &s.states.at(rec).latest; !v.deleted {
			hits = append(hits, v.info())
		}
	}
	switch {
	case p.a&listBit != 0:
		for _, rec := range s.lists[p.a&^listBit] {
			add(rec)
		}
	case p.b == none:
		add(p.a)
	default:
		add(p.a)
		add(p.b)
	}
	return hits
}
