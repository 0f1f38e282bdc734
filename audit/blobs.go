package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/store"
)

// maxBlobProblems caps the problems a scrub lists, so that a store damaged
// wholesale does not produce a million-line report.
const maxBlobProblems = 100

// BlobReport is what a blob scrub found.
type BlobReport struct {
	Objects int    // pack and index objects read
	Bytes   int64  // their total size
	Entries uint64 // ledger entries read for the attachments they reference
	Refs    int    // attachment references found in them
	Chunks  int    // distinct chunks those references name, each located
	Opened  int    // of those, chunks opened and re-hashed with the registry's blob keys
	// Problems are *BlobFinding, at most maxBlobProblems; Bad counts them all.
	Problems   []error
	Bad        int
	BadObjects int // of Bad, objects that do not hash to their name
	Elapsed    time.Duration
}

// OK reports whether the scrub found nothing wrong.
func (r *BlobReport) OK() bool { return r.Bad == 0 }

// BlobFinding is one problem a scrub found. It names as much of the
// damage as is known: the object (pack) and its registry always when a
// pack is at fault; for a chunk a ledger entry references, also the
// chunk, the record and the entry's ledger index.
type BlobFinding struct {
	Registry string // empty for an object outside any registry's prefix
	Pack     string // the backend object name, with the registry's prefix
	Chunk    string // hex chunk id, for a referenced chunk
	Record   string // the record as the ledger names it without a key (blind id, version, attachment)
	Index    uint64 // ledger index of the referencing entry
	HasIndex bool
	Problem  string
}

func (f *BlobFinding) Error() string {
	var b strings.Builder
	if f.HasIndex {
		fmt.Fprintf(&b, "ledger index %d, registry %s, record %s: chunk %s", f.Index, f.Registry, f.Record, f.Chunk)
		if f.Pack != "" {
			fmt.Fprintf(&b, " in pack %s", f.Pack)
		}
	} else {
		if f.Registry != "" {
			fmt.Fprintf(&b, "registry %s, ", f.Registry)
		}
		fmt.Fprintf(&b, "object %s", f.Pack)
	}
	b.WriteString(": ")
	b.WriteString(f.Problem)
	return b.String()
}

func (r *BlobReport) add(f *BlobFinding) {
	r.Bad++
	if len(r.Problems) < maxBlobProblems {
		r.Problems = append(r.Problems, f)
	}
}

// BlobRef is one attachment of a ledger entry: the chunks of the
// registry's blob store it is made of.
type BlobRef struct {
	Registry string
	Record   string // how the record is named without a key, e.g. its blind id and version
	Chunks   []store.ID
}

// RefsFunc returns the attachments entry e (at ledger index) references;
// none for entries that are not records with attachments. The registry
// package knows the record entry format; audit does not import it (the
// auditor must not pull in the daemon, TestNoDaemon), so the caller
// passes the decoder.
type RefsFunc func(index uint64, e ledger.Entry) ([]BlobRef, error)

// ScrubOptions say what Scrub checks and how fast.
type ScrubOptions struct {
	// Ledger and Size: the entries [0, Size) whose attachments must all be
	// present; with Refs. Zero Size: only the objects are checked.
	Ledger ledger.Fetcher
	Size   uint64
	Refs   RefsFunc
	// Prefix is where a registry's objects are in the backend
	// (registry.BlobPrefix); required with Refs.
	Prefix func(registry string) string
	// Sealer returns a registry's blob keys (seal.RegistryKeys.Blobs), or
	// nil where no key is held: every referenced chunk of a registry with
	// keys is then opened, which checks its MAC and its id.
	Sealer func(registry string) store.Sealer
	// Rate bounds the bytes read from the backend per second (0: no
	// bound), so that a scheduled scrub leaves the disk to the site.
	Rate int64
	// Progress, if set, is called after each object with the bytes read
	// so far and the total to read.
	Progress func(done, total uint64)
}

// Blobs checks, without any key, every object of an attachment store's
// backend (Scrub with no ledger).
func Blobs(ctx context.Context, be store.Backend) (*BlobReport, error) {
	return Scrub(ctx, be, ScrubOptions{})
}

// Scrub checks a site's blob store, be (every registry's objects under its
// prefix):
//
//   - every pack ("…/data/<hex>") and index object ("…/index/<hex>") must
//     hash to the name it is stored under (store.CheckObject, the check a
//     replica makes on arrival): no key is needed;
//   - with a ledger, every chunk that an entry's attachments reference
//     must be in a pack of its registry's store, and that pack present
//     and undamaged;
//   - where the registry's blob keys are held (Sealer), each of those
//     chunks must open and hash back to its id.
//
// It never writes to be. Findings name the object, the registry and, for
// a referenced chunk, the chunk, record and ledger index (BlobFinding). A
// site calls it on a schedule with a Rate; the error is only for a scrub
// that could not run (the store could not be listed, ctx ended), never
// for damage, which is in the report.
func Scrub(ctx context.Context, be store.Backend, o ScrubOptions) (*BlobReport, error) {
	start := time.Now()
	rep := &BlobReport{}
	type object struct {
		name string
		size int64
	}
	var objs []object
	var total uint64
	if err := be.List(ctx, "", func(name string, size int64) error {
		objs = append(objs, object{name, size})
		total += uint64(max(size, 0))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("scrub: list the store: %w", err)
	}
	p := pacer{rate: o.Rate, start: start}
	damaged := map[string]string{} // object name → what is wrong with it
	present := make(map[string]bool, len(objs))
	var done uint64
	for _, obj := range objs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := checkObjectStream(ctx, be, obj.name, &p)
		rep.Objects++
		rep.Bytes += n
		present[obj.name] = true
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			damaged[obj.name] = err.Error()
			rep.BadObjects++
			rep.add(&BlobFinding{Registry: registryOf(obj.name), Pack: obj.name, Problem: err.Error()})
		}
		done += uint64(max(obj.size, 0))
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	if o.Size > 0 && o.Refs != nil {
		if o.Prefix == nil || o.Ledger == nil {
			return nil, errors.New("scrub: checking references needs the ledger and the registries' prefixes")
		}
		rc := refChecker{be: be, o: o, rep: rep, p: &p, present: present, damaged: damaged,
			stores: map[string]*store.Store{}, seen: map[chunkKey]string{}}
		err := rc.run(ctx)
		rc.close()
		if err != nil {
			return nil, err
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// checkObjectStream hashes one object as it is read and compares the hash
// with the one its name spells (the last two components: "data/<hex>" or
// "index/<hex>", after the registry's prefix).
func checkObjectStream(ctx context.Context, be store.Backend, name string, p *pacer) (int64, error) {
	own := name
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		if j := strings.LastIndexByte(name[:i], '/'); j >= 0 {
			own = name[j+1:]
		}
	}
	dir, hexSum, _ := strings.Cut(own, "/")
	want, err := hex.DecodeString(hexSum)
	if (dir != "data" && dir != "index") || err != nil || len(want) != sha256.Size || hex.EncodeToString(want) != hexSum {
		return 0, errors.New("not a pack or index object name")
	}
	rc, err := be.Load(ctx, name, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, &pacedReader{r: rc, p: p, ctx: ctx})
	if err != nil {
		return n, fmt.Errorf("read at byte %d: %w", n, err)
	}
	if string(h.Sum(nil)) != string(want) {
		return n, fmt.Errorf("content (%d bytes) does not hash to its name: damaged", n)
	}
	return n, nil
}

// registryOf is the registry whose prefix ("registries/<name>/") holds the
// object, or "".
func registryOf(name string) string {
	rest, ok := strings.CutPrefix(name, "registries/")
	if !ok {
		return ""
	}
	r, _, _ := strings.Cut(rest, "/")
	return r
}

type chunkKey struct {
	registry string
	id       store.ID
}

// refChecker walks the ledger and checks the chunks its entries reference.
type refChecker struct {
	be      store.Backend
	o       ScrubOptions
	rep     *BlobReport
	p       *pacer
	present map[string]bool
	damaged map[string]string
	stores  map[string]*store.Store // per registry, keyless and read-only
	// seen: the outcome for a chunk already checked ("" when good), so a
	// chunk many records share is read once and each record still named.
	seen map[chunkKey]string
	// packOf: where a chunk already checked is, by the full object name.
	packOf map[chunkKey]string
}

func (rc *refChecker) run(ctx context.Context) error {
	rc.packOf = map[chunkKey]string{}
	return ledger.Scan(ctx, rc.o.Ledger, 0, rc.o.Size, func(index uint64, raw []byte) error {
		rc.rep.Entries++
		e, err := ledger.DecodeEntry(raw)
		if err != nil || e.Type == ledger.TypeWithheld {
			// Ledger damage is verify's to report; a withheld stub's
			// registry is not placed at this site.
			return nil
		}
		refs, err := rc.o.Refs(index, e)
		if err != nil {
			rc.rep.add(&BlobFinding{Index: index, HasIndex: true, Problem: fmt.Sprintf("entry does not decode: %v", err)})
			return nil
		}
		for _, ref := range refs {
			rc.rep.Refs++
			for _, id := range ref.Chunks {
				if err := rc.chunk(ctx, index, ref, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (rc *refChecker) chunk(ctx context.Context, index uint64, ref BlobRef, id store.ID) error {
	k := chunkKey{ref.Registry, id}
	problem, ok := rc.seen[k]
	if !ok {
		rc.rep.Chunks++
		var err error
		problem, err = rc.check(ctx, k)
		if err != nil {
			return err
		}
		rc.seen[k] = problem
	}
	if problem != "" {
		rc.rep.add(&BlobFinding{Registry: ref.Registry, Pack: rc.packOf[k], Chunk: hex.EncodeToString(id[:]),
			Record: ref.Record, Index: index, HasIndex: true, Problem: problem})
	}
	return nil
}

// check finds the chunk's pack and says what is wrong, or "".
func (rc *refChecker) check(ctx context.Context, k chunkKey) (string, error) {
	prefix := rc.o.Prefix(k.registry)
	s, err := rc.store(ctx, k.registry, prefix)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "the registry has no objects in this store: chunk missing", nil
	}
	pack, ok := s.Locate(k.id)
	if !ok {
		return "in no pack of the registry's store (no index object or pack header names it): chunk missing", nil
	}
	name := prefix + store.PackName(pack)
	rc.packOf[k] = name
	switch {
	case !rc.present[name]:
		return "its pack is missing from the store (an index object names it)", nil
	case rc.damaged[name] != "":
		return "its pack is damaged: " + rc.damaged[name], nil
	}
	if rc.o.Sealer == nil {
		return "", nil
	}
	sl := rc.o.Sealer(k.registry)
	if sl == nil {
		return "", nil
	}
	_, n, err := s.CheckChunk(ctx, sl, k.id)
	rc.p.wait(ctx, n)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return fmt.Sprintf("does not open with the registry's blob keys: %v", err), nil
	}
	rc.rep.Opened++
	return "", nil
}

// store opens the registry's store keyless and read-only, once; nil when
// the backend holds nothing under its prefix.
func (rc *refChecker) store(ctx context.Context, registry, prefix string) (*store.Store, error) {
	if s, ok := rc.stores[registry]; ok {
		return s, nil
	}
	var s *store.Store
	if rc.hasPrefix(prefix) {
		var err error
		s, err = store.Open(ctx, readOnly{store.Prefixed(rc.be, prefix)}, store.Options{})
		if err != nil {
			return nil, fmt.Errorf("scrub: open the store of registry %s: %w", registry, err)
		}
	}
	rc.stores[registry] = s
	return s, nil
}

func (rc *refChecker) hasPrefix(prefix string) bool {
	for name := range rc.present {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

func (rc *refChecker) close() {
	for _, s := range rc.stores {
		if s != nil {
			// Close flushes index objects for packs found without one;
			// readOnly refuses that write, as an audit changes nothing.
			s.Close()
		}
	}
}

// errScrubReadOnly is what readOnly answers a write with.
var errScrubReadOnly = errors.New("scrub: the blob store is opened read-only")

// readOnly is a backend that refuses writes.
type readOnly struct{ store.Backend }

func (readOnly) Save(context.Context, string, io.Reader, int64) error { return errScrubReadOnly }
func (readOnly) Remove(context.Context, string) error                 { return errScrubReadOnly }

// pacer bounds the bytes read per second: after each read it sleeps until
// the bytes read so far are no more than rate × elapsed.
type pacer struct {
	rate  int64
	start time.Time
	read  int64
}

func (p *pacer) wait(ctx context.Context, n int64) {
	p.read += n
	if p.rate <= 0 {
		return
	}
	due := p.start.Add(time.Duration(float64(p.read) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

type pacedReader struct {
	r   io.Reader
	p   *pacer
	ctx context.Context
}

func (r *pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.wait(r.ctx, int64(n))
	if err == nil && r.ctx.Err() != nil {
		err = r.ctx.Err()
	}
	return n, err
}
