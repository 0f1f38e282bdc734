package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// ImportLine is one line of a JSONL import file.
type ImportLine struct {
	Registry string          `json:"registry"`
	ID       string          `json:"id"`
	Record   json.RawMessage `json:"record"`
	// Attachments maps an attachment name to a file, relative to the
	// import file's directory.
	Attachments map[string]string `json:"attachments,omitempty"`
}

// ImportOptions configure Import.
type ImportOptions struct {
	// Dir is where attachment paths are resolved (the import file's directory).
	Dir string
	// Batch is how many records share one ledger commit (default 1024).
	Batch int
	// Progress, if set, is called after each committed batch.
	Progress func(records int, bytes int64)
}

// ImportResult says what Import wrote.
type ImportResult struct {
	Records int
	// Skipped counts the lines whose record's latest version already
	// held exactly that content: a rerun of a file after a bad line
	// writes only what the first run did not.
	Skipped     int
	Attachments int
	Bytes       int64 // of the input consumed
	First, Last uint64
	Elapsed     time.Duration
}

type importItem struct {
	line     int
	g        *reg
	id       string
	version  uint64
	rec      json.RawMessage
	atts     map[string]string
	prepared *prepared
	err      error
	// skip: the record's latest version already holds this line's
	// content, so the line writes nothing. With attachments, the
	// comparison of their content waits for prepareBatch, which
	// stores them: sameRefs are the latest version's references.
	skip     bool
	sameRefs [][]byte
}

type importBatch struct {
	items []*importItem
	bytes int64
	done  chan struct{}
}

// Import loads records from JSONL, one ImportLine per line. Records are
// validated and sealed in parallel and committed in order, many per ledger
// commit. A bad line stops the import with an error naming its line
// number; every line before it is committed and nothing of it or after it
// is written.
func (r *Registries) Import(ctx context.Context, rd io.Reader, opts ImportOptions) (ImportResult, error) {
	if opts.Batch <= 0 {
		opts.Batch = 1024
	}
	start := time.Now()
	r.bulk.Lock()
	defer r.bulk.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan *importBatch, 4)
	work := make(chan *importBatch, 4)
	var readErr error
	go func() {
		defer close(batches)
		defer close(work)
		readErr = r.readImport(ctx, rd, opts.Batch, opts.Dir, func(b *importBatch) bool {
			select {
			case batches <- b:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- b:
			case <-ctx.Done():
				return false
			}
			return true
		})
	}()
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				r.prepareBatch(ctx, b, opts.Dir)
				close(b.done)
			}
		}()
	}
	defer wg.Wait()

	var res ImportResult
	for b := range batches {
		<-b.done
		n, err := r.commitBatch(ctx, b, &res)
		res.Records += n
		if err != nil {
			cancel()
			res.Elapsed = time.Since(start)
			return res, err
		}
		res.Bytes += b.bytes
		if opts.Progress != nil {
			opts.Progress(res.Records, res.Bytes)
		}
	}
	if readErr != nil {
		res.Elapsed = time.Since(start)
		return res, readErr
	}
	// Quorum-mode registries acknowledge the import only once the sites
	// hold its last entry; the entries before it come with it, in order.
	if res.Records > 0 {
		for _, g := range r.regs {
			if err := r.replicated(ctx, g, res.Last); err != nil {
				res.Elapsed = time.Since(start)
				return res, err
			}
		}
	}
	res.Elapsed = time.Since(start)
	return res, ctx.Err()
}

// readImport splits the input into batches, assigning each line its record
// version. It stops at the first line that does not parse, sending the
// lines before it (and the bad line, carrying its error) first.
//
// A line whose record was not written earlier in this import and whose
// latest version holds exactly the line's content is marked to be
// skipped, without taking a version: rerunning a file after a bad line
// imports only the lines the first run did not commit.
func (r *Registries) readImport(ctx context.Context, rd io.Reader, size int, dir string, send func(*importBatch) bool) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), ledger.MaxEntrySize*4)
	pending := map[*reg]map[[32]byte]uint64{} // versions assigned but not yet committed
	b := &importBatch{done: make(chan struct{})}
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		b.bytes += int64(len(raw)) + 1
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		it := &importItem{line: line}
		b.items = append(b.items, it)
		l, err := parseImportLine(raw)
		if err != nil {
			it.err = &ValidationError{Line: line, Err: err}
		} else if g, err := r.reg(l.Registry); err != nil {
			it.err = &ValidationError{Line: line, Registry: l.Registry, ID: l.ID, Err: err}
		} else if err := checkID(l.Registry, l.ID); err != nil {
			it.err = withLine(err, line)
		} else {
			it.g, it.id, it.rec, it.atts = g, l.ID, l.Record, l.Attachments
			blind := g.keys.BlindID(l.ID)
			p := pending[g]
			if p == nil {
				p = map[[32]byte]uint64{}
				pending[g] = p
			}
			last, ok := p[blind]
			if !ok {
				v, found := g.latest(&blind)
				last = v.num
				if found && !v.deleted {
					it.skip, it.sameRefs, it.err = r.sameAsLatest(ctx, g, l, blind, v, dir)
					if it.err != nil {
						it.err = withLine(it.err, line)
					}
				}
			}
			if !it.skip {
				it.version = last + 1
				p[blind] = it.version
			}
		}
		if it.err != nil || len(b.items) >= size {
			if !send(b) {
				return ctx.Err()
			}
			if it.err != nil {
				return nil // the committer reports it
			}
			b = &importBatch{done: make(chan struct{})}
		}
	}
	if err := sc.Err(); err != nil {
		it := &importItem{line: line + 1, err: &ValidationError{Line: line + 1, Err: fmt.Errorf("read: %w", err)}}
		b.items = append(b.items, it)
	}
	if len(b.items) > 0 {
		send(b)
	}
	return nil
}

// sameAsLatest reports whether line l would write exactly the record's
// latest version v: the same body (record bytes, attachment names and
// sizes) under the version's commitment, which the importer, holding the
// registry's keys, can compute without unsealing. For a line with
// attachments it returns the version's attachment references, whose
// content prepareBatch compares once it has stored the files.
func (r *Registries) sameAsLatest(ctx context.Context, g *reg, l *ImportLine, blind [32]byte, v version, dir string) (bool, [][]byte, error) {
	raw, err := r.entry(ctx, v.index, false)
	if err != nil {
		return false, nil, fmt.Errorf("%s record %s: read its latest version (ledger entry %d) to compare: %w", g.def.Name, l.ID, v.index, err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		return false, nil, fmt.Errorf("%s record %s: ledger entry %d: %w", g.def.Name, l.ID, v.index, err)
	}
	re, err := UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return false, nil, fmt.Errorf("%s record %s: ledger entry %d: %w", g.def.Name, l.ID, v.index, err)
	}
	if re.Kind != KindPut || re.Version != v.num {
		return false, nil, nil
	}
	if len(l.Attachments) == 0 {
		b := body{ID: l.ID, Data: l.Record}
		plain, err := b.marshal()
		if err != nil {
			return false, nil, err
		}
		defer clear(plain)
		ad := seal.RecordAD{Guest: r.opts.Charter.Guest.ID, Registry: g.def.Name, BlindID: blind, Version: v.num, Epoch: e.Epoch}
		return g.keys.VerifyCommitRecord(ad, plain, re.Commitment), nil, nil
	}
	// The attachment references are sealed in the body: open it.
	plain, err := g.keys.Open(re.AD(r.opts.Charter.Guest.ID, e.Epoch), re.Sealed)
	if err != nil {
		return false, nil, fmt.Errorf("%s record %s: open its latest version (ledger entry %d) to compare: %w", g.def.Name, l.ID, v.index, err)
	}
	defer clear(plain)
	var b body
	if err := json.Unmarshal(plain, &b); err != nil {
		return false, nil, fmt.Errorf("%s record %s: ledger entry %d: sealed body: %w", g.def.Name, l.ID, v.index, err)
	}
	atts, err := b.attachments(re)
	if err != nil {
		return false, nil, fmt.Errorf("%s record %s: ledger entry %d: %w", g.def.Name, l.ID, v.index, err)
	}
	if b.ID != l.ID || !bytes.Equal(b.Data, l.Record) || len(atts) != len(l.Attachments) {
		return false, nil, nil
	}
	var refs [][]byte
	for i, a := range atts {
		path, ok := l.Attachments[a.Name]
		if !ok || (i > 0 && atts[i-1].Name >= a.Name) {
			// checkSameAttachments compares in name order.
			return false, nil, nil
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Size() != a.Size {
			// A missing file: prepareBatch reports it if the line is imported.
			return false, nil, nil
		}
		refs = append(refs, b.Attachments[i].Ref)
	}
	return true, refs, nil
}

// parseImportLine decodes one import line. It walks the line once and
// copies only the record's bytes, which validation walks again.
func parseImportLine(raw []byte) (*ImportLine, error) {
	f, ok := topLevelFields(raw, []string{"registry", "id", "record", "attachments"})
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	l := &ImportLine{}
	for i, dst := range []*string{&l.Registry, &l.ID} {
		if f[i] == nil {
			continue
		}
		if err := json.Unmarshal(f[i], dst); err != nil {
			return nil, fmt.Errorf("field %s: %w", []string{"registry", "id"}[i], err)
		}
	}
	if f[2] != nil {
		l.Record = append(json.RawMessage(nil), f[2]...)
	}
	if f[3] != nil {
		if err := json.Unmarshal(f[3], &l.Attachments); err != nil {
			return nil, fmt.Errorf("field attachments: %w", err)
		}
	}
	return l, nil
}

func withLine(err error, line int) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		c := *ve
		c.Line = line
		return &c
	}
	return &ValidationError{Line: line, Err: err}
}

// prepareBatch validates, stores attachments and seals each item.
func (r *Registries) prepareBatch(ctx context.Context, b *importBatch, dir string) {
	epoch := r.epoch()
	guest := r.opts.Charter.Guest.ID
	for _, it := range b.items {
		if it.err != nil {
			return // nothing at or after a bad line is prepared
		}
		if it.skip {
			if len(it.sameRefs) > 0 {
				r.checkSameAttachments(ctx, it, dir)
				if it.err != nil {
					return
				}
			}
			continue
		}
		atts := r.storeAttachments(ctx, it, dir)
		if it.err != nil {
			return
		}
		p, err := it.g.prepare(guest, it.id, it.version, epoch, KindPut, it.rec, atts)
		if err != nil {
			it.err = withLine(err, it.line)
			return
		}
		it.prepared = p
	}
}

// checkSameAttachments stores the attachments of a line marked to be
// skipped (the store keeps one copy of a chunk, so a file stored before
// costs no space) and compares their references with the latest
// version's. A file that changed but kept its size stops the import at
// that line: the line has no version of its own to be written with, and
// the content must not be dropped silently.
func (r *Registries) checkSameAttachments(ctx context.Context, it *importItem, dir string) {
	atts := r.storeAttachments(ctx, it, dir)
	if it.err != nil {
		return
	}
	for i, a := range atts {
		ref, err := a.Ref.MarshalBinary()
		if err != nil || !bytes.Equal(ref, it.sameRefs[i]) {
			it.err = &ValidationError{Line: it.line, Registry: it.g.def.Name, ID: it.id, Field: "attachments." + a.Name,
				Err: errors.New("the file differs from the latest version's attachment of the same size; import this change in a file of its own")}
			return
		}
	}
}

// storeAttachments stores the line's attachment files in the blob store
// and returns them sorted by name, as a version lists them; a file that
// cannot be stored sets it.err.
func (r *Registries) storeAttachments(ctx context.Context, it *importItem, dir string) []Attachment {
	var atts []Attachment
	for name, path := range it.atts {
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		a, err := r.importAttachment(ctx, it.g.def.Name, name, path)
		if err != nil {
			it.err = &ValidationError{Line: it.line, Registry: it.g.def.Name, ID: it.id, Field: "attachments." + name, Err: err}
			return nil
		}
		atts = append(atts, a)
	}
	sortAttachments(atts)
	return atts
}

func (r *Registries) importAttachment(ctx context.Context, registry, name, path string) (Attachment, error) {
	f, err := os.Open(path)
	if err != nil {
		return Attachment{}, err
	}
	defer f.Close()
	ref, err := r.PutBlob(ctx, registry, f)
	if err != nil {
		return Attachment{}, err
	}
	return Attachment{Name: name, Size: ref.Size, Ref: ref}, nil
}

func sortAttachments(atts []Attachment) {
	for i := 1; i < len(atts); i++ {
		for j := i; j > 0 && atts[j].Name < atts[j-1].Name; j-- {
			atts[j], atts[j-1] = atts[j-1], atts[j]
		}
	}
}

// commitBatch appends the prepared items before the first bad one as one
// ledger commit, indexes them, and returns how many it wrote and the bad
// line's error.
func (r *Registries) commitBatch(ctx context.Context, b *importBatch, res *ImportResult) (int, error) {
	var bad error
	var write []*importItem
	for _, it := range b.items {
		if it.err != nil {
			bad = it.err
			break
		}
		if it.skip {
			res.Skipped++
			continue
		}
		write = append(write, it)
	}
	n := len(write)
	if n == 0 {
		return 0, bad
	}
	// Attachments must be durable before any ledger entry names them.
	flushed := map[*reg]bool{}
	for _, it := range write {
		if len(it.atts) > 0 && !flushed[it.g] {
			flushed[it.g] = true
			if err := it.g.blobs.Flush(ctx); err != nil {
				return 0, fmt.Errorf("import: make attachments of lines %d–%d durable: %w", write[0].line, write[n-1].line, err)
			}
		}
	}
	now := r.opts.Now()
	es := make([]ledger.Entry, n)
	for i, it := range write {
		es[i] = ledger.Entry{Type: ledger.TypeRecord, Epoch: it.prepared.epoch, Time: now, Payload: it.prepared.payload}
	}
	first, err := r.opts.Log.AppendBatch(ctx, es)
	if err != nil {
		return 0, fmt.Errorf("import: ledger commit of lines %d–%d: %w", write[0].line, write[n-1].line, err)
	}
	t := now.UTC().Truncate(time.Millisecond)
	for i, it := range write {
		it.g.index(it.prepared.entry, VersionInfo{Version: it.version, Index: first + uint64(i), Time: t, Epoch: it.prepared.epoch})
		res.Attachments += len(it.atts)
	}
	if res.Records == 0 {
		res.First = first
	}
	res.Last = first + uint64(n) - 1
	return n, bad
}
