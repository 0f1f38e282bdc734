package replica

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/store"
)

// Offline seeding. A bundle is what replication would have sent one site,
// written to a directory instead of a connection, so that a disk carried
// across a border can seed a new site or catch up one that has been cut
// off. It is still sealed (nothing in it is ever decrypted: the exporter
// holds no key) and verifiable end to end by the site with public keys
// only. Layout of a bundle directory:
//
//	manifest.json                    every other file with its SHA-256 and size; guest, origin, site, from, size
//	checkpoint                       the writer's signed checkpoint the bundle reaches
//	batches/<first>.batch            entries [first, next first), Batch encoding (wire.go)
//	blobs/<registry>/data/<hex>      the packs those entries reference, named by their SHA-256
//
// The manifest is written last, so a directory without one is an
// interrupted export and is refused. See docs/bundle.md.

// BundleFormat is the manifest's format line.
const BundleFormat = "chancery-bundle/v1"

// Names inside a bundle directory.
const (
	BundleManifestName = "manifest.json"
	bundleCheckpoint   = "checkpoint"
	bundleBatchDir     = "batches"
	bundleBlobDir      = "blobs"
	batchSuffix        = ".batch"
	// maxManifestBytes bounds manifest.json: about 150 bytes per file,
	// so a million 16 MiB packs (16 TB) fit.
	maxManifestBytes = 256 << 20
	// DefaultBundleBatchBytes bounds one batch file by default.
	DefaultBundleBatchBytes = 4 << 20
	// siteTilesWait bounds how long VerifyBundle waits for a live mirror's
	// integrator to write the tiles of entries it has already accepted.
	siteTilesWait = 10 * time.Second
)

// BundleManifest describes a bundle: what it is for and every file in it.
type BundleManifest struct {
	Format string `json:"format"`
	Guest  string `json:"guest"`
	Origin string `json:"origin"`
	// Site is the site the bundle was made for: its placement decided
	// which entries are withheld stubs and which packs are present.
	Site string `json:"site"`
	// From is the size of the site's mirror the bundle extends; Size is
	// the size of the checkpoint it reaches.
	From uint64 `json:"from"`
	Size uint64 `json:"size"`
	// Epoch and Root repeat the checkpoint's, for people reading the file.
	Epoch    uint64       `json:"epoch"`
	Root     string       `json:"root"`
	Withheld uint64       `json:"withheld"`
	Created  time.Time    `json:"created"`
	Files    []BundleFile `json:"files"`
}

// BundleFile is one file of a bundle, by its slash-separated path inside
// the bundle directory.
type BundleFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Entries is the number of ledger entries the bundle brings.
func (m *BundleManifest) Entries() uint64 { return m.Size - m.From }

// Packs counts the pack files of the bundle.
func (m *BundleManifest) Packs() int {
	n := 0
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, bundleBlobDir+"/") {
			n++
		}
	}
	return n
}

// Bytes is the total size of the files the manifest lists.
func (m *BundleManifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// BundleError is a bundle refused. Part names the first bad part found: a
// file of the bundle ("manifest.json", "checkpoint", "batches/0.batch",
// "blobs/land/data/…"), or "entry N" for an entry whose content is wrong.
// errors.Is(err, ErrRefused) holds for every BundleError.
type BundleError struct {
	Part string
	Err  error
}

func (e *BundleError) Error() string { return "bundle: " + e.Part + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *BundleError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRefused) hold.
func (e *BundleError) Is(target error) bool { return target == ErrRefused }

func refuse(part, format string, args ...any) error {
	return &BundleError{Part: part, Err: fmt.Errorf(format, args...)}
}

// BundleProgress reports an export, a verification or an import as it
// goes. TotalBytes is 0 while an export runs (it is not known ahead).
type BundleProgress struct {
	Stage                 string // "export", "verify" or "import"
	Entries, TotalEntries uint64
	Packs                 int
	Bytes, TotalBytes     int64
}

// BundleOptions tune ExportBundle.
type BundleOptions struct {
	// Writers says which key signs each epoch's checkpoints (default
	// HomeWriter): the exporter checks the source's checkpoint with it, so
	// that it never writes a bundle the site would refuse for that.
	Writers Writers
	// FromRoot, if set, is the root of the site's tree at from (from its
	// last checkpoint or receipt): the export then refuses unless the
	// source's ledger extends it, so a site that forked is found at home
	// rather than after the journey.
	FromRoot *ledger.Hash
	// MaxBatchBytes and MaxBatchEntries bound one batch file (defaults
	// DefaultBundleBatchBytes and 16384).
	MaxBatchBytes   int
	MaxBatchEntries int
	Now             func() time.Time
	Progress        func(BundleProgress)
}

// ExportBundle writes to dir (which must not exist, or be empty) a bundle
// that brings a site whose mirror holds from entries (0 for a new site) up
// to the source's current signed checkpoint. The charter's placement for
// the site decides: entries of registries it does not place there become
// withheld stubs (ledger.Withhold) and their packs are not written.
// Everything is written with fsync, files 0600 and directories 0700, and
// manifest.json last. It reads only what src gives and decrypts nothing.
// On error the files it wrote are removed.
func ExportBundle(ctx context.Context, src Source, c *charter.Charter, site string, from uint64, dir string, opts BundleOptions) (_ *BundleManifest, err error) {
	if src == nil || c == nil {
		return nil, errors.New("replica: bundle export needs a source and a charter")
	}
	if _, ok := c.Site(site); !ok {
		return nil, fmt.Errorf("replica: site %q is not in the charter of %s", site, c.Guest.ID)
	}
	if opts.Writers == nil {
		opts.Writers = HomeWriter{c}
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultBundleBatchBytes
	}
	opts.MaxBatchBytes = min(opts.MaxBatchBytes, MaxBatchBytes-maxCheckpoint-maxProof*32-64)
	if opts.MaxBatchEntries <= 0 {
		opts.MaxBatchEntries = 16384
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := src.Fetcher()
	signed, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return nil, fmt.Errorf("bundle export: read the source's checkpoint: %w", err)
	}
	cp, err := openWriterCheckpoint(c, opts.Writers, signed)
	if err != nil {
		return nil, fmt.Errorf("bundle export: the source's checkpoint: %w", err)
	}
	switch {
	case from > cp.Size:
		return nil, fmt.Errorf("bundle export: site %s holds %d entries, more than the source's checkpoint of size %d: export from a source that is ahead of it", site, from, cp.Size)
	case from == cp.Size:
		return nil, fmt.Errorf("bundle export: site %s already holds all %d entries of the source's checkpoint: nothing to export", site, cp.Size)
	}
	prover := ledger.NewProver(f, 0)
	if opts.FromRoot != nil && from > 0 {
		prf, err := prover.Consistency(ctx, from, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("bundle export: consistency proof %d→%d: %w", from, cp.Size, err)
		}
		if err := ledger.VerifyConsistency(from, cp.Size, prf, *opts.FromRoot, cp.Root); err != nil {
			return nil, fmt.Errorf("bundle export: the site's tree of size %d (root %x) is not a prefix of the source's checkpoint of size %d: the site holds another history, which a bundle cannot extend: %w",
				from, opts.FromRoot[:], cp.Size, err)
		}
	}

	w, err := newBundleWriter(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			w.abort()
		}
	}()
	m := &BundleManifest{Format: BundleFormat, Guest: c.Guest.ID, Origin: c.Guest.Origin, Site: site,
		From: from, Size: cp.Size, Epoch: cp.Epoch, Root: hex.EncodeToString(cp.Root[:])}
	if err := w.write(bundleCheckpoint, signed); err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	place := Placement{c, site}
	prog := BundleProgress{Stage: "export", TotalEntries: cp.Size - from, Bytes: int64(len(signed))}
	seen := map[string]bool{} // pack paths already written
	b := &Batch{First: from, Checkpoint: signed}
	size := 0
	need := map[string][]store.ID{}
	flush := func() error {
		if len(b.Entries) == 0 {
			return nil
		}
		regs := make([]string, 0, len(need))
		for reg := range need {
			regs = append(regs, reg)
		}
		sort.Strings(regs)
		for _, reg := range regs {
			names, err := src.Locate(ctx, reg, need[reg])
			if err != nil {
				return fmt.Errorf("locate the packs of registry %s for entries %d–%d: %w", reg, b.First, b.End()-1, err)
			}
			for _, name := range names {
				path := packPath(reg, name)
				if seen[path] {
					continue
				}
				data, err := src.Object(ctx, reg, name)
				if err != nil {
					return fmt.Errorf("registry %s: read pack %s: %w", reg, name, err)
				}
				if err := store.CheckObject(name, data); err != nil {
					return fmt.Errorf("registry %s: the source's pack: %w", reg, err)
				}
				if err := w.write(path, data); err != nil {
					return err
				}
				seen[path] = true
				prog.Packs++
				prog.Bytes += int64(len(data))
			}
		}
		if b.End() < cp.Size {
			prf, err := prover.Consistency(ctx, b.End(), cp.Size)
			if err != nil {
				return fmt.Errorf("consistency proof %d→%d: %w", b.End(), cp.Size, err)
			}
			b.Proof = prf
		}
		data, err := b.MarshalBinary()
		if err != nil {
			return fmt.Errorf("entries %d–%d: %w", b.First, b.End()-1, err)
		}
		if err := w.write(batchPath(b.First), data); err != nil {
			return err
		}
		prog.Entries += uint64(len(b.Entries))
		prog.Bytes += int64(len(data))
		if opts.Progress != nil {
			opts.Progress(prog)
		}
		b = &Batch{First: b.End(), Checkpoint: signed}
		size = 0
		need = map[string][]store.ID{}
		return nil
	}
	err = ledger.Scan(ctx, f, from, cp.Size, func(idx uint64, e []byte) error {
		if len(b.Entries) > 0 && (len(b.Entries) >= opts.MaxBatchEntries || size+2+len(e) > opts.MaxBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		reg, ok, rec, err := place.Entry(e)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		if !ok {
			if e, err = ledger.Withhold(e); err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			m.Withheld++
		} else if e[1] == byte(ledger.TypeWithheld) {
			m.Withheld++ // the source itself holds only a stub
		} else if rec != nil && len(rec.Attachments) > 0 {
			ids, err := Chunks(rec)
			if err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			need[reg] = append(need[reg], ids...)
		}
		// Scan's slices alias a bundle it reuses: keep a copy.
		b.Entries = append(b.Entries, append([]byte(nil), e...))
		size += 2 + len(e)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	if b.First != cp.Size {
		return nil, fmt.Errorf("bundle export: the source's entries end at %d, its checkpoint is of size %d", b.First, cp.Size)
	}
	m.Created = opts.Now().UTC()
	if err := w.finish(m); err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	return m, nil
}

// openWriterCheckpoint verifies a checkpoint with the writer key of its
// epoch.
func openWriterCheckpoint(c *charter.Charter, w Writers, signed []byte) (ledger.Checkpoint, error) {
	cp, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	vs, err := w.Verifiers(cp.Epoch)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	if _, _, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, vs); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("size %d, epoch %d: %w", cp.Size, cp.Epoch, err)
	}
	return cp, nil
}

func batchPath(first uint64) string {
	return bundleBatchDir + "/" + strconv.FormatUint(first, 10) + batchSuffix
}

func packPath(reg, name string) string { return bundleBlobDir + "/" + reg + "/" + name }

// bundleWriter writes the files of a bundle, durably, and remembers them
// for the manifest.
type bundleWriter struct {
	dir     string
	created bool            // dir did not exist before
	dirs    map[string]bool // directories made inside dir
	top     map[string]bool // top-level names written, removed by abort
	files   []BundleFile
}

func newBundleWriter(dir string) (*bundleWriter, error) {
	w := &bundleWriter{dir: dir, dirs: map[string]bool{}, top: map[string]bool{}}
	switch des, err := os.ReadDir(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bundle export: %w", err)
		}
		w.created = true
	case err != nil:
		return nil, fmt.Errorf("bundle export: %w", err)
	case len(des) > 0:
		return nil, fmt.Errorf("bundle export: %s is not empty: give a new or empty directory", dir)
	}
	return w, nil
}

// write creates rel (slash-separated) with data, mode 0600, and fsyncs it.
func (w *bundleWriter) write(rel string, data []byte) error {
	w.top[strings.SplitN(rel, "/", 2)[0]] = true
	path := filepath.Join(w.dir, filepath.FromSlash(rel))
	parent := filepath.Dir(path)
	if !w.dirs[parent] {
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return err
		}
		for d := parent; d != filepath.Clean(w.dir) && !w.dirs[d]; d = filepath.Dir(d) {
			w.dirs[d] = true
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", rel, err)
	}
	sum := sha256.Sum256(data)
	w.files = append(w.files, BundleFile{Path: rel, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))})
	return nil
}

// finish makes every directory durable, then writes the manifest: once it
// is there, the bundle is complete.
func (w *bundleWriter) finish(m *BundleManifest) error {
	dirs := make([]string, 0, len(w.dirs))
	for d := range w.dirs {
		dirs = append(dirs, d)
	}
	// Deepest first, so each directory's new entries are durable before
	// its parent's.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	m.Files = w.files
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := w.write(BundleManifestName, append(data, '\n')); err != nil {
		return err
	}
	w.files = w.files[:len(w.files)-1]
	if err := fsutil.SyncDir(w.dir); err != nil {
		return err
	}
	if w.created {
		if err := fsutil.SyncDir(filepath.Dir(filepath.Clean(w.dir))); err != nil {
			return err
		}
	}
	return nil
}

// abort removes what an export that failed wrote.
func (w *bundleWriter) abort() {
	if w.created {
		os.RemoveAll(w.dir)
		return
	}
	for name := range w.top {
		os.RemoveAll(filepath.Join(w.dir, name))
	}
}

// SiteHolding is what a site already holds of a guest, which a bundle must
// extend: its mirror and its blob backend. VerifyBundle only reads them.
type SiteHolding struct {
	Log   *ledger.Log   // the site's mirror (ledger.Options.Mirror)
	Blobs store.Backend // the guest's blob backend at the site
}

// VerifyBundle checks everything in a bundle before anything is taken, in
// this order, and returns the manifest or a *BundleError naming the first
// bad part:
//
//  1. manifest.json parses, is for this guest, origin and site, and starts
//     at the size of the site's mirror (else the error wraps ErrGap);
//  2. every listed file is a bundle file, exists with its size, packs are
//     only of registries the charter places at the site, and no unlisted
//     file is present;
//  3. the checkpoint hashes as listed, is of the manifest's size, and
//     verifies with the writer key of its epoch (w);
//  4. each batch hashes as listed, starts where the one before ended (the
//     first at the site's size), carries that checkpoint, decodes; every
//     entry decodes, epochs never go back, entries of registries not placed
//     at the site are withheld stubs; and the leaves, appended to the
//     site's own tree, give at each batch's end a root consistent with the
//     checkpoint (its consistency proof) and at the last exactly the
//     checkpoint's root;
//  5. each pack hashes to its name and parses as a pack;
//  6. every chunk a record references is in a pack of the bundle or
//     already at the site.
//
// The site's tree is rebuilt from its own tiles (the inclusion proof of
// its last leaf is its compact range), so checking costs reading the
// bundle once.
func VerifyBundle(ctx context.Context, dir string, c *charter.Charter, w Writers, site string, have SiteHolding) (*BundleManifest, error) {
	return verifyBundle(ctx, dir, c, w, site, have, nil)
}

// bundleRef is a record entry's chunks, checked once the packs are known.
type bundleRef struct {
	index uint64
	reg   string
	ids   []store.ID
}

type bundlePack struct {
	reg, name string
	file      BundleFile
}

func verifyBundle(ctx context.Context, dir string, c *charter.Charter, w Writers, site string, have SiteHolding, progress func(BundleProgress)) (*BundleManifest, error) {
	if c == nil || have.Log == nil || have.Blobs == nil {
		return nil, errors.New("replica: bundle verification needs a charter, the site's mirror and its blob backend")
	}
	if _, ok := c.Site(site); !ok {
		return nil, fmt.Errorf("replica: site %q is not in the charter of %s", site, c.Guest.ID)
	}
	if w == nil {
		w = HomeWriter{c}
	}
	place := Placement{c, site}
	siteSize := have.Log.MirrorSize()

	// 1. The manifest.
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Format != BundleFormat:
		return nil, refuse(BundleManifestName, "format %q, this version reads %q", m.Format, BundleFormat)
	case m.Guest != c.Guest.ID:
		return nil, refuse(BundleManifestName, "bundle of guest %q, the charter is of %q", m.Guest, c.Guest.ID)
	case m.Origin != c.Guest.Origin:
		return nil, refuse(BundleManifestName, "bundle of origin %q, the charter's is %q", m.Origin, c.Guest.Origin)
	case m.Site != site:
		return nil, refuse(BundleManifestName, "bundle made for site %q, this is site %q: the placement differs, export one for this site", m.Site, site)
	case m.From != siteSize:
		return nil, &BundleError{Part: BundleManifestName, Err: fmt.Errorf("%w: the bundle starts at entry %d, site %s holds %d entries: export a bundle --from %d",
			ErrGap, m.From, site, siteSize, siteSize)}
	case m.Size <= m.From:
		return nil, refuse(BundleManifestName, "bundle from %d to %d brings no entry", m.From, m.Size)
	}

	// 2. The files: listed ones are bundle files of the right size, and
	// nothing else is there.
	var (
		checkpoint *BundleFile
		batches    []BundleFile
		packs      []bundlePack
		listed     = map[string]bool{}
		total      int64
	)
	for i := range m.Files {
		f := m.Files[i]
		if listed[f.Path] {
			return nil, refuse(BundleManifestName, "%s is listed twice", f.Path)
		}
		listed[f.Path] = true
		sum, err := hex.DecodeString(f.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, refuse(BundleManifestName, "%s: SHA-256 %q is not 64 hex digits", f.Path, f.SHA256)
		}
		switch kind, reg, name := classifyBundlePath(f.Path); kind {
		case "checkpoint":
			checkpoint = &m.Files[i]
		case "batch":
			batches = append(batches, f)
		case "pack":
			if _, ok := c.Registry(reg); !ok {
				return nil, refuse(f.Path, "pack of registry %q, which the charter of %s does not have", reg, c.Guest.ID)
			}
			if !place.Registry(reg) {
				return nil, refuse(f.Path, "%v: registry %s, site %s", ErrNotPlaced, reg, site)
			}
			if want := strings.TrimPrefix(name, "data/"); f.SHA256 != want {
				return nil, refuse(f.Path, "the manifest gives SHA-256 %s, a pack's is its name", f.SHA256)
			}
			packs = append(packs, bundlePack{reg: reg, name: name, file: f})
		default:
			return nil, refuse(f.Path, "listed in the manifest but not a bundle file (checkpoint, batches/<first>.batch, blobs/<registry>/data/<sha256>)")
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		switch {
		case err != nil:
			return nil, &BundleError{Part: f.Path, Err: fmt.Errorf("listed in the manifest: %w", err)}
		case !fi.Mode().IsRegular():
			return nil, refuse(f.Path, "not a regular file (%s)", fi.Mode().Type())
		case fi.Size() != f.Size:
			return nil, refuse(f.Path, "%d bytes, the manifest says %d", fi.Size(), f.Size)
		}
		total += f.Size
	}
	if checkpoint == nil {
		return nil, refuse(BundleManifestName, "lists no checkpoint")
	}
	if len(batches) == 0 {
		return nil, refuse(BundleManifestName, "lists no batch")
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != BundleManifestName && !listed[rel] {
			return refuse(rel, "not listed in the manifest: remove it or export the bundle again")
		}
		return nil
	})
	if err != nil {
		var be *BundleError
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	prog := BundleProgress{Stage: "verify", TotalEntries: m.Entries(), TotalBytes: total}
	report := func() {
		if progress != nil {
			progress(prog)
		}
	}

	// 3. The checkpoint.
	signed, err := readBundleFile(dir, *checkpoint, ledger.MaxFrameBytes)
	if err != nil {
		return nil, err
	}
	cp, err := openWriterCheckpoint(c, w, signed)
	switch {
	case err != nil:
		return nil, refuse(checkpoint.Path, "%v", err)
	case cp.Size != m.Size:
		return nil, refuse(checkpoint.Path, "of size %d, the manifest says %d", cp.Size, m.Size)
	case cp.Epoch != m.Epoch || hex.EncodeToString(cp.Root[:]) != m.Root:
		return nil, refuse(checkpoint.Path, "epoch %d root %x, the manifest says epoch %d root %s", cp.Epoch, cp.Root[:], m.Epoch, m.Root)
	}
	prog.Bytes += checkpoint.Size

	// 4. The batches, against the site's own tree.
	rng, err := siteRange(ctx, have.Log, siteSize)
	if err != nil {
		return nil, err
	}
	epoch := have.Log.Epoch()
	next := siteSize
	var refs []bundleRef
	for _, f := range batches {
		data, err := readBundleFile(dir, f, MaxBatchBytes)
		if err != nil {
			return nil, err
		}
		b, err := ParseBatch(data)
		if err != nil {
			return nil, refuse(f.Path, "%v", err)
		}
		if f.Path != batchPath(b.First) {
			return nil, refuse(f.Path, "holds a batch starting at entry %d", b.First)
		}
		if b.First != next {
			return nil, refuse(f.Path, "starts at entry %d, the entries before it end at %d", b.First, next)
		}
		if len(b.Entries) == 0 {
			return nil, refuse(f.Path, "holds no entry")
		}
		if !bytes.Equal(b.Checkpoint, signed) {
			return nil, refuse(f.Path, "carries another checkpoint than the bundle's")
		}
		if b.End() > cp.Size {
			return nil, refuse(f.Path, "entries %d–%d go past the checkpoint's size %d", b.First, b.End()-1, cp.Size)
		}
		for i, e := range b.Entries {
			idx := b.First + uint64(i)
			part := fmt.Sprintf("entry %d", idx)
			d, err := ledger.DecodeEntry(e)
			if err != nil {
				return nil, refuse(part, "in %s: %v", f.Path, err)
			}
			if d.Epoch < epoch {
				return nil, refuse(part, "in %s: %v: epoch %d after epoch %d", f.Path, ledger.ErrStaleEpoch, d.Epoch, epoch)
			}
			epoch = d.Epoch
			reg, ok, rec, err := place.Entry(e)
			if err != nil {
				return nil, refuse(part, "in %s: %v", f.Path, err)
			}
			if !ok {
				return nil, refuse(part, "in %s: %v: registry %s, site %s: it must be a withheld stub", f.Path, ErrNotPlaced, reg, site)
			}
			if rec != nil && len(rec.Attachments) > 0 {
				ids, err := Chunks(rec)
				if err != nil {
					return nil, refuse(part, "in %s: %v", f.Path, err)
				}
				refs = append(refs, bundleRef{index: idx, reg: reg, ids: ids})
			}
			h := ledger.EntryLeafHash(e)
			if err := rng.Append(h[:], nil); err != nil {
				return nil, fmt.Errorf("bundle: entry %d: %w", idx, err)
			}
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		end := b.End()
		if end < cp.Size {
			if err := ledger.VerifyConsistency(end, cp.Size, b.Proof, ledger.Hash(root), cp.Root); err != nil {
				return nil, refuse(f.Path, "entries %d–%d, after the site's %d, are not a prefix of the checkpoint of size %d: %v", b.First, end-1, siteSize, cp.Size, err)
			}
		} else {
			if len(b.Proof) != 0 {
				return nil, refuse(f.Path, "reaches the checkpoint but carries a consistency proof")
			}
			if ledger.Hash(root) != cp.Root {
				return nil, refuse(f.Path, "entries %d–%d and the site's %d before them give root %x, the checkpoint of size %d says %x", b.First, end-1, siteSize, root, cp.Size, cp.Root[:])
			}
			if cp.Epoch != epoch {
				return nil, refuse(checkpoint.Path, "of epoch %d, its newest entry is of epoch %d", cp.Epoch, epoch)
			}
		}
		next = end
		prog.Entries += uint64(len(b.Entries))
		prog.Bytes += f.Size
		report()
	}
	if next != cp.Size {
		return nil, refuse(BundleManifestName, "the batches end at entry %d, the checkpoint is of size %d", next, cp.Size)
	}

	// 5. The packs.
	scratch := map[string]*store.Store{}
	defer func() {
		for _, st := range scratch {
			closeReadOnly(st)
		}
	}()
	for _, p := range packs {
		st := scratch[p.reg]
		if st == nil {
			if st, err = store.Open(ctx, bundleBlobs{root: filepath.Join(dir, bundleBlobDir, p.reg)}, store.Options{}); err != nil {
				return nil, fmt.Errorf("bundle: packs of registry %s: %w", p.reg, err)
			}
			scratch[p.reg] = st
		}
		if err := st.AdoptPack(ctx, p.name); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, refuse(p.file.Path, "%v", err)
		}
		prog.Packs++
		prog.Bytes += p.file.Size
		report()
	}

	// 6. Every chunk referenced is in the bundle or at the site.
	held := map[string]*store.Store{}
	defer func() {
		for _, st := range held {
			closeReadOnly(st)
		}
	}()
	for _, r := range refs {
		for _, id := range r.ids {
			if st := scratch[r.reg]; st != nil && st.Has(id) {
				continue
			}
			st := held[r.reg]
			if st == nil {
				if st, err = store.Open(ctx, readOnly{store.Prefixed(have.Blobs, registry.BlobPrefix(r.reg))}, store.Options{}); err != nil {
					return nil, fmt.Errorf("bundle: blob store of registry %s at site %s: %w", r.reg, site, err)
				}
				held[r.reg] = st
			}
			if !st.Has(id) {
				return nil, &BundleError{Part: fmt.Sprintf("entry %d", r.index), Err: fmt.Errorf("%w: registry %s: chunk %x is in no pack of the bundle, nor at site %s",
					ErrMissingBlob, r.reg, id[:8], site)}
			}
		}
	}
	return m, nil
}

// readManifest reads and strictly parses manifest.json.
func readManifest(dir string) (*BundleManifest, error) {
	data, err := fsutil.Read(filepath.Join(dir, BundleManifestName), maxManifestBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &BundleError{Part: BundleManifestName, Err: fmt.Errorf("missing: %s is not a bundle, or its export did not finish: %w", dir, err)}
		}
		return nil, &BundleError{Part: BundleManifestName, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m BundleManifest
	if err := dec.Decode(&m); err != nil {
		return nil, refuse(BundleManifestName, "%v", err)
	}
	if dec.More() {
		return nil, refuse(BundleManifestName, "trailing data after the manifest")
	}
	return &m, nil
}

// classifyBundlePath says what a listed path is: "checkpoint", "batch",
// or "pack" with its registry and store object name; "" for anything else.
func classifyBundlePath(p string) (kind, reg, name string) {
	if p == bundleCheckpoint {
		return "checkpoint", "", ""
	}
	if rest, ok := strings.CutPrefix(p, bundleBatchDir+"/"); ok {
		num, ok := strings.CutSuffix(rest, batchSuffix)
		if !ok {
			return "", "", ""
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != num {
			return "", "", ""
		}
		return "batch", "", ""
	}
	if rest, ok := strings.CutPrefix(p, bundleBlobDir+"/"); ok {
		reg, name, ok := strings.Cut(rest, "/")
		if !ok || !store.ValidName(reg) || strings.HasPrefix(reg, ".") {
			return "", "", ""
		}
		if _, ok := store.ParsePackName(name); !ok {
			return "", "", ""
		}
		return "pack", reg, name
	}
	return "", "", ""
}

// readBundleFile reads a listed file whole and checks it against the
// manifest, from the very bytes it returns.
func readBundleFile(dir string, f BundleFile, limit int64) ([]byte, error) {
	if f.Size > limit {
		return nil, refuse(f.Path, "%d bytes, more than the %d such a file may hold", f.Size, limit)
	}
	data, err := fsutil.Read(filepath.Join(dir, filepath.FromSlash(f.Path)), limit)
	if err != nil {
		return nil, &BundleError{Part: f.Path, Err: err}
	}
	if int64(len(data)) != f.Size {
		return nil, refuse(f.Path, "%d bytes, the manifest says %d", len(data), f.Size)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, refuse(f.Path, "content has SHA-256 %x, the manifest says %s", sum[:], f.SHA256)
	}
	return data, nil
}

// siteRange returns the compact range of the site's tree of size n, read
// from the site's own tiles: the inclusion proof of leaf n-1 in the tree of
// size n is exactly the roots of the perfect subtrees left of that leaf.
// A live mirror writes its tiles shortly after it accepts entries, so a
// missing tile is waited for, a little.
func siteRange(ctx context.Context, l *ledger.Log, n uint64) (*compact.Range, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	if n == 0 {
		return rf.NewEmptyRange(0), nil
	}
	deadline := time.Now().Add(siteTilesWait)
	for {
		rng, err := siteRangeOnce(ctx, rf, ledger.DirFetcher(l.Dir()), n)
		if err == nil {
			if signed, cp := l.Checkpoint(); signed != nil && cp.Size == n {
				root, err := rng.GetRootHash(nil)
				if err != nil {
					return nil, err
				}
				if ledger.Hash(root) != cp.Root {
					return nil, fmt.Errorf("the site's own tiles give root %x at size %d, its checkpoint says %x: check its ledger (chancery verify)", root, n, cp.Root[:])
				}
			}
			return rng, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("the site's tree of size %d: %w", n, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func siteRangeOnce(ctx context.Context, rf *compact.RangeFactory, f ledger.Fetcher, n uint64) (*compact.Range, error) {
	p := ledger.NewProver(f, 0)
	prf, err := p.Inclusion(ctx, n-1, n)
	if err != nil {
		return nil, err
	}
	leaf, err := p.LeafHash(ctx, n-1, n)
	if err != nil {
		return nil, err
	}
	hs := make([][]byte, len(prf))
	for i := range prf {
		hs[len(prf)-1-i] = prf[i][:]
	}
	rng, err := rf.NewRange(0, n-1, hs)
	if err != nil {
		return nil, err
	}
	if err := rng.Append(leaf[:], nil); err != nil {
		return nil, err
	}
	return rng, nil
}

// BundleImport is what ImportBundle took.
type BundleImport struct {
	Manifest *BundleManifest
	// Entries taken, of which Withheld are stubs; Packs stored (those the
	// site already held are not counted) and Bytes read from the bundle
	// and stored.
	Entries, Withheld uint64
	Packs             int
	Bytes             int64
	// Receipt is the site's cosigned checkpoint for the bundle's end, and
	// Size that checkpoint's size: where replication resumes.
	Receipt []byte
	Size    uint64
}

// ImportBundle verifies a bundle (VerifyBundle against the receiver's
// mirror and blobs) and only then feeds it to the receiver: every pack the
// site lacks (PutObject), then the batches in order (Accept), exactly as
// replication would have. It returns the receipt of the last batch.
// Replication then resumes by itself from the site's state.
//
// Every file is read again as it is fed and must still hash as the
// manifest says. A failure after verification (the disk failing, the site
// moving on meanwhile, a suspension) can leave the site with part of the
// bundle, and never with anything unchecked: each batch the receiver took
// is durable and in order.
func ImportBundle(ctx context.Context, dir string, r *Receiver, progress func(BundleProgress)) (*BundleImport, error) {
	o := r.opts
	m, err := verifyBundle(ctx, dir, o.Charter, o.Writers, o.Site, SiteHolding{Log: o.Log, Blobs: o.Blobs}, progress)
	if err != nil {
		return nil, err
	}
	if o.Suspended != nil {
		if err := o.Suspended(); err != nil {
			return nil, fmt.Errorf("bundle: %w: %v", ErrSuspended, err)
		}
	}
	res := &BundleImport{Manifest: m}
	prog := BundleProgress{Stage: "import", TotalEntries: m.Entries(), TotalBytes: m.Bytes()}
	report := func() {
		if progress != nil {
			progress(prog)
		}
	}

	// Which packs the site lacks, and whether the quota has room for them
	// and the entries, before anything is taken.
	var packs []bundlePack
	byReg := map[string][]string{}
	var need int64
	for _, f := range m.Files {
		switch kind, reg, name := classifyBundlePath(f.Path); kind {
		case "checkpoint":
			// It travels inside every batch too: nothing to feed on its own.
			prog.Bytes += f.Size
		case "pack":
			packs = append(packs, bundlePack{reg: reg, name: name, file: f})
			byReg[reg] = append(byReg[reg], name)
		case "batch":
			need += f.Size
		}
	}
	missing := map[string]bool{}
	for reg, names := range byReg {
		ms, err := r.Missing(ctx, reg, names)
		if err != nil {
			return nil, fmt.Errorf("bundle: registry %s: %w", reg, err)
		}
		for _, name := range ms {
			missing[packPath(reg, name)] = true
		}
	}
	for _, p := range packs {
		if missing[p.file.Path] {
			need += p.file.Size
		}
	}
	if o.Quota > 0 && r.Used()+need > o.Quota {
		return nil, fmt.Errorf("bundle: %w: guest %s holds %d of its %d bytes at site %s; the bundle needs %d more",
			ErrQuota, o.Charter.Guest.ID, r.Used(), o.Quota, o.Site, need)
	}

	for _, p := range packs {
		if !missing[p.file.Path] {
			prog.Bytes += p.file.Size
			report()
			continue
		}
		data, err := readBundleFile(dir, p.file, MaxObjectBytes)
		if err != nil {
			return res, err
		}
		if err := r.PutObject(ctx, p.reg, p.name, data); err != nil {
			return res, fmt.Errorf("bundle: %s: %w", p.file.Path, err)
		}
		res.Packs++
		res.Bytes += p.file.Size
		prog.Packs++
		prog.Bytes += p.file.Size
		report()
	}
	var receipt []byte
	for _, f := range m.Files {
		if kind, _, _ := classifyBundlePath(f.Path); kind != "batch" {
			continue
		}
		data, err := readBundleFile(dir, f, MaxBatchBytes)
		if err != nil {
			return res, err
		}
		b, err := ParseBatch(data)
		if err != nil {
			return res, refuse(f.Path, "%v", err)
		}
		if receipt, err = r.Accept(ctx, b); err != nil {
			return res, fmt.Errorf("bundle: %s: entries %d–%d: %w (the site now holds %d entries)", f.Path, b.First, b.End()-1, err, o.Log.MirrorSize())
		}
		for _, e := range b.Entries {
			if e[1] == byte(ledger.TypeWithheld) {
				res.Withheld++
			}
		}
		res.Entries += uint64(len(b.Entries))
		res.Bytes += f.Size
		prog.Entries += uint64(len(b.Entries))
		prog.Bytes += f.Size
		report()
	}
	if receipt == nil {
		return res, fmt.Errorf("bundle: the site gave no receipt after the last batch")
	}
	cp, err := ledger.ParseSignedCheckpoint(receipt)
	if err != nil {
		return res, fmt.Errorf("bundle: receipt: %w", err)
	}
	res.Receipt, res.Size = receipt, cp.Size
	return res, nil
}

// DirSource is a Source over a ledger directory and a guest's blob backend
// that it only ever reads: what `chancery bundle export` reads at the home,
// with no key and without opening the ledger, so the home's daemon may keep
// running. It opens each registry's store keyless on first use and sees the
// packs that were durable then; Close releases them.
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
	poll := s.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	for {
		signed, err := s.Fetcher().Fetch(ctx, ledger.CheckpointPath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, ledger.Checkpoint{}, err
		}
		if err == nil {
			cp, err := ledger.ParseSignedCheckpoint(signed)
			if err != nil {
				return nil, ledger.Checkpoint{}, fmt.Errorf("checkpoint in %s: %w", s.dir, err)
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

func (s *DirSource) store(ctx context.Context, reg string) (*store.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stores[reg]; ok {
		return st, nil
	}
	st, err := store.Open(ctx, readOnly{store.Prefixed(s.blobs, registry.BlobPrefix(reg))}, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("blob store of registry %s: %w", reg, err)
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
		closeReadOnly(st)
	}
	s.stores = map[string]*store.Store{}
	return nil
}

// closeReadOnly closes a store opened over a read-only view. Close flushes,
// and a flush there can only fail (an index object for packs that had none
// would be written otherwise), which is what read-only means: the error
// is expected and dropped.
func closeReadOnly(st *store.Store) { _ = st.Close() }

// readOnly is a view of a backend that refuses every write, so that a
// keyless store opened to look chunks up can never change what it reads.
type readOnly struct{ store.Backend }

func (readOnly) Save(_ context.Context, name string, _ io.Reader, _ int64) error {
	return fmt.Errorf("store: save %s: read-only view", name)
}

func (readOnly) Remove(_ context.Context, name string) error {
	return fmt.Errorf("store: remove %s: read-only view", name)
}

// bundleBlobs serves a bundle's blobs/<registry>/ directory as a read-only
// backend holding packs under data/<sha256>. List shows nothing: the
// scratch store that verifies them adopts each pack by name, in manifest
// order, so the first bad one is the one named.
type bundleBlobs struct{ root string }

func (b bundleBlobs) path(name string) (string, error) {
	if _, ok := store.ParsePackName(name); !ok {
		return "", fmt.Errorf("bundle: %q is not a pack name", name)
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

func (b bundleBlobs) Load(_ context.Context, name string, off, length int64) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if length == 0 {
		length = fi.Size() - off
	}
	if off < 0 || length < 0 || off+length > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("bundle: %s: range %d+%d past its %d bytes", name, off, length, fi.Size())
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, length), f}, nil
}

func (b bundleBlobs) Stat(_ context.Context, name string) (int64, error) {
	p, err := b.path(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("bundle: %s: not a regular file", name)
	}
	return fi.Size(), nil
}

func (bundleBlobs) List(context.Context, string, func(string, int64) error) error { return nil }

func (bundleBlobs) Save(_ context.Context, name string, _ io.Reader, _ int64) error {
	return fmt.Errorf("bundle: save %s: a bundle is read-only", name)
}

func (bundleBlobs) Remove(_ context.Context, name string) error {
	return fmt.Errorf("bundle: remove %s: a bundle is read-only", name)
}
