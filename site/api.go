package site

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store"
)

// tokenTTL is how long an uploaded blob's token may be used in a PUT.
const tokenTTL = 24 * time.Hour

// maxAttachmentName bounds an attachment's name, which travels in URLs.
const maxAttachmentName = 255

func (g *officialsAPI) mountAPI(mux *http.ServeMux, prefix string) {
	const rec = "/registries/{registry}/records/{id}"
	mux.Handle("GET "+prefix+"/registries", g.authed(ActionRead, false, g.listRegistries))
	mux.Handle("PUT "+prefix+rec, g.authed(ActionWrite, false, g.putRecord))
	mux.Handle("GET "+prefix+rec, g.authed(ActionRead, false, g.getRecord))
	mux.Handle("DELETE "+prefix+rec, g.authed(ActionWrite, false, g.deleteRecord))
	mux.Handle("GET "+prefix+rec+"/history", g.authed(ActionRead, false, g.history))
	mux.Handle("GET "+prefix+rec+"/attachments/{name}", g.authed(ActionRead, false, g.getAttachment))
	mux.Handle("GET "+prefix+"/registries/{registry}/records", g.authed(ActionRead, false, g.find))
	mux.Handle("POST "+prefix+"/registries/{registry}/blobs", g.authed(ActionWrite, true, g.putBlob))
	mux.Handle("POST "+prefix+rec+"/extract", g.authed(ActionRead, false, g.issueExtract))
	g.mountProcedures(mux, prefix)
	g.mountNotices(mux, prefix)
}

func (g *officialsAPI) listRegistries(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	writeJSON(w, http.StatusOK, siteapi.RegistriesResponse{Guest: g.local.Charter.Guest.ID, Registries: g.local.Registries.Names()})
}

func (g *officialsAPI) putRecord(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	reg, id := r.PathValue("registry"), r.PathValue("id")
	var req siteapi.PutRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "", "request body: "+err.Error()), reg, id)
		return
	}
	if dec.More() {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "", "request body: more than one JSON value"), reg, id)
		return
	}
	if len(req.Record) == 0 || bytes.Equal(req.Record, []byte("null")) {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "record", "required: the record as a JSON object"), reg, id)
		return
	}
	atts, err := g.resolveAttachments(r, reg, id, req.Attachments)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	out, err := g.local.Registries.Put(r.Context(), reg, id, req.Record, atts)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	status := http.StatusOK
	if out.Version == 1 {
		status = http.StatusCreated
	}
	writeJSON(w, status, out)
}

// resolveAttachments turns the request's attachment list into references
// the registry links: tokens are checked (only blobs this site stored for
// this registry can be linked, so a caller cannot point a record at
// chunks it guessed), and kept names are looked up in the latest version.
func (g *officialsAPI) resolveAttachments(r *http.Request, reg, id string, in []siteapi.AttachmentInput) ([]registry.Attachment, error) {
	var out []registry.Attachment
	seen := map[string]bool{}
	var latest *registry.Record
	for i, a := range in {
		field := fmt.Sprintf("attachments[%d]", i)
		if err := checkAttachmentName(a.Name); err != nil {
			return nil, newHTTPError(http.StatusBadRequest, field+".name", err.Error())
		}
		if seen[a.Name] {
			return nil, newHTTPError(http.StatusBadRequest, field+".name", fmt.Sprintf("attachment %q named twice", a.Name))
		}
		seen[a.Name] = true
		switch {
		case a.Keep && a.Ref != "":
			return nil, newHTTPError(http.StatusBadRequest, field, "give ref or keep, not both")
		case a.Keep:
			if latest == nil {
				rec, err := g.local.Registries.Get(r.Context(), reg, id, registry.AsOf{})
				if err != nil {
					if errors.Is(err, registry.ErrNotFound) {
						return nil, newHTTPError(http.StatusBadRequest, field+".keep", "the record has no earlier version to keep attachments from")
					}
					return nil, err
				}
				latest = rec
			}
			found := false
			for _, la := range latest.Attachments {
				if la.Name == a.Name {
					out, found = append(out, la), true
					break
				}
			}
			if !found {
				return nil, newHTTPError(http.StatusBadRequest, field+".keep", fmt.Sprintf("version %d has no attachment named %q", latest.Version, a.Name))
			}
		case a.Ref != "":
			ref, err := g.openToken(reg, a.Ref)
			if err != nil {
				return nil, newHTTPError(http.StatusBadRequest, field+".ref", err.Error())
			}
			out = append(out, registry.Attachment{Name: a.Name, Size: ref.Size, Ref: ref})
		default:
			return nil, newHTTPError(http.StatusBadRequest, field+".ref", "required (or keep: true)")
		}
	}
	return out, nil
}

func checkAttachmentName(n string) error {
	switch {
	case n == "" || len(n) > maxAttachmentName:
		return fmt.Errorf("must be 1 to %d bytes", maxAttachmentName)
	case strings.ContainsAny(n, "/\\\x00") || n == "." || n == "..":
		return errors.New("must not contain a slash, a backslash or NUL, nor be . or ..")
	}
	for _, c := range n {
		if c < 0x20 || c == 0x7f {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// asOf reads ?at_index=N and ?at_time=RFC3339.
func asOf(r *http.Request) (registry.AsOf, error) {
	var at registry.AsOf
	q := r.URL.Query()
	if v := q.Get("at_index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return at, newHTTPError(http.StatusBadRequest, "at_index", "must be a ledger index (a non-negative integer)")
		}
		at.Index = &n
	}
	if v := q.Get("at_time"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return at, newHTTPError(http.StatusBadRequest, "at_time", "must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z")
		}
		at.Time = &t
	}
	return at, nil
}

func (g *officialsAPI) getRecord(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	reg, id := r.PathValue("registry"), r.PathValue("id")
	at, err := asOf(r)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	rec, err := g.readRecord(r.Context(), o, reg, id, at)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// readRecord reads one record for o, its access entry appended first: the
// API's read and the desk's (desk.go).
func (g *officialsAPI) readRecord(ctx context.Context, o *charter.Official, reg, id string, at registry.AsOf) (*registry.Record, error) {
	rec, err := g.local.Registries.Get(ctx, reg, id, at)
	if err != nil {
		// A lookup that finds nothing still tells whether a person or a
		// parcel exists: it is recorded (with no version) like any read.
		if errors.Is(err, registry.ErrNotFound) {
			if rerr := g.record(ctx, o, &guest.Read{Kind: continuity.AccessRecord, Registry: reg, ID: id}); rerr != nil {
				return nil, rerr
			}
		}
		return nil, err
	}
	if err := g.record(ctx, o, &guest.Read{Kind: continuity.AccessRecord, Registry: reg, ID: id, Records: []*registry.Record{rec}}); err != nil {
		return nil, err
	}
	return rec, nil
}

// recorded has the access hook record rd; it answers the request with an
// error and returns false if that failed.
func (g *officialsAPI) recorded(w http.ResponseWriter, r *http.Request, o *charter.Official, rd *guest.Read) bool {
	if err := g.record(r.Context(), o, rd); err != nil {
		g.fail(w, r, err, rd.Registry, rd.ID)
		return false
	}
	return true
}

// record has the access hook record rd. No plaintext leaves an activated
// site unrecorded: a read whose access entry is not in the ledger is
// refused, whatever kept it out. Home has no hook and records nothing.
func (g *officialsAPI) record(ctx context.Context, o *charter.Official, rd *guest.Read) error {
	if g.access == nil {
		return nil
	}
	err := g.access(ctx, o.ID, rd)
	if err == nil {
		return nil
	}
	why := "try again; if it persists, the site's operators have the cause in its log"
	switch {
	case errors.Is(err, ledger.ErrStaleEpoch):
		why = "a newer epoch is in the ledger: this site no longer writes it; read at the site now active"
	case errors.Is(err, ledger.ErrClosed):
		why = "the ledger is closed: the site is stopping or handing over"
	}
	return &httpError{status: http.StatusServiceUnavailable, cause: err, body: siteapi.ErrorBody{
		Error: fmt.Sprintf("registry %s: the %s read was not served because its access entry could not be appended to the ledger (%s)", rd.Registry, rd.Kind, why),
	}}
}

func (g *officialsAPI) deleteRecord(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	reg, id := r.PathValue("registry"), r.PathValue("id")
	rec, err := g.local.Registries.Delete(r.Context(), reg, id)
	if errors.Is(err, registry.ErrNotFound) {
		// The registry says "not found" for a record already deleted too;
		// the history tells the two apart, and a second delete conflicts
		// with the first rather than missing its target.
		if vs, herr := g.local.Registries.History(r.Context(), reg, id); herr == nil && len(vs) > 0 && vs[len(vs)-1].Deleted {
			err = newHTTPError(http.StatusConflict, "", fmt.Sprintf("registry %s record %s: already deleted at version %d", reg, id, vs[len(vs)-1].Version))
		}
	}
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (g *officialsAPI) history(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	reg, id := r.PathValue("registry"), r.PathValue("id")
	vs, err := g.local.Registries.History(r.Context(), reg, id)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) && !g.recorded(w, r, o, &guest.Read{Kind: continuity.AccessHistory, Registry: reg, ID: id}) {
			return
		}
		g.fail(w, r, err, reg, id)
		return
	}
	if !g.recorded(w, r, o, &guest.Read{Kind: continuity.AccessHistory, Registry: reg, ID: id, Versions: vs}) {
		return
	}
	writeJSON(w, http.StatusOK, siteapi.HistoryResponse{Registry: reg, ID: id, Versions: vs})
}

func (g *officialsAPI) find(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	reg := r.PathValue("registry")
	q := r.URL.Query()
	field, value := q.Get("field"), q.Get("value")
	if field == "" {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "field", "required: the index field to look up"), reg, "")
		return
	}
	if value == "" {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "value", "required: the value to look up"), reg, "")
		return
	}
	recs, err := g.findRecords(r.Context(), o, reg, field, value)
	if err != nil {
		g.fail(w, r, err, reg, "")
		return
	}
	if recs == nil {
		recs = []*registry.Record{}
	}
	writeJSON(w, http.StatusOK, siteapi.FindResponse{Registry: reg, Records: recs})
}

// findRecords looks records up by an index field for o, the query
// recorded even when nothing matched: the query itself says what an
// official looked for. The API's find and the desk's search (desk.go).
func (g *officialsAPI) findRecords(ctx context.Context, o *charter.Official, reg, field, value string) ([]*registry.Record, error) {
	recs, err := g.local.Registries.Find(ctx, reg, field, value)
	if err != nil {
		return nil, err
	}
	if err := g.record(ctx, o, &guest.Read{Kind: continuity.AccessFind, Registry: reg, Records: recs, Field: field, Value: value}); err != nil {
		return nil, err
	}
	return recs, nil
}

func (g *officialsAPI) putBlob(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	reg := r.PathValue("registry")
	if _, err := g.local.Registries.Count(reg); err != nil {
		g.fail(w, r, err, reg, "") // before reading a byte of the upload
		return
	}
	body := http.MaxBytesReader(w, r.Body, g.limits.MaxBlobBytes)
	ref, err := g.local.Registries.PutBlob(r.Context(), reg, body)
	if err != nil {
		// A body that failed its digest or its limit leaves chunks stored
		// that nothing references; they cost space, never integrity.
		g.fail(w, r, err, reg, "")
		return
	}
	// Put makes chunks readable, Flush makes them durable: the token must
	// not be handed out before, or a record could be acknowledged that
	// names chunks a crash then loses.
	st, err := g.local.Registries.Blobs(reg)
	if err == nil {
		err = st.Flush(r.Context())
	}
	if err != nil {
		g.fail(w, r, fmt.Errorf("registry %s: flush blob store: %w", reg, err), reg, "")
		return
	}
	exp := time.Now().Add(tokenTTL).Truncate(time.Second)
	tok, err := g.sealToken(reg, ref, exp)
	if err != nil {
		g.fail(w, r, err, reg, "")
		return
	}
	writeJSON(w, http.StatusCreated, siteapi.BlobResponse{Ref: tok, Size: ref.Size, Expires: exp.UTC()})
}

func (g *officialsAPI) getAttachment(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	reg, id, name := r.PathValue("registry"), r.PathValue("id"), r.PathValue("name")
	at, err := asOf(r)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	rec, err := g.local.Registries.Get(r.Context(), reg, id, at)
	if err != nil {
		g.fail(w, r, err, reg, id)
		return
	}
	var att *registry.Attachment
	for i := range rec.Attachments {
		if rec.Attachments[i].Name == name {
			att = &rec.Attachments[i]
		}
	}
	if att == nil {
		g.fail(w, r, newHTTPError(http.StatusNotFound, "", fmt.Sprintf("registry %s record %s version %d has no attachment named %q", reg, id, rec.Version, name)), reg, id)
		return
	}
	if !g.recorded(w, r, o, &guest.Read{Kind: continuity.AccessAttachment, Registry: reg, ID: id, Records: []*registry.Record{rec}, Attachment: att}) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(att.Ref.Size, 10))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Chancery-Record-Version", strconv.FormatUint(rec.Version, 10))
	lw := &lazyWriter{w: w}
	if err := g.local.Registries.GetBlob(r.Context(), reg, att.Ref, lw); err != nil {
		if !lw.started {
			h.Del("Content-Length")
			h.Del("Content-Disposition")
			g.fail(w, r, fmt.Errorf("registry %s record %s attachment %s: %w", reg, id, name, err), reg, id)
			return
		}
		// The status is sent: cut the connection so that the client sees
		// a short body against Content-Length, never a complete-looking one.
		g.log.Error("attachment read failed mid-stream", "registry", reg, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
}

// lazyWriter remembers whether anything was written, so that an error
// before the first byte can still be answered with a proper status.
type lazyWriter struct {
	w       io.Writer
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.started = l.started || len(p) > 0
	return l.w.Write(p)
}

// Blob tokens. A token is what POST .../blobs returns and PUT takes back:
//
//	base64url( 0x01 | u64 expiry (unix s) | store ref | 16-byte tag )
//	tag = HMAC-SHA256(tokenKey, "chancery-blob-token/v1" | u16 len | registry | u64 expiry | ref)[:16]
//
// The key is random per process: tokens are for the upload-then-put
// sequence of one client session, not for keeping.
const tokenVersion = 1

func (g *officialsAPI) tokenTag(reg string, exp uint64, ref []byte) []byte {
	m := hmac.New(sha256.New, g.tokenKey[:])
	m.Write([]byte("chancery-blob-token/v1"))
	m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(reg))))
	m.Write([]byte(reg))
	m.Write(binary.BigEndian.AppendUint64(nil, exp))
	m.Write(ref)
	return m.Sum(nil)[:16]
}

func (g *officialsAPI) sealToken(reg string, ref store.Ref, exp time.Time) (string, error) {
	rb, err := ref.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("registry %s: blob reference: %w", reg, err)
	}
	e := uint64(exp.Unix())
	b := []byte{tokenVersion}
	b = binary.BigEndian.AppendUint64(b, e)
	b = append(b, rb...)
	b = append(b, g.tokenTag(reg, e, rb)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (g *officialsAPI) openToken(reg, tok string) (store.Ref, error) {
	var ref store.Ref
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 1+8+16 || b[0] != tokenVersion {
		return ref, errors.New("not a blob token from POST .../blobs")
	}
	e := binary.BigEndian.Uint64(b[1:9])
	rb, tag := b[9:len(b)-16], b[len(b)-16:]
	if !hmac.Equal(tag, g.tokenTag(reg, e, rb)) {
		return ref, fmt.Errorf("blob token not issued by this site for registry %s (or issued before it restarted): upload again", reg)
	}
	if time.Now().Unix() > int64(e) {
		return ref, errors.New("blob token expired: upload again")
	}
	if err := ref.UnmarshalBinary(rb); err != nil {
		return ref, err
	}
	return ref, nil
}
