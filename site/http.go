package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// httpError is an error with the status and body it is answered with.
type httpError struct {
	status int
	body   siteapi.ErrorBody
	cause  error // logged for 5xx, never sent
}

func (e *httpError) Error() string { return e.body.Error }

func newHTTPError(status int, field, msg string) *httpError {
	return &httpError{status: status, body: siteapi.ErrorBody{Error: msg, Field: field}}
}

// toHTTP maps an error from the registries, the ledger or the request to
// its status. Only 5xx hide the message: anything else is the caller's to
// fix and says how.
func toHTTP(err error, reg, id string) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		if he.body.Registry == "" {
			he.body.Registry = reg
		}
		if he.body.ID == "" {
			he.body.ID = id
		}
		return he
	}
	var ve *registry.ValidationError
	var mb *http.MaxBytesError
	e := &httpError{body: siteapi.ErrorBody{Error: err.Error(), Registry: reg, ID: id}}
	switch {
	case errors.As(err, &ve):
		e.status = http.StatusBadRequest
		e.body.Field = ve.Field
		if ve.Registry != "" {
			e.body.Registry = ve.Registry
		}
		if ve.ID != "" {
			e.body.ID = ve.ID
		}
	case errors.Is(err, errAuth):
		e.status = http.StatusUnauthorized
	case errors.Is(err, errSlowBody):
		e.status = http.StatusRequestTimeout
	case errors.As(err, &mb):
		e.status = http.StatusRequestEntityTooLarge
		e.body.Error = "request body larger than the " + strconv.FormatInt(mb.Limit, 10) + " bytes allowed"
	case errors.Is(err, registry.ErrUnknownRegistry), errors.Is(err, registry.ErrNotFound):
		e.status = http.StatusNotFound
	case errors.Is(err, ledger.ErrStaleEpoch):
		// A newer epoch names another writer: this site is fenced.
		e.status = http.StatusConflict
	case errors.Is(err, registry.ErrNotReplicated):
		// Durable here, not acknowledged: the caller may retry the read
		// later; the message says which sites are missing.
		e.status = http.StatusServiceUnavailable
	case errors.Is(err, ledger.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// Nothing was acknowledged; the site recovers by itself once
		// there is room, and the operator needs the path to make it.
		e.status = http.StatusInsufficientStorage
		e.body.Error = "the site's disk is full; nothing was stored, retry later: " + err.Error()
		e.cause = err
	case errors.Is(err, errJournal):
		e.status = http.StatusServiceUnavailable
		e.body.Error = "the site cannot record the request's nonce durably; retry later"
		e.cause = err
	case errors.Is(err, errBusy), errors.Is(err, ledger.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.status = http.StatusServiceUnavailable
	default:
		e.status = http.StatusInternalServerError
		e.body.Error = "internal error; the site's log has the details"
		e.cause = err
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Records are personal data: no cache on the way may keep them.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (g *officialsAPI) fail(w http.ResponseWriter, r *http.Request, err error, reg, id string) {
	e := toHTTP(err, reg, id)
	if e.cause != nil {
		// Server errors are logged with their cause: it can name a record
		// or ledger index, which the home's own operators may see.
		g.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("route", route(r)), slog.String("error", e.cause.Error()))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Chancery-Signature")
	}
	writeJSON(w, e.status, e.body)
}

// reqInfo is filled in as a request goes down the handlers, for the log
// line and metrics written when it comes back.
type reqInfo struct {
	official string
}

type reqInfoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe logs one line per request and feeds Options.Observe. It logs the
// route pattern, not the path: a path holds a record id, and a record id
// is often a person's national number, which is content, not metadata.
func (s *Site) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			ri := RequestInfo{Official: info.official, Method: r.Method, Route: routePattern(r), Registry: r.PathValue("registry"),
				Status: sw.status, Bytes: sw.n, Latency: time.Since(start)}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("official", ri.Official), slog.String("method", ri.Method), slog.String("path", route(r)),
				slog.Int("status", ri.Status), slog.Int64("bytes", ri.Bytes), slog.Duration("latency", ri.Latency))
			s.metrics.observe(ri)
			if s.opts.Observe != nil {
				s.opts.Observe(ri)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// routePattern is the pattern the mux matched, without its method.
func routePattern(r *http.Request) string {
	p := r.Pattern
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// route is what the log shows for a request's path: the matched pattern
// with the registry filled in (registry names are public, in the charter),
// the real path for the public ledger, and nothing for unmatched paths,
// which could hold anything.
func route(r *http.Request) string {
	p := routePattern(r)
	switch {
	case p == "":
		return "(unmatched)"
	case strings.HasPrefix(p, "/ledger/"):
		return r.URL.Path
	}
	if reg := r.PathValue("registry"); reg != "" {
		p = strings.Replace(p, "{registry}", reg, 1)
	}
	return p
}

// handler is an authenticated API handler.
type handler func(w http.ResponseWriter, r *http.Request, o *charter.Official)

// authed wraps h: it authenticates the request, asks the policy, checks
// that the guest's mode allows the action, and, unless h streams its body
// itself, reads the whole body (bounded) so that its digest is checked
// before h sees a byte of it.
func (g *officialsAPI) authed(a Action, stream bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reg := r.PathValue("registry")
		o, err := g.auth.authenticate(r)
		if err != nil {
			g.fail(w, r, err, "", "")
			return
		}
		infoOf(r.Context()).official = o.ID
		if err := g.allow(o, a, reg); err != nil {
			g.fail(w, r, err, reg, "")
			return
		}
		if !stream {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.limits.MaxRequestBytes))
			if err != nil {
				g.fail(w, r, err, reg, "")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h(w, r, o)
	}
}

// allow asks the policy whether o may do a on reg, and checks that the
// guest's mode here allows it: the gate of every API call, and of the
// desk's pages (desk.go), which go through the same one.
func (g *officialsAPI) allow(o *charter.Official, a Action, reg string) error {
	if err := g.policy(o, a, reg); err != nil {
		return newHTTPError(http.StatusForbidden, "", err.Error())
	}
	if a == ActionWrite && g.readOnly {
		return newHTTPError(http.StatusForbidden, "", "this site was activated read-only: writes are refused")
	}
	switch m := g.currentMode(); {
	case m == siteapi.ModeActive:
	case (m == siteapi.ModeDrill || m == siteapi.ModeFenced) && a == ActionRead:
	default:
		return newHTTPError(http.StatusServiceUnavailable, "", "guest is in mode "+string(m)+" at this site: "+string(a)+" refused")
	}
	return nil
}
