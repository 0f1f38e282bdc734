package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/store"
)

// Holding is what a site already holds of a guest, which a bundle must
// extend: its mirror and its blob backend. Verify only reads them.
type Holding struct {
	Log   *ledger.Log   // the site's mirror (ledger.Options.Mirror)
	Blobs store.Backend // the guest's blob backend at the site
}

// Verify checks everything in a bundle before anything is taken, in
// this order, and returns the manifest or a *Error naming the first
// bad part:
//
//  1. manifest.json parses, is for this guest, origin and site, and starts
//     at the size of the site's mirror (else the error wraps replica.ErrGap);
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
func Verify(ctx context.Context, dir string, c *charter.Charter, w replica.Writers, site string, have Holding) (*Manifest, error) {
	return verify(ctx, dir, c, w, site, have, nil)
}

// chunkRef is a record entry's chunks, checked once the packs are known.
type chunkRef struct {
	index uint64
	reg   string
	ids   []store.ID
}

type packFile struct {
	reg, name string
	file      File
}

func verify(ctx context.Context, dir string, c *charter.Charter, w replica.Writers, site string, have Holding, progress func(Progress)) (*Manifest, error) {
	if c == nil || have.Log == nil || have.Blobs == nil {
		return nil, errors.New("bundle: verification needs a charter, the site's mirror and its blob backend")
	}
	if _, ok := c.Site(site); !ok {
		return nil, fmt.Errorf("bundle: site %q is not in the charter of %s", site, c.Guest.ID)
	}
	if w == nil {
		w = replica.HomeWriter{Charter: c}
	}
	place := replica.Placement{Charter: c, Site: site}
	siteSize := have.Log.MirrorSize()

	// 1. The manifest.
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Format != Format:
		return nil, refuse(ManifestName, "format %q, this version reads %q", m.Format, Format)
	case m.Guest != c.Guest.ID:
		return nil, refuse(ManifestName, "bundle of guest %q, the charter is of %q", m.Guest, c.Guest.ID)
	case m.Origin != c.Guest.Origin:
		return nil, refuse(ManifestName, "bundle of origin %q, the charter's is %q", m.Origin, c.Guest.Origin)
	case m.Site != site:
		return nil, refuse(ManifestName, "bundle made for site %q, this is site %q: the placement differs, export one for this site", m.Site, site)
	case m.From != siteSize:
		return nil, &Error{Part: ManifestName, Err: fmt.Errorf("%w: the bundle starts at entry %d, site %s holds %d entries: export a bundle --from %d",
			replica.ErrGap, m.From, site, siteSize, siteSize)}
	case m.Size <= m.From:
		return nil, refuse(ManifestName, "bundle from %d to %d brings no entry", m.From, m.Size)
	}

	// 2. The files: listed ones are bundle files of the right size, and
	// nothing else is there.
	var (
		checkpoint *File
		batches    []File
		packs      []packFile
		listed     = map[string]bool{}
		total      int64
	)
	for i := range m.Files {
		f := m.Files[i]
		if listed[f.Path] {
			return nil, refuse(ManifestName, "%s is listed twice", f.Path)
		}
		listed[f.Path] = true
		sum, err := hex.DecodeString(f.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, refuse(ManifestName, "%s: SHA-256 %q is not 64 hex digits", f.Path, f.SHA256)
		}
		switch kind, reg, name := classify(f.Path); kind {
		case "checkpoint":
			checkpoint = &m.Files[i]
		case "batch":
			batches = append(batches, f)
		case "pack":
			if _, ok := c.Registry(reg); !ok {
				return nil, refuse(f.Path, "pack of registry %q, which the charter of %s does not have", reg, c.Guest.ID)
			}
			if !place.Registry(reg) {
				return nil, refuse(f.Path, "%v: registry %s, site %s", replica.ErrNotPlaced, reg, site)
			}
			if want := strings.TrimPrefix(name, "data/"); f.SHA256 != want {
				return nil, refuse(f.Path, "the manifest gives SHA-256 %s, a pack's is its name", f.SHA256)
			}
			packs = append(packs, packFile{reg: reg, name: name, file: f})
		default:
			return nil, refuse(f.Path, "listed in the manifest but not a bundle file (checkpoint, batches/<first>.batch, blobs/<registry>/data/<sha256>)")
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		switch {
		case err != nil:
			return nil, &Error{Part: f.Path, Err: fmt.Errorf("listed in the manifest: %w", err)}
		case !fi.Mode().IsRegular():
			return nil, refuse(f.Path, "not a regular file (%s)", fi.Mode().Type())
		case fi.Size() != f.Size:
			return nil, refuse(f.Path, "%d bytes, the manifest says %d", fi.Size(), f.Size)
		}
		total += f.Size
	}
	if checkpoint == nil {
		return nil, refuse(ManifestName, "lists no checkpoint")
	}
	if len(batches) == 0 {
		return nil, refuse(ManifestName, "lists no batch")
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
		if rel != ManifestName && !listed[rel] {
			return refuse(rel, "not listed in the manifest: remove it or export the bundle again")
		}
		return nil
	})
	if err != nil {
		var be *Error
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	prog := Progress{Stage: "verify", TotalEntries: m.Entries(), TotalBytes: total}
	report := func() {
		if progress != nil {
			progress(prog)
		}
	}

	// 3. The checkpoint.
	signed, err := readFile(dir, *checkpoint, ledger.MaxFrameBytes)
	if err != nil {
		return nil, err
	}
	cp, err := replica.OpenWriterCheckpoint(c, w, signed)
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
	var refs []chunkRef
	for _, f := range batches {
		b, err := readBatch(dir, f)
		if err != nil {
			return nil, err
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
				return nil, refuse(part, "in %s: %v: registry %s, site %s: it must be a withheld stub", f.Path, replica.ErrNotPlaced, reg, site)
			}
			if rec != nil && len(rec.Chunks) > 0 {
				refs = append(refs, chunkRef{index: idx, reg: reg, ids: rec.Chunks})
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
		return nil, refuse(ManifestName, "the batches end at entry %d, the checkpoint is of size %d", next, cp.Size)
	}

	// 5. The packs.
	scratch := map[string]*store.Store{}
	defer func() {
		for _, st := range scratch {
			replica.CloseReadOnly(st)
		}
	}()
	for _, p := range packs {
		st := scratch[p.reg]
		if st == nil {
			if st, err = store.Open(ctx, dirBlobs{root: filepath.Join(dir, bundleBlobDir, p.reg)}, store.Options{}); err != nil {
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
			replica.CloseReadOnly(st)
		}
	}()
	for _, r := range refs {
		for _, id := range r.ids {
			if st := scratch[r.reg]; st != nil && st.Has(id) {
				continue
			}
			st := held[r.reg]
			if st == nil {
				if st, err = replica.OpenReadOnly(ctx, have.Blobs, r.reg); err != nil {
					return nil, fmt.Errorf("bundle: site %s: %w", site, err)
				}
				held[r.reg] = st
			}
			if !st.Has(id) {
				return nil, &Error{Part: fmt.Sprintf("entry %d", r.index), Err: fmt.Errorf("%w: registry %s: chunk %x is in no pack of the bundle, nor at site %s",
					replica.ErrMissingBlob, r.reg, id[:8], site)}
			}
		}
	}
	return m, nil
}

// readManifest reads manifest.json and parses it (parseManifest).
func readManifest(dir string) (*Manifest, error) {
	data, err := fsutil.Read(filepath.Join(dir, ManifestName), maxManifestBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Part: ManifestName, Err: fmt.Errorf("missing: %s is not a bundle, or its export did not finish: %w", dir, err)}
		}
		return nil, &Error{Part: ManifestName, Err: err}
	}
	return parseManifest(data)
}

// parseManifest strictly parses the bytes of manifest.json: an unknown
// field or trailing data is refused.
func parseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, refuse(ManifestName, "%v", err)
	}
	if dec.More() {
		return nil, refuse(ManifestName, "trailing data after the manifest")
	}
	return &m, nil
}

// classify says what a listed path is: "checkpoint", "batch",
// or "pack" with its registry and store object name; "" for anything else.
func classify(p string) (kind, reg, name string) {
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

// readFile reads a listed file whole and checks it against the
// manifest, from the very bytes it returns.
func readFile(dir string, f File, limit int64) ([]byte, error) {
	if f.Size > limit {
		return nil, refuse(f.Path, "%d bytes, more than the %d such a file may hold", f.Size, limit)
	}
	data, err := fsutil.Read(filepath.Join(dir, filepath.FromSlash(f.Path)), limit)
	if err != nil {
		return nil, &Error{Part: f.Path, Err: err}
	}
	if int64(len(data)) != f.Size {
		return nil, refuse(f.Path, "%d bytes, the manifest says %d", len(data), f.Size)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, refuse(f.Path, "content has SHA-256 %x, the manifest says %s", sum[:], f.SHA256)
	}
	return data, nil
}

// readBatch reads a listed batch file (readFile) and decodes it.
func readBatch(dir string, f File) (*replica.Batch, error) {
	data, err := readFile(dir, f, replica.MaxBatchBytes)
	if err != nil {
		return nil, err
	}
	b, err := replica.ParseBatch(data)
	if err != nil {
		return nil, refuse(f.Path, "%v", err)
	}
	return b, nil
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
