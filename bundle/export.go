package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/store"
)

// Export writes to dir (which must not exist, or be empty) a bundle
// that brings a site whose mirror holds from entries (0 for a new site) up
// to the source's current signed checkpoint. Its batches are the ones
// replication would send (replica.BatchBuilder): the charter's placement
// for the site decides which entries become withheld stubs
// (ledger.Withhold), whose packs are not written. Everything is written
// with fsync, files 0600 and directories 0700, and manifest.json last. It
// reads only what src gives and decrypts nothing. On error the files it
// wrote are removed.
func Export(ctx context.Context, src replica.Source, c *charter.Charter, site string, from uint64, dir string, opts ExportOptions) (_ *Manifest, err error) {
	if src == nil || c == nil {
		return nil, errors.New("bundle export: needs a source and a charter")
	}
	if _, ok := c.Site(site); !ok {
		return nil, fmt.Errorf("bundle export: site %q is not in the charter of %s", site, c.Guest.ID)
	}
	if opts.Writers == nil {
		opts.Writers = replica.HomeWriter{Charter: c}
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultBatchBytes
	}
	opts.MaxBatchBytes = min(opts.MaxBatchBytes, replica.MaxBatchEntryBytes)
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
	cp, err := replica.OpenWriterCheckpoint(c, opts.Writers, signed)
	if err != nil {
		return nil, fmt.Errorf("bundle export: the source's checkpoint: %w", err)
	}
	switch {
	case from > cp.Size:
		return nil, fmt.Errorf("bundle export: site %s holds %d entries, more than the source's checkpoint of size %d: export from a source that is ahead of it", site, from, cp.Size)
	case from == cp.Size:
		return nil, fmt.Errorf("bundle export: site %s already holds all %d entries of the source's checkpoint: nothing to export", site, cp.Size)
	}
	builder := replica.BatchBuilder{Fetcher: f, Prover: ledger.NewProver(f, 0), Place: replica.Placement{Charter: c, Site: site},
		MaxEntries: opts.MaxBatchEntries, MaxBytes: opts.MaxBatchBytes}
	if opts.FromRoot != nil && from > 0 {
		prf, err := builder.Prover.Consistency(ctx, from, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("bundle export: consistency proof %d→%d: %w", from, cp.Size, err)
		}
		if err := ledger.VerifyConsistency(from, cp.Size, prf, *opts.FromRoot, cp.Root); err != nil {
			return nil, fmt.Errorf("bundle export: the site's tree of size %d (root %x) is not a prefix of the source's checkpoint of size %d: the site holds another history, which a bundle cannot extend: %w",
				from, opts.FromRoot[:], cp.Size, err)
		}
	}

	w, err := newWriter(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			w.abort()
		}
	}()
	m := &Manifest{Format: Format, Guest: c.Guest.ID, Origin: c.Guest.Origin, Site: site,
		From: from, Size: cp.Size, Epoch: cp.Epoch, Root: hex.EncodeToString(cp.Root[:])}
	if err := w.write(bundleCheckpoint, signed); err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	prog := Progress{Stage: "export", TotalEntries: cp.Size - from, Bytes: int64(len(signed))}
	seen := map[string]bool{} // pack paths already written
	for next := from; next < cp.Size; {
		bb, err := builder.Build(ctx, next, signed, cp)
		if err != nil {
			return nil, fmt.Errorf("bundle export: %w", err)
		}
		// The packs first, as replication ships them before the batch.
		regs := make([]string, 0, len(bb.Need))
		for reg := range bb.Need {
			regs = append(regs, reg)
		}
		sort.Strings(regs)
		for _, reg := range regs {
			n, bytes, err := writePacks(ctx, w, src, reg, bb.Need[reg], seen)
			prog.Packs += n
			prog.Bytes += bytes
			if err != nil {
				return nil, fmt.Errorf("bundle export: entries %d–%d: %w", bb.First, bb.End()-1, err)
			}
		}
		data, err := bb.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("bundle export: entries %d–%d: %w", bb.First, bb.End()-1, err)
		}
		if err := w.write(batchPath(bb.First), data); err != nil {
			return nil, fmt.Errorf("bundle export: %w", err)
		}
		m.Withheld += uint64(bb.Withheld)
		prog.Entries += uint64(len(bb.Entries))
		prog.Bytes += int64(len(data))
		if opts.Progress != nil {
			opts.Progress(prog)
		}
		next = bb.End()
	}
	m.Created = opts.Now().UTC()
	if err := w.finish(m); err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	return m, nil
}

// writePacks writes the packs, of those holding the chunks, that the
// bundle does not hold yet (seen), and says how many and how many bytes.
func writePacks(ctx context.Context, w *writer, src replica.Source, reg string, ids []store.ID, seen map[string]bool) (n int, size int64, err error) {
	names, err := src.Locate(ctx, reg, ids)
	if err != nil {
		return n, size, fmt.Errorf("locate the packs of registry %s: %w", reg, err)
	}
	for _, name := range names {
		path := packPath(reg, name)
		if seen[path] {
			continue
		}
		data, err := replica.FetchPack(ctx, src, reg, name)
		if err != nil {
			return n, size, err
		}
		if err := w.write(path, data); err != nil {
			return n, size, err
		}
		seen[path] = true
		n++
		size += int64(len(data))
	}
	return n, size, nil
}

func batchPath(first uint64) string {
	return bundleBatchDir + "/" + strconv.FormatUint(first, 10) + batchSuffix
}

func packPath(reg, name string) string { return bundleBlobDir + "/" + reg + "/" + name }

// writer writes the files of a bundle, durably, and remembers them
// for the manifest.
type writer struct {
	dir     string
	created bool            // dir did not exist before
	dirs    map[string]bool // directories made inside dir
	top     map[string]bool // top-level names written, removed by abort
	files   []File
}

func newWriter(dir string) (*writer, error) {
	w := &writer{dir: dir, dirs: map[string]bool{}, top: map[string]bool{}}
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
func (w *writer) write(rel string, data []byte) error {
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
	w.files = append(w.files, File{Path: rel, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))})
	return nil
}

// finish makes every directory durable, then writes the manifest: once it
// is there, the bundle is complete.
func (w *writer) finish(m *Manifest) error {
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
	if err := w.write(ManifestName, append(data, '\n')); err != nil {
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
func (w *writer) abort() {
	if w.created {
		os.RemoveAll(w.dir)
		return
	}
	for name := range w.top {
		os.RemoveAll(filepath.Join(w.dir, name))
	}
}
