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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/store"
)

// The replication HTTP surface of a site, per guest, under a prefix (the
// site mounts it at /replica/v1/guests/{guest}):
//
//	GET  {prefix}/state                         State (JSON)
//	POST {prefix}/batch                         a Batch → 200 receipt note | 202 Progress | 409 GapError
//	POST {prefix}/blobs/{registry}/missing      {"names": [...]} → {"names": [...]}
//	PUT  {prefix}/blobs/{registry}/data/{hash}  a pack → 204
//	POST {prefix}/blobs/{registry}/locate       {"chunks": [hex ids]} → {"names": [...]}
//	GET  {prefix}/blobs/{registry}/data/{hash}  a pack, for a site catching up from this one
//
// The ledger itself is served read-only by the site as C2SP tiles.

const (
	receiptMediaType = "text/plain; charset=utf-8"
	maxJSON          = 8 << 20
	// MaxObjectBytes bounds a shipped pack (store packs are at most 1 GiB,
	// 16 MiB by default).
	MaxObjectBytes = 1 << 30
)

type errorBody struct {
	Error string `json:"error"`
	Size  uint64 `json:"size,omitempty"` // the site's size, with 409
}

type namesBody struct {
	Names []string `json:"names"`
}

type chunksBody struct {
	Chunks []string `json:"chunks"`
}

// Status maps a Receiver error to an HTTP status.
func Status(err error) int {
	switch {
	case errors.Is(err, ErrGap):
		return http.StatusConflict
	case errors.Is(err, ErrNotPlaced):
		return http.StatusForbidden
	case errors.Is(err, ErrQuota):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrSuspended):
		return http.StatusServiceUnavailable
	case errors.Is(err, ledger.ErrNotMirror):
		// The site writes the guest's ledger itself: a newer epoch.
		return http.StatusConflict
	case errors.Is(err, ledger.ErrStaleEpoch): // before ErrRefused, which wraps it
		return http.StatusConflict
	case errors.Is(err, ErrMissingBlob), errors.Is(err, ErrRefused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// Mount adds the receiver's routes to mux under prefix. allow, if set,
// decides every request first (the site requires a pinned peer there).
func (r *Receiver) Mount(mux *http.ServeMux, prefix string, allow func(*http.Request) error) {
	wrap := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			if allow != nil {
				if err := allow(req); err != nil {
					writeErr(w, http.StatusForbidden, err, 0)
					return
				}
			}
			h(w, req)
		}
	}
	mux.HandleFunc("GET "+prefix+"/state", wrap(r.serveState))
	mux.HandleFunc("POST "+prefix+"/batch", wrap(r.serveBatch))
	mux.HandleFunc("POST "+prefix+"/blobs/{registry}/missing", wrap(r.serveMissing))
	mux.HandleFunc("POST "+prefix+"/blobs/{registry}/locate", wrap(r.serveLocate))
	mux.HandleFunc("PUT "+prefix+"/blobs/{registry}/data/{hash}", wrap(r.servePut))
	mux.HandleFunc("GET "+prefix+"/blobs/{registry}/data/{hash}", wrap(r.serveGet))
}

func writeErr(w http.ResponseWriter, code int, err error, size uint64) {
	writeJSON(w, code, errorBody{Error: err.Error(), Size: size})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (r *Receiver) fail(w http.ResponseWriter, err error) {
	var gap *GapError
	size := uint64(0)
	if errors.As(err, &gap) {
		size = gap.Size
	}
	writeErr(w, Status(err), err, size)
}

func (r *Receiver) serveState(w http.ResponseWriter, req *http.Request) {
	st, err := r.State(req.Context())
	if err != nil {
		r.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func readBody(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, req.Body, limit)
	var buf bytes.Buffer
	if req.ContentLength > 0 && req.ContentLength <= limit {
		// MinRead more: a body that reports its end only on a read after
		// the last byte (HTTP/2 may) would otherwise double the buffer,
		// 16 MiB for a pack, just to find it.
		buf.Grow(int(req.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (r *Receiver) serveBatch(w http.ResponseWriter, req *http.Request) {
	data, err := readBody(w, req, MaxBatchBytes)
	if err != nil {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("batch: %w", err), 0)
		return
	}
	b, err := ParseBatch(data)
	if err != nil {
		r.fail(w, r.refused(fmt.Errorf("%w: %v", ErrRefused, err)))
		return
	}
	receipt, err := r.Accept(req.Context(), b)
	if err != nil {
		r.fail(w, err)
		return
	}
	if receipt == nil {
		writeJSON(w, http.StatusAccepted, Progress{Size: b.End()})
		return
	}
	w.Header().Set("Content-Type", receiptMediaType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(receipt)
}

func (r *Receiver) serveMissing(w http.ResponseWriter, req *http.Request) {
	var in namesBody
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxJSON)).Decode(&in); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("missing: %w", err), 0)
		return
	}
	out, err := r.Missing(req.Context(), req.PathValue("registry"), in.Names)
	if err != nil {
		r.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, namesBody{Names: out})
}

func (r *Receiver) serveLocate(w http.ResponseWriter, req *http.Request) {
	var in chunksBody
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxJSON)).Decode(&in); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("locate: %w", err), 0)
		return
	}
	ids := make([]store.ID, len(in.Chunks))
	for i, h := range in.Chunks {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("locate: chunks[%d] is not 64 hex digits", i), 0)
			return
		}
		ids[i] = store.ID(b)
	}
	out, err := r.Locate(req.Context(), req.PathValue("registry"), ids)
	if err != nil {
		r.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, namesBody{Names: out})
}

// servePut takes one pack. It is streamed to an unlinked temporary file
// beside the guest's ledger while it is hashed, so that a pack costs the
// site disk, not memory (a 200 MB upload was once read whole into the
// heap before the 1 GiB cap was even checked). A body declared or found
// larger than MaxObjectBytes is refused with 413 at once; one whose
// hash is not its name, with 422 before the store sees it. The store then
// checks the pack from the file, mapped read-only.
func (r *Receiver) servePut(w http.ResponseWriter, req *http.Request) {
	name := "data/" + req.PathValue("hash")
	if req.ContentLength > MaxObjectBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("pack %s: %d bytes declared, above the %d-byte limit", name, req.ContentLength, int64(MaxObjectBytes)), 0)
		return
	}
	id, ok := store.ParsePackName(name)
	if !ok {
		r.fail(w, r.refused(fmt.Errorf("%w: %q is not a pack name", ErrRefused, name)))
		return
	}
	f, err := r.uploadFile()
	if err != nil {
		r.fail(w, fmt.Errorf("pack %s: %w", name, err))
		return
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), http.MaxBytesReader(w, req.Body, MaxObjectBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("pack %s: larger than the %d-byte limit", name, mb.Limit), 0)
			return
		}
		r.fail(w, fmt.Errorf("pack %s: receive: %w", name, err))
		return
	}
	if [32]byte(h.Sum(nil)) != [32]byte(id) {
		r.fail(w, r.refused(fmt.Errorf("%w: pack %s: content does not match its name", ErrRefused, name)))
		return
	}
	var data []byte
	if n > 0 {
		if data, err = unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			r.fail(w, fmt.Errorf("pack %s: map the upload: %w", name, err))
			return
		}
		defer unix.Munmap(data)
	}
	if err := r.PutObject(req.Context(), req.PathValue("registry"), name, data); err != nil {
		r.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// uploadFile is an unlinked temporary file for one upload, in the guest's
// directory (beside its ledger, on the disk that will hold the pack, not
// in a tmpfs that is memory): it disappears when closed, or with the
// process.
func (r *Receiver) uploadFile() (*os.File, error) {
	dir := os.TempDir()
	if r.opts.Log != nil {
		dir = filepath.Dir(r.opts.Log.Dir())
	}
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (r *Receiver) serveGet(w http.ResponseWriter, req *http.Request) {
	data, err := r.Object(req.Context(), req.PathValue("registry"), "data/"+req.PathValue("hash"))
	if err != nil {
		r.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// Remote is a site's replication API over HTTP, for one guest: a Sink for
// a writer pushing to it, and the blob half of a Source for a site catching
// up from it (PeerSource adds the ledger).
type Remote struct {
	// Base is the site's URL, e.g. https://embassy-north.example:7101.
	Base   string
	Guest  string
	Client *http.Client
}

func (c *Remote) url(path string) string {
	return strings.TrimSuffix(c.Base, "/") + "/replica/v1/guests/" + url.PathEscape(c.Guest) + path
}

func (c *Remote) do(ctx context.Context, method, path, ctype string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	cl := c.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	return cl.Do(req)
}

// remoteError turns an error response back into the Receiver's error, so
// that errors.Is works across the wire.
func remoteError(resp *http.Response) error {
	var eb errorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
		eb.Error = strings.TrimSpace(string(b))
	}
	msg := fmt.Sprintf("site answered %s: %s", resp.Status, eb.Error)
	switch resp.StatusCode {
	case http.StatusConflict:
		if strings.Contains(eb.Error, ErrGap.Error()) {
			return &GapError{Size: eb.Size}
		}
		return fmt.Errorf("%w: %s", ledger.ErrStaleEpoch, msg)
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrNotPlaced, msg)
	case http.StatusInsufficientStorage:
		return fmt.Errorf("%w: %s", ErrQuota, msg)
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", ErrSuspended, msg)
	case http.StatusUnprocessableEntity:
		// Status maps both to 422; the message tells them apart.
		if strings.Contains(eb.Error, ErrMissingBlob.Error()) {
			return fmt.Errorf("%w: %s", ErrMissingBlob, msg)
		}
		return fmt.Errorf("%w: %s", ErrRefused, msg)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", fs.ErrNotExist, msg)
	}
	return errors.New(msg)
}

func (c *Remote) json(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	resp, err := c.do(ctx, method, path, "application/json", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return remoteError(resp)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxJSON)).Decode(out)
}

// State implements Sink.
func (c *Remote) State(ctx context.Context) (*State, error) {
	var st State
	if err := c.json(ctx, http.MethodGet, "/state", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Missing implements Sink.
func (c *Remote) Missing(ctx context.Context, reg string, names []string) ([]string, error) {
	var out namesBody
	err := c.json(ctx, http.MethodPost, "/blobs/"+url.PathEscape(reg)+"/missing", namesBody{Names: names}, &out)
	return out.Names, err
}

// PutObject implements Sink.
func (c *Remote) PutObject(ctx context.Context, reg, name string, data []byte) error {
	hash, ok := strings.CutPrefix(name, "data/")
	if !ok {
		return fmt.Errorf("%q is not a pack name", name)
	}
	resp, err := c.do(ctx, http.MethodPut, "/blobs/"+url.PathEscape(reg)+"/data/"+hash, "application/octet-stream", data)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return remoteError(resp)
	}
	return nil
}

// Accept implements Sink.
func (c *Remote) Accept(ctx context.Context, b *Batch) ([]byte, error) {
	body, err := b.MarshalBinary()
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, "/batch", batchMediaType, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return io.ReadAll(io.LimitReader(resp.Body, maxCheckpoint))
	case http.StatusAccepted:
		return nil, nil
	}
	return nil, remoteError(resp)
}

// Locate asks the site which packs hold chunks.
func (c *Remote) Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error) {
	in := chunksBody{Chunks: make([]string, len(ids))}
	for i, id := range ids {
		in.Chunks[i] = hex.EncodeToString(id[:])
	}
	var out namesBody
	err := c.json(ctx, http.MethodPost, "/blobs/"+url.PathEscape(reg)+"/locate", in, &out)
	return out.Names, err
}

// Object reads a pack from the site.
func (c *Remote) Object(ctx context.Context, reg, name string) ([]byte, error) {
	hash, ok := strings.CutPrefix(name, "data/")
	if !ok {
		return nil, fmt.Errorf("%q is not a pack name", name)
	}
	resp, err := c.do(ctx, http.MethodGet, "/blobs/"+url.PathEscape(reg)+"/data/"+hash, "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, remoteError(resp)
	}
	return io.ReadAll(io.LimitReader(resp.Body, MaxObjectBytes))
}

// PeerSource reads from another site that holds the guest: its public
// ledger tiles and its packs. Nothing it serves is trusted: the receiving
// mirror checks every entry against the writer's signature and every pack
// against its hash, so a peer that alters data is caught and refused.
type PeerSource struct {
	Remote *Remote
	// Ledger is the peer's ledger URL prefix (…/guests/{guest}/ledger/).
	Ledger string
	// Poll is how often to look for a newer checkpoint (default 200ms).
	Poll time.Duration
}

// Fetcher implements Source.
func (p PeerSource) Fetcher() ledger.Fetcher {
	return ledger.HTTPFetcher{Base: p.Ledger, Client: p.Remote.Client}
}

// Next implements Source: it polls the peer's checkpoint.
func (p PeerSource) Next(ctx context.Context, size uint64) ([]byte, ledger.Checkpoint, error) {
	signed, cp, err := PollCheckpoint(ctx, p.Fetcher(), size, p.Poll)
	if err != nil && ctx.Err() == nil {
		return nil, cp, fmt.Errorf("peer %s: %w", p.Ledger, err)
	}
	return signed, cp, err
}

// Locate implements Source.
func (p PeerSource) Locate(ctx context.Context, reg string, ids []store.ID) ([]string, error) {
	return p.Remote.Locate(ctx, reg, ids)
}

// Object implements Source.
func (p PeerSource) Object(ctx context.Context, reg, name string) ([]byte, error) {
	return p.Remote.Object(ctx, reg, name)
}
