// Package registry holds a guest state's registers as versioned JSON records
// on top of the ledger: every change is a new version (a deletion is a
// tombstone), sealed before it leaves the process, with attachments in the
// blob store and the record's ledger entry as the durable acknowledgement.
//
// The write path is: validate → seal → attachments to the store → ledger
// entry (sealed body inline, attachments by reference) → durable.
// The plaintext index (which id is where, which versions exist) lives only
// in memory at a site that holds the keys, and is rebuilt from the ledger
// on Open.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// Errors.
var (
	ErrNotFound = errors.New("not found")
	// ErrFenced: the site is fenced or handing over, and writes nothing
	// more of its own (Registries.Fence).
	ErrFenced          = errors.New("this site is fenced: it writes nothing more in its epoch")
	ErrUnknownRegistry = errors.New("unknown registry")
	// ErrNotReplicated: the write is durable at this site but the quorum
	// of sites the charter asks for did not confirm it in time, so it is
	// not acknowledged. It is not lost: replication continues.
	ErrNotReplicated = errors.New("not yet held by the quorum of sites")
)

// ValidationError names what is wrong with a record.
type ValidationError struct {
	Registry, ID, Field string
	Line                int // line of an import file, if any
	Err                 error
}

func (e *ValidationError) Error() string {
	s := ""
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: ", e.Line)
	}
	s += "registry " + e.Registry
	if e.ID != "" {
		s += " record " + e.ID
	}
	if e.Field != "" {
		s += " field " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Options configure a Registries.
type Options struct {
	Charter *charter.Charter
	Site    string // the site this node is; only registries it may hold are served
	Log     *ledger.Log
	Keys    *seal.Keyring
	// Blobs is the guest's blob backend. Each registry keeps its own store
	// under BlobPrefix(name), so that a site the charter does not give a
	// registry never receives a byte of its attachments. Nil: attachments
	// are refused.
	Blobs store.Backend
	// BlobOptions tune the stores; Chunking is derived from the keys.
	BlobOptions store.Options
	// Replicated, if set, is called after a write to a registry whose
	// charter sync mode is quorum, with the ledger index of the write; the
	// write is acknowledged only when it returns nil (replica.Replicator
	// waits there for the sites' receipts).
	Replicated func(ctx context.Context, registry string, index uint64) error
	// Epoch is the epoch this site writes in (continuity's current epoch
	// when this site is its writer). Default: the ledger's, at least 1.
	Epoch func() uint64
	// Outer, if set, is this site's outer key: its blobs are sealed inside
	// it (docs/threat-model.md § Site outer layer). An embassy's copy
	// carries it; the home's does not.
	Outer *seal.SiteKey
	Now   func() time.Time
}

// epoch is the epoch new entries are written in.
func (r *Registries) epoch() uint64 {
	if r.opts.Epoch != nil {
		return r.opts.Epoch()
	}
	return max(r.opts.Log.Epoch(), 1)
}

// BlobPrefix is where a registry's blobs live in a guest's blob backend,
// at the writer and at every site that holds the registry.
func BlobPrefix(registry string) string { return "registries/" + registry + "/" }

// Registries serves every registry of one guest that the site may hold.
type Registries struct {
	opts   Options
	f      ledger.Fetcher
	prover *ledger.Prover
	regs   map[string]*reg
	bulk   sync.RWMutex // Put/Delete share it; Import takes it alone
	locks  [256]sync.Mutex
	// fenced refuses every write (Fence): read under bulk, so a write
	// that waited behind an Exclusive that fenced sees it.
	fenced atomic.Bool

	// recent holds entries this process appended that the published tree
	// does not cover yet, so a record can be read back at once instead of
	// after the next checkpoint. They need no proof: this process wrote them.
	recentMu  sync.Mutex
	recent    map[uint64][]byte
	recentLow uint64 // no index below it is in recent

	// proven holds entries a read has already proven against a checkpoint
	// this site's log published (see entry for why that stays true).
	proven provenCache
}

// reg is the in-memory index of one registry.
type reg struct {
	def   charter.Registry
	keys  *seal.RegistryKeys
	blobs *store.Store // nil when the site has no blob backend
	// chunking is the registry's chunking derived from its keys (nil if
	// the caller passed one in BlobOptions): key material, wiped by Close.
	chunking *store.Chunking
	num      uint16 // the registry's number, in the order of the charter
	// mu[i] guards shards[i]: writers of records in different shards do
	// not wait for each other (one lock for the whole index serialised
	// 64 concurrent writers; issue 16). The rebuild fills the shards
	// before the registry is shared, without them.
	mu [shardCount]shardLock
	// shards hold the index, cut by blind id (index.go).
	shards [shardCount]shard
}

// shardLock is a shard's lock, alone on its cache line so that writers of
// neighbouring shards do not contend on the line.
type shardLock struct {
	sync.RWMutex
	_ [64 - 24]byte
}

// VersionInfo is one version of a record as the index knows it.
type VersionInfo struct {
	Version uint64    `json:"version"`
	Index   uint64    `json:"ledger_index"`
	Time    time.Time `json:"time"`
	Epoch   uint64    `json:"epoch"`
	Deleted bool      `json:"deleted,omitempty"`
}

// Attachment is a file attached to a record version.
type Attachment struct {
	Name string    `json:"name"`
	Size int64     `json:"size"`
	Ref  store.Ref `json:"-"`
}

// Record is one version of a record, opened.
type Record struct {
	Registry    string          `json:"registry"`
	ID          string          `json:"id"`
	Data        json.RawMessage `json:"record,omitempty"`
	Attachments []Attachment    `json:"attachments,omitempty"`
	VersionInfo
}

// body is the plaintext that is sealed into a record entry.
type body struct {
	ID          string          `json:"id"`
	Data        json.RawMessage `json:"data,omitempty"`
	Attachments []bodyAttach    `json:"attachments,omitempty"`
}

// bodyAttach is one attachment as the sealed body lists it: its name and
// its store reference (exact size, chunk ids in order), which the ledger
// entry does not carry in clear.
type bodyAttach struct {
	Name string `json:"name"`
	Ref  []byte `json:"ref"` // store.Ref.MarshalBinary, base64 in the JSON
}

// marshal encodes the body as json.Marshal would, without re-validating
// and compacting Data, which validate has already walked: at bulk-import
// rates that second pass cost more than sealing.
func (b *body) marshal() ([]byte, error) {
	id, err := json.Marshal(b.ID)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(id)+len(b.Data)+32)
	out = append(append(append(out, `{"id":`...), id...), ',')
	if len(b.Data) > 0 {
		out = append(append(append(out, `"data":`...), b.Data...), ',')
	}
	if len(b.Attachments) > 0 {
		atts, err := json.Marshal(b.Attachments)
		if err != nil {
			return nil, err
		}
		out = append(append(append(out, `"attachments":`...), atts...), ',')
	}
	out[len(out)-1] = '}'
	return out, nil
}

// Open builds the index of every registry the site may hold by reading the
// ledger's record and key-event entries.
func Open(ctx context.Context, opts Options) (*Registries, error) {
	if opts.Charter == nil || opts.Log == nil || opts.Keys == nil {
		return nil, errors.New("registry: charter, ledger and keys are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := ledger.DirFetcher(opts.Log.Dir())
	r := &Registries{opts: opts, f: f, prover: ledger.NewProver(f, 0), regs: map[string]*reg{}, recent: map[uint64][]byte{}}
	for _, d := range opts.Charter.Registries {
		if !allowed(d, opts.Site) {
			continue
		}
		g := &reg{def: d, keys: opts.Keys.Registry(d.Name), num: uint16(len(r.regs))}
		for i := range g.shards {
			g.shards[i] = newShard()
		}
		r.regs[d.Name] = g
	}
	if err := r.openBlobs(ctx); err != nil {
		r.Close()
		return nil, err
	}
	_, cp := opts.Log.Checkpoint()
	if err := r.rebuild(ctx, opts.Log.Dir(), cp.Size); err != nil {
		r.Close()
		return nil, fmt.Errorf("registry: rebuild index: %w", err)
	}
	return r, nil
}

func (r *Registries) openBlobs(ctx context.Context) error {
	if r.opts.Blobs == nil {
		return nil
	}
	for name, g := range r.regs {
		so := r.opts.BlobOptions
		if so.Chunking == nil {
			// Each registry its own chunking (seal.RegistryKeys.ChunkerSeed).
			seed, err := g.keys.ChunkerSeed()
			if err != nil {
				return fmt.Errorf("registry %s: blob chunking: %w", name, err)
			}
			so.Chunking, err = store.ChunkingFromSeed(seed)
			clear(seed)
			if err != nil {
				return fmt.Errorf("registry %s: blob chunking: %w", name, err)
			}
			g.chunking = so.Chunking
		}
		st, err := store.Open(ctx, store.Prefixed(r.opts.Blobs, BlobPrefix(name)), so)
		if err != nil {
			return fmt.Errorf("registry %s: blob store: %w", name, err)
		}
		g.blobs = st
	}
	return nil
}

// Blobs returns a registry's blob store (nil if the site has none).
func (r *Registries) Blobs(registry string) (*store.Store, error) {
	g, err := r.reg(registry)
	if err != nil {
		return nil, err
	}
	if g.blobs == nil {
		return nil, errors.New("registry: this site has no blob store")
	}
	return g.blobs, nil
}

// Close makes every registry's blobs durable and releases the stores. The
// ledger is the caller's.
func (r *Registries) Close() error {
	var errs []error
	for name, g := range r.regs {
		if g.blobs == nil {
			continue
		}
		if err := g.blobs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("registry %s: close blob store: %w", name, err))
		}
		g.blobs = nil
		g.chunking.Wipe()
	}
	return errors.Join(errs...)
}

// replicated waits, for a quorum-mode registry, until enough sites hold
// the write at index.
func (r *Registries) replicated(ctx context.Context, g *reg, index uint64) error {
	if r.opts.Replicated == nil || g.def.Sync != charter.SyncQuorum {
		return nil
	}
	if err := r.opts.Replicated(ctx, g.def.Name, index); err != nil {
		return fmt.Errorf("registry %s: entry %d is durable here but %w: %w", g.def.Name, index, ErrNotReplicated, err)
	}
	return nil
}

func allowed(d charter.Registry, site string) bool {
	for _, s := range d.Sites {
		if s == site {
			return true
		}
	}
	return false
}

// index adds a version of a record to the index.
func (g *reg) index(e *RecordEntry, v VersionInfo) {
	var buf [4]key
	vals := buf[:0]
	for i := range e.Index {
		vals = append(vals, keyOf(&e.Index[i]))
	}
	k := keyOf(&e.BlindID)
	i := shardOf(&k)
	g.mu[i].Lock()
	defer g.mu[i].Unlock()
	g.shards[i].index(&k, versionOf(v), vals)
}

// latest returns the latest version of a record, if the index holds it.
func (g *reg) latest(blind *[32]byte) (version, bool) {
	k := keyOf(blind)
	i := shardOf(&k)
	g.mu[i].RLock()
	defer g.mu[i].RUnlock()
	if st := g.shards[i].lookup(&k); st != nil {
		return st.latest, true
	}
	return version{}, false
}

func (r *Registries) reg(name string) (*reg, error) {
	g, ok := r.regs[name]
	if !ok {
		if _, inCharter := r.opts.Charter.Registry(name); inCharter {
			return nil, fmt.Errorf("%w: %s is not held at site %s", ErrUnknownRegistry, name, r.opts.Site)
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownRegistry, name)
	}
	return g, nil
}

// Names lists the registries this site serves.
func (r *Registries) Names() []string {
	var out []string
	for n := range r.regs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Count returns how many records (including deleted ones) a registry holds.
func (r *Registries) Count(registry string) (int, error) {
	g, err := r.reg(registry)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range g.shards {
		g.mu[i].RLock()
		n += len(g.shards[i].recs)
		g.mu[i].RUnlock()
	}
	return n, nil
}

// Put writes a new version of a record and returns it once it is durable.
func (r *Registries) Put(ctx context.Context, registry, id string, data json.RawMessage, atts []Attachment) (*Record, error) {
	return r.write(ctx, registry, id, KindPut, data, atts)
}

// Delete writes a tombstone: the record's history stays readable.
func (r *Registries) Delete(ctx context.Context, registry, id string) (*Record, error) {
	return r.write(ctx, registry, id, KindTombstone, nil, nil)
}

func (r *Registries) write(ctx context.Context, registry, id string, kind Kind, data json.RawMessage, atts []Attachment) (*Record, error) {
	recs, err := r.Apply(ctx, []Write{{Registry: registry, ID: id, Delete: kind == KindTombstone, Data: data, Attachments: atts}})
	if err != nil {
		return nil, err
	}
	return recs[0], nil
}

// prepared is a validated, sealed record version ready for the ledger.
type prepared struct {
	entry   *RecordEntry
	payload []byte
	epoch   uint64 // sealed into the additional data: the entry must carry it
}

// prepare validates and seals one record version.
func (g *reg) prepare(guest, id string, version, epoch uint64, kind Kind, data json.RawMessage, atts []Attachment) (*prepared, error) {
	e := &RecordEntry{Kind: kind, Registry: g.def.Name, BlindID: g.keys.BlindID(id), Version: version}
	b := body{ID: id}
	if kind == KindPut {
		vals, err := validate(g.def, id, data)
		if err != nil {
			return nil, err
		}
		for _, f := range g.def.Index {
			e.Index = append(e.Index, g.keys.BlindIndex(f, vals[f]))
		}
		b.Data = data
		refs := make([]store.Ref, 0, len(atts))
		for _, a := range atts {
			if a.Size != a.Ref.Size {
				return nil, fmt.Errorf("%s record %s attachment %s: size %d, its chunks hold %d", g.def.Name, id, a.Name, a.Size, a.Ref.Size)
			}
			ref, err := a.Ref.MarshalBinary()
			if err != nil {
				return nil, fmt.Errorf("%s record %s attachment %s: %w", g.def.Name, id, a.Name, err)
			}
			b.Attachments = append(b.Attachments, bodyAttach{Name: a.Name, Ref: ref})
			refs = append(refs, a.Ref)
		}
		e.Chunks = ChunkSet(refs)
	}
	plain, err := b.marshal()
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	ad := e.AD(guest, epoch)
	e.Commitment = g.keys.CommitRecord(ad, plain)
	if e.Sealed, err = g.keys.Seal(ad, plain); err != nil {
		return nil, fmt.Errorf("%s record %s: seal: %w", g.def.Name, id, err)
	}
	payload, err := e.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if len(payload) > ledger.MaxPayloadSize {
		return nil, &ValidationError{Registry: g.def.Name, ID: id, Err: fmt.Errorf("sealed record of %d bytes exceeds the %d a ledger entry holds; move large content to attachments", len(payload), ledger.MaxPayloadSize)}
	}
	return &prepared{entry: e, payload: payload, epoch: epoch}, nil
}

func checkID(registry, id string) error {
	if id == "" || len(id) > 256 {
		return &ValidationError{Registry: registry, ID: id, Field: "id", Err: errors.New("must be 1 to 256 bytes")}
	}
	return nil
}

// validate checks that data is a JSON object carrying every index field
// as a non-empty string or a number, and returns their canonical values.
func validate(def charter.Registry, id string, data json.RawMessage) (map[string]string, error) {
	raws, ok := topLevelFields(data, def.Index)
	if !ok {
		return nil, &ValidationError{Registry: def.Name, ID: id, Err: errors.New("record must be a JSON object")}
	}
	if e := checkIJSON(data); e != nil {
		return nil, &ValidationError{Registry: def.Name, ID: id, Field: e.field, Err: e.err}
	}
	vals := make(map[string]string, len(def.Index))
	for i, f := range def.Index {
		raw := raws[i]
		if raw == nil {
			return nil, &ValidationError{Registry: def.Name, ID: id, Field: f, Err: errors.New("index field missing")}
		}
		var s string
		switch {
		case raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0:
			s = string(raw[1 : len(raw)-1])
		case raw[0] == '"':
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, &ValidationError{Registry: def.Name, ID: id, Field: f, Err: err}
			}
		case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
			s = string(raw) // json.Valid has checked it is a number
		default:
			return nil, &ValidationError{Registry: def.Name, ID: id, Field: f, Err: errors.New("index field must be a string or a number")}
		}
		if s == "" {
			return nil, &ValidationError{Registry: def.Name, ID: id, Field: f, Err: errors.New("index field is empty")}
		}
		vals[f] = s
	}
	return vals, nil
}

// Fields returns the raw values of the named top-level members of a JSON
// object, in the order of names (nil where absent), or false if data is
// not a JSON object. One pass, no map: for readers of many records (a
// restore into a database).
func Fields(data []byte, names []string) ([][]byte, bool) { return topLevelFields(data, names) }

// topLevelFields returns the raw values of the named top-level fields of a
// JSON object (nil where a field is absent; the last one where a field
// repeats, as encoding/json does), or false if data is not a JSON object.
// It walks the object once without building it: validation runs for every
// imported record, and decoding each into a map cost more than sealing it.
func topLevelFields(data []byte, names []string) ([][]byte, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	return validFields(data, names)
}

// FieldsOfValid is Fields for data already known to be valid JSON — the
// data of a record this package opened, checked as part of its sealed
// body — which it does not check again.
func FieldsOfValid(data []byte, names []string) ([][]byte, bool) { return validFields(data, names) }

// FieldsOfValidInto is FieldsOfValid into out (len(names) long, which
// it clears): no allocation per record.
func FieldsOfValidInto(out [][]byte, data []byte, names []string) bool {
	clear(out)
	return fieldsInto(out, data, names)
}

// validFields is topLevelFields after the check: data must be valid JSON.
func validFields(data []byte, names []string) ([][]byte, bool) {
	out := make([][]byte, len(names))
	if !fieldsInto(out, data, names) {
		return nil, false
	}
	return out, true
}

// fieldsInto is validFields into out, zero and len(names) long.
func fieldsInto(out [][]byte, data []byte, names []string) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] != '}' {
		kEnd := skipValue(data, i) // the key is a string
		key := data[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			json.Unmarshal(data[i:kEnd], &k)
			key = []byte(k)
		}
		i = skipSpace(data, kEnd)
		i = skipSpace(data, i+1) // past ':'
		vEnd := skipValue(data, i)
		for n, name := range names {
			if string(key) == name {
				out[n] = data[i:vEnd]
			}
		}
		i = skipSpace(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at i in valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return i
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			case '"':
				i = skipValue(b, i) - 1
			}
		}
		return i
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// AsOf selects a version: the latest (zero value), the latest at or below a
// ledger index, or the latest written at or before a time.
type AsOf struct {
	Index *uint64
	Time  *time.Time
}

// Get opens a record version.
func (r *Registries) Get(ctx context.Context, registry, id string, at AsOf) (*Record, error) {
	g, err := r.reg(registry)
	if err != nil {
		return nil, err
	}
	blind := g.keys.BlindID(id)
	var v *VersionInfo
	k := keyOf(&blind)
	i := shardOf(&k)
	g.mu[i].RLock()
	s := &g.shards[i]
	if st := s.lookup(&k); st != nil {
		s.versions(st, func(c *version) bool {
			if at.covers(c) {
				info := c.info()
				v = &info
				return false
			}
			return true
		})
	}
	g.mu[i].RUnlock()
	if v == nil {
		return nil, fmt.Errorf("%s record %s: %w", registry, id, ErrNotFound)
	}
	return r.open(ctx, g, id, *v)
}

// open reads a version's ledger entry and unseals it. id, when not empty,
// must be the id sealed in the body.
func (r *Registries) open(ctx context.Context, g *reg, id string, v VersionInfo) (*Record, error) {
	what := fmt.Sprintf("%s ledger entry %d", g.def.Name, v.Index)
	if id != "" {
		what = fmt.Sprintf("%s record %s version %d (ledger entry %d)", g.def.Name, id, v.Version, v.Index)
	}
	raw, err := r.entry(ctx, v.Index, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	re, err := UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if re.Registry != g.def.Name || re.Version != v.Version {
		return nil, fmt.Errorf("%s: holds %s version %d, not the version indexed", what, re.Registry, re.Version)
	}
	plain, err := g.keys.Open(re.AD(r.opts.Charter.Guest.ID, e.Epoch), re.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer clear(plain)
	var b body
	if err := json.Unmarshal(plain, &b); err != nil || (id != "" && b.ID != id) {
		return nil, fmt.Errorf("%s: sealed body does not match the record", what)
	}
	rec := &Record{Registry: g.def.Name, ID: b.ID, Data: b.Data, VersionInfo: v}
	if rec.Attachments, err = b.attachments(re); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return rec, nil
}

// remember keeps an entry this process appended until the published tree
// covers it, and drops those it now covers.
func (r *Registries) remember(idx uint64, e ledger.Entry) {
	raw, err := e.MarshalBinary()
	if err != nil {
		return // a read will wait for the checkpoint instead
	}
	_, cp := r.opts.Log.Checkpoint()
	r.recentMu.Lock()
	defer r.recentMu.Unlock()
	if idx >= cp.Size {
		if len(r.recent) == 0 || idx < r.recentLow {
			r.recentLow = idx
		}
		r.recent[idx] = raw
	}
	// Drop the entries the published tree now covers by sweeping the
	// indexes from the lowest kept one up to it: each ledger index is
	// swept once, however far publishing lags behind the appends. (A
	// sweep over the whole map at each append, once it held a few
	// thousand, cost a million-row snapshot 3 s of CPU.)
	if len(r.recent) == 0 {
		return
	}
	for ; r.recentLow < cp.Size; r.recentLow++ {
		delete(r.recent, r.recentLow)
	}
}

// entry returns the encoded ledger entry at idx: from what this process
// appended if the published tree does not cover it yet, else from the
// ledger's tiles, checked against the signed tree by an inclusion proof.
// The proof catches changes the seal does not cover (the entry's time) and
// entries moved between places. keep: remember the proven entry for later
// reads (record reads; an import's one-off comparisons do not).
func (r *Registries) entry(ctx context.Context, idx uint64, keep bool) ([]byte, error) {
	_, cp := r.opts.Log.Checkpoint()
	if idx >= cp.Size {
		r.recentMu.Lock()
		raw, ok := r.recent[idx]
		r.recentMu.Unlock()
		if ok {
			return raw, nil
		}
		var err error
		if _, cp, err = r.opts.Log.WaitPublished(ctx, idx+1); err != nil {
			return nil, err
		}
	}
	if raw, ok := r.proven.get(idx); ok {
		return raw, nil
	}
	raw, err := r.prover.ReadProven(ctx, cp, idx)
	if err != nil {
		return nil, err
	}
	// Keeping the proven bytes is sound: cp is a tree r.opts.Log itself
	// published (signed by this site, or by the writer and checked
	// consistent before a mirror takes it), the log only grows, and every
	// later tree it publishes extends cp, so leaf idx stays these bytes for
	// as long as this Registries lives. The copy is in process memory, which
	// the host's storage cannot alter; a later change to the tiles on disk
	// does not change what the tree holds at idx. What the cache saves is
	// the re-read and re-proof only: open still unseals the bytes (the AEAD
	// checks them against the registry key) and checks the sealed id and
	// version on every read.
	if keep {
		r.proven.put(idx, raw)
	}
	return raw, nil
}

// provenCacheBytes bounds the entries kept proven in memory. Records are
// sealed (a host learns nothing more from memory than from the tiles).
const provenCacheBytes = 32 << 20

// provenCache keeps encoded ledger entries proven against this site's
// published tree, by ledger index, up to provenCacheBytes.
type provenCache struct {
	mu    sync.RWMutex
	m     map[uint64][]byte
	bytes int
}

func (c *provenCache) get(idx uint64) ([]byte, bool) {
	c.mu.RLock()
	raw, ok := c.m[idx]
	c.mu.RUnlock()
	return raw, ok
}

// put keeps a copy of raw, evicting arbitrary entries when over the
// budget: a miss costs one proven read. The copy matters: a proven read
// returns a slice of the whole entry bundle, which would stay in memory
// with it and make the budget a lie.
func (c *provenCache) put(idx uint64, raw []byte) {
	if len(raw) > provenCacheBytes/64 {
		return
	}
	raw = bytes.Clone(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[uint64][]byte{}
	}
	if _, ok := c.m[idx]; ok {
		return
	}
	for i, old := range c.m {
		if c.bytes+len(raw) <= provenCacheBytes {
			break
		}
		delete(c.m, i)
		c.bytes -= len(old)
	}
	c.m[idx] = raw
	c.bytes += len(raw)
}

// History lists every version of a record.
func (r *Registries) History(ctx context.Context, registry, id string) ([]VersionInfo, error) {
	g, err := r.reg(registry)
	if err != nil {
		return nil, err
	}
	blind := g.keys.BlindID(id)
	k := keyOf(&blind)
	i := shardOf(&k)
	g.mu[i].RLock()
	defer g.mu[i].RUnlock()
	s := &g.shards[i]
	st := s.lookup(&k)
	if st == nil {
		return nil, fmt.Errorf("%s record %s: %w", registry, id, ErrNotFound)
	}
	return s.history(st), nil
}

// Find returns the latest versions of the records whose indexed field has
// the given value. Deleted records are not returned.
func (r *Registries) Find(ctx context.Context, registry, field, value string) ([]*Record, error) {
	g, err := r.reg(registry)
	if err != nil {
		return nil, err
	}
	indexed := false
	for _, f := range g.def.Index {
		indexed = indexed || f == field
	}
	if !indexed {
		return nil, &ValidationError{Registry: registry, Field: field, Err: errors.New("not an index field of this registry")}
	}
	blinded := g.keys.BlindIndex(field, value)
	k := keyOf(&blinded)
	var hits []VersionInfo
	for i := range g.shards {
		g.mu[i].RLock()
		hits = g.shards[i].find(&k, hits)
		g.mu[i].RUnlock()
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].Index < hits[j].Index })
	var out []*Record
	for _, v := range hits {
		rec, err := r.open(ctx, g, "", v)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// PutBlob stores an attachment, sealed with the registry's blob keys.
func (r *Registries) PutBlob(ctx context.Context, registry string, rd io.Reader) (store.Ref, error) {
	g, err := r.reg(registry)
	if err != nil {
		return store.Ref{}, err
	}
	if g.blobs == nil {
		return store.Ref{}, errors.New("registry: this site has no blob store")
	}
	return g.blobs.Put(ctx, r.sealer(g), rd)
}

// GetBlob writes an attachment's plaintext to w.
func (r *Registries) GetBlob(ctx context.Context, registry string, ref store.Ref, w io.Writer) error {
	g, err := r.reg(registry)
	if err != nil {
		return err
	}
	if g.blobs == nil {
		return errors.New("registry: this site has no blob store")
	}
	return g.blobs.Get(ctx, r.sealer(g), ref, w)
}

// Rotate moves a registry's data key to the next generation: new writes
// use it, older versions stay readable with the generation they name. The
// rotation is a ledger entry (seal.KeyEvent), so every site learns it; it
// takes effect only once that entry is durable.
func (r *Registries) Rotate(ctx context.Context, registry string) (uint32, error) {
	if _, err := r.reg(registry); err != nil {
		return 0, err
	}
	r.bulk.Lock()
	defer r.bulk.Unlock()
	ev := r.opts.Keys.RotationEvent(registry, [32]byte{})
	p, err := ev.MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("rotate %s: %w", registry, err)
	}
	if _, err := r.opts.Log.Append(ctx, ledger.Entry{Type: ledger.TypeKeyEvent, Epoch: r.epoch(), Time: r.opts.Now(), Payload: p}); err != nil {
		return 0, fmt.Errorf("rotate %s: %w", registry, err)
	}
	if err := r.opts.Keys.ApplyKeyEvent(ev); err != nil {
		return 0, fmt.Errorf("rotate %s: %w", registry, err)
	}
	return ev.Generation, nil
}
