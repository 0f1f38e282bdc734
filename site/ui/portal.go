package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The citizen portal: pages under /portal/ on the state's issuer name,
// where a citizen signs in through the state's own OpenID Connect
// provider (with a passkey, or with an eID key), sees their records and
// who read them, and gets certified extracts. The site passes the
// functions (Portal); the package renders, sets the cookies and checks
// the forms' CSRF tokens.
//
// Every citizen flow works with JavaScript off except the passkey
// ceremony, which is WebAuthn and has no form equivalent: portal.js runs
// it, and with script off the page says to use the eID instead.

// PagePortal is any page of the citizen portal, for Authorize: it must
// admit only a citizen's session.
const PagePortal Page = "portal"

// FlowCookie binds a sign-in in progress to the browser that began it,
// so a code cannot be injected into someone else's browser (login CSRF).
const FlowCookie = "__Host-chancery-portal-flow"

// Portal wires the citizen portal to a site.
type Portal struct {
	// Begin starts a sign-in: an authorization request of the portal's
	// client, and its eID challenge.
	Begin func(ctx context.Context) (*SignIn, error)
	// EID answers the flow's challenge with the citizen's certificate
	// and signature, and returns where the browser goes next (the
	// provider's authorization callback, which sends it back with a code).
	EID func(ctx context.Context, flow string, a EIDAnswer) (string, error)
	// Finish redeems the code the provider sent back (the callback's
	// query) for the flow, and opens a citizen session: its id and how
	// long it lives.
	Finish func(ctx context.Context, flow string, q url.Values) (string, time.Duration, error)
	// SignOut ends the session.
	SignOut func(session string)
	// Records are the citizen's own records, each read an access entry.
	Records func(ctx context.Context, v Viewer) (*MyRecords, error)
	// Tracker is who read the citizen's records, and why.
	Tracker func(ctx context.Context, v Viewer) ([]TrackRow, error)
	// Extract issues a certified extract of one of the citizen's records,
	// certifying fields, and returns its id for Issued.
	Extract func(ctx context.Context, v Viewer, registry, id string, fields []string) (string, error)
	// Issued is an extract issued to this session.
	Issued func(ctx context.Context, v Viewer, id string) (*IssuedExtract, error)
	// Passkey runs a step ("begin" or "finish") of registering a passkey
	// for the signed-in citizen, and returns the provider's JSON answer.
	Passkey func(ctx context.Context, v Viewer, step, ceremony string, body io.Reader) ([]byte, error)
	// Acts are the notices, the inbox and the procedures (portal_acts.go).
	Acts PortalActs
}

// CSRFHeader carries the CSRF token of the passkey script's calls.
const CSRFHeader = "X-CSRF-Token"

// SignIn is a sign-in in progress.
type SignIn struct {
	Flow        string    // the flow's id, kept in FlowCookie
	Issuer      string    // the state's issuer
	AuthRequest string    // the provider's authorization request id
	Challenge   string    // the eID challenge (base64url)
	Message     []byte    // the exact bytes the eID key signs
	Expires     time.Time // when the challenge expires
	Passkey     bool      // passkeys can be used at this origin
	Error       string    // why the last attempt failed
}

// MessageHex is the message to sign in hex, for the command line.
func (s *SignIn) MessageHex() string { return fmt.Sprintf("%x", s.Message) }

// EIDAnswer is what a citizen's eID tool produced for a challenge.
type EIDAnswer struct {
	Challenge   string
	Certificate string // PEM, or base64 DER
	Signature   string // base64
}

// MyRecords are the citizen's records.
type MyRecords struct {
	Person  string
	Name    string
	Records []RecordView
}

// RecordView is one record as the citizen sees it.
type RecordView struct {
	Registry string
	ID       string
	Version  uint64
	Fields   []Field
}

// Field is one field of a record, its value in words.
type Field struct{ Name, Value string }

// TrackRow is one read of the citizen's records.
type TrackRow struct {
	When     time.Time
	Site     string
	Registry string
	Kind     string
	Reader   string // official, citizen, client
	Who      string // "self" for the citizen
	Purpose  string
}

// IssuedExtract is a certified extract issued to the citizen.
type IssuedExtract struct {
	ID       string
	Registry string
	Record   string
	Version  uint64
	Fields   []string
	Issued   time.Time
	QRText   string
	QRPNG    []byte
	PDF      []byte
}

func (u *UI) portalRoutes() {
	static, _ := fs.Sub(staticFS, "static")
	u.mux.Handle("GET /portal/static/", http.StripPrefix("/portal/static/", http.FileServerFS(static)))
	u.mux.HandleFunc("GET /portal/{$}", u.portalStart)
	u.mux.HandleFunc("GET /portal/signin", u.portalSignIn)
	u.mux.HandleFunc("POST /portal/signin/eid", u.portalEID)
	u.mux.HandleFunc("GET /portal/callback", u.portalCallback)
	u.mux.HandleFunc("POST /portal/signout", u.portalSignOut)
	u.mux.HandleFunc("GET /portal/records", u.portalRecords)
	u.mux.HandleFunc("GET /portal/tracker", u.portalTracker)
	u.mux.HandleFunc("POST /portal/extracts", u.portalExtract)
	u.mux.HandleFunc("GET /portal/extracts/{id}", u.portalIssued)
	u.mux.HandleFunc("GET /portal/extracts/{id}/{file}", u.portalIssuedFile)
	u.mux.HandleFunc("POST /portal/passkeys/{step}", u.portalPasskey)
	u.actsRoutes()
}

// portalPasskey relays the passkey registration ceremony of portal.js to
// the provider with the session's token; the script proves the page is
// the portal's with the session's CSRF token in a header.
func (u *UI) portalPasskey(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok {
		return
	}
	if err := u.csrf.check(v.Session, r.Header.Get(CSRFHeader)); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	step := r.PathValue("step")
	if step != "begin" && step != "finish" {
		http.NotFound(w, r)
		return
	}
	out, err := u.opts.Portal.Passkey(r.Context(), v, step, r.URL.Query().Get("session"), http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

func (u *UI) renderPortal(w http.ResponseWriter, r *http.Request, name, title string, v Viewer, data any, flash string) {
	p := u.page(title, v, data, flash)
	p.Static = "/portal/static"
	p.Home = "/portal/"
	a := u.opts.Portal.Acts
	p.Nav = navFor(r, []navLink{
		{"/portal/records", "My records", v.Session != ""},
		{"/portal/tracker", "Who read my records", v.Session != ""},
		{"/portal/inbox", "My inbox", v.Session != "" && a.Inbox != nil},
		{"/portal/procedures", "Start a procedure", v.Session != "" && a.Procedures != nil},
		{"/portal/notices", "Notices", a.Notices != nil},
	})
	u.execute(w, name, p)
}

func (u *UI) portalProblem(w http.ResponseWriter, r *http.Request, code int, title string, err error) {
	w.WriteHeader(code)
	u.renderPortal(w, r, "problem.html", title, Viewer{}, err.Error(), "")
}

// citizen is the signed-in citizen, or a refusal that says to sign in.
func (u *UI) citizen(w http.ResponseWriter, r *http.Request) (Viewer, bool) {
	if u.opts.Authorize == nil {
		u.portalProblem(w, r, http.StatusForbidden, "Not available", errors.New("this site serves no portal"))
		return Viewer{}, false
	}
	v, err := u.opts.Authorize(r, PagePortal)
	if err != nil {
		u.portalProblem(w, r, http.StatusForbidden, "Sign in to see this page", fmt.Errorf("%w: sign in at /portal/signin", err))
		return Viewer{}, false
	}
	return v, true
}

// maybeCitizen is the signed-in citizen, or nobody, on a public page.
func (u *UI) maybeCitizen(r *http.Request) Viewer {
	if u.opts.Authorize == nil {
		return Viewer{}
	}
	v, err := u.opts.Authorize(r, PagePortal)
	if err != nil {
		return Viewer{}
	}
	return v
}

// form parses a posted form and checks its CSRF token against binding
// (the session, or the sign-in flow before there is one).
func (u *UI) form(w http.ResponseWriter, r *http.Request, binding string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		u.portalProblem(w, r, http.StatusBadRequest, "The form could not be read", fmt.Errorf("%w: go back and submit it again", err))
		return false
	}
	if err := u.csrf.check(binding, r.PostForm.Get("csrf")); err != nil {
		u.portalProblem(w, r, http.StatusForbidden, "The form was refused", err)
		return false
	}
	return true
}

func (u *UI) portalStart(w http.ResponseWriter, r *http.Request) {
	if v := u.maybeCitizen(r); v.Session != "" {
		http.Redirect(w, r, "/portal/records", http.StatusSeeOther)
		return
	}
	u.renderPortal(w, r, "portal_start.html", "Your records, in the state's name", Viewer{}, nil, "")
}

// flowBinding is what a sign-in form's CSRF token is bound to.
func flowBinding(flow string) string {
	if flow == "" {
		return ""
	}
	return "flow\x00" + flow
}

func (u *UI) beginSignIn(w http.ResponseWriter, r *http.Request, failed string) {
	s, err := u.opts.Portal.Begin(r.Context())
	if err != nil {
		u.portalProblem(w, r, http.StatusServiceUnavailable, "Sign-in is not available", fmt.Errorf("%w; try again in a moment", err))
		return
	}
	s.Error = failed
	http.SetCookie(w, &http.Cookie{Name: FlowCookie, Value: s.Flow, Path: "/", MaxAge: int(time.Until(s.Expires).Seconds()) + 60,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	if failed != "" {
		w.WriteHeader(http.StatusUnauthorized)
	}
	p := u.page("Sign in", Viewer{}, s, "")
	p.Static, p.Home = "/portal/static", "/portal/"
	p.CSRF = u.csrf.token(flowBinding(s.Flow))
	u.execute(w, "portal_signin.html", p)
}

func (u *UI) portalSignIn(w http.ResponseWriter, r *http.Request) { u.beginSignIn(w, r, "") }

func flowOf(r *http.Request) string {
	c, err := r.Cookie(FlowCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

func (u *UI) portalEID(w http.ResponseWriter, r *http.Request) {
	flow := flowOf(r)
	if !u.form(w, r, flowBinding(flow)) {
		return
	}
	f := r.PostForm
	a := EIDAnswer{Challenge: f.Get("challenge"), Certificate: strings.TrimSpace(f.Get("certificate")), Signature: strings.TrimSpace(f.Get("signature"))}
	if a.Certificate == "" || a.Signature == "" {
		u.beginSignIn(w, r, "Paste both your certificate and the signature your eID tool made, then try again with this new challenge.")
		return
	}
	next, err := u.opts.Portal.EID(r.Context(), flow, a)
	if err != nil {
		u.beginSignIn(w, r, "Your eID was not accepted: "+err.Error()+". Sign the new challenge below.")
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) portalCallback(w http.ResponseWriter, r *http.Request) {
	flow := flowOf(r)
	http.SetCookie(w, &http.Cookie{Name: FlowCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	id, ttl, err := u.opts.Portal.Finish(r.Context(), flow, r.URL.Query())
	if err != nil {
		u.portalProblem(w, r, http.StatusUnauthorized, "You are not signed in", fmt.Errorf("%w: sign in again at /portal/signin", err))
		return
	}
	SetSession(w, id, int(ttl/time.Second))
	http.Redirect(w, r, "/portal/records", http.StatusSeeOther)
}

func (u *UI) portalSignOut(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok || !u.form(w, r, v.Session) {
		return
	}
	u.opts.Portal.SignOut(v.Session)
	SetSession(w, "", -1)
	http.Redirect(w, r, "/portal/", http.StatusSeeOther)
}

func (u *UI) portalRecords(w http.ResponseWriter, r *http.Request) {
	showCitizen(u, w, r, "portal_records.html", "My records", "Your records cannot be shown", u.opts.Portal.Records)
}

// trackerPage is how many reads the data tracker shows at once.
const trackerPage = 50

// TrackerView is one page of the data tracker.
type TrackerView struct {
	Rows              []TrackRow
	Total, From, Upto int
	Newer, Older      int // the from of the pages before and after; -1 for none
}

func (u *UI) portalTracker(w http.ResponseWriter, r *http.Request) {
	showCitizen(u, w, r, "portal_tracker.html", "Who read my records", "The data tracker cannot be shown", func(ctx context.Context, v Viewer) (*TrackerView, error) {
		rows, err := u.opts.Portal.Tracker(ctx, v)
		if err != nil {
			return nil, err
		}
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		from = max(0, min(from, len(rows)))
		tv := &TrackerView{Total: len(rows), From: from, Upto: min(from+trackerPage, len(rows)), Newer: -1, Older: -1}
		tv.Rows = rows[from:tv.Upto]
		if from > 0 {
			tv.Newer = max(0, from-trackerPage)
		}
		if tv.Upto < len(rows) {
			tv.Older = tv.Upto
		}
		return tv, nil
	})
}

// showCitizen serves a signed-in citizen's page from what get returns,
// or a problem titled fail.
func showCitizen[T any](u *UI, w http.ResponseWriter, r *http.Request, tpl, title, fail string, get func(context.Context, Viewer) (T, error)) {
	v, ok := u.citizen(w, r)
	if !ok {
		return
	}
	d, err := get(r.Context(), v)
	if err != nil {
		u.portalProblem(w, r, http.StatusServiceUnavailable, fail, err)
		return
	}
	u.renderPortal(w, r, tpl, title, v, d, "")
}

func (u *UI) portalExtract(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok || !u.form(w, r, v.Session) {
		return
	}
	f := r.PostForm
	if len(f["field"]) == 0 {
		u.portalProblem(w, r, http.StatusBadRequest, "Choose what the extract certifies", errors.New("tick at least one field of the record, then ask again"))
		return
	}
	id, err := u.opts.Portal.Extract(r.Context(), v, f.Get("registry"), f.Get("record"), f["field"])
	if err != nil {
		u.portalProblem(w, r, http.StatusForbidden, "The extract was not issued", err)
		return
	}
	// Post/redirect/get: a reload shows the extract, it does not issue another.
	http.Redirect(w, r, "/portal/extracts/"+url.PathEscape(id), http.StatusSeeOther)
}

func (u *UI) issued(w http.ResponseWriter, r *http.Request) (Viewer, *IssuedExtract, bool) {
	v, ok := u.citizen(w, r)
	if !ok {
		return v, nil, false
	}
	x, err := u.opts.Portal.Issued(r.Context(), v, r.PathValue("id"))
	if err != nil {
		u.portalProblem(w, r, http.StatusNotFound, "No such extract", err)
		return v, nil, false
	}
	return v, x, true
}

func (u *UI) portalIssued(w http.ResponseWriter, r *http.Request) {
	v, x, ok := u.issued(w, r)
	if !ok {
		return
	}
	u.renderPortal(w, r, "portal_extract.html", "Your certified extract", v, x, "")
}

func (u *UI) portalIssuedFile(w http.ResponseWriter, r *http.Request) {
	_, x, ok := u.issued(w, r)
	if !ok {
		return
	}
	name := x.Registry + "-" + x.Record
	switch r.PathValue("file") {
	case "extract.pdf":
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `attachment; filename="`+safeName(name)+`.pdf"`)
		w.Write(x.PDF)
	case "qr.png":
		w.Header().Set("Content-Type", "image/png")
		if r.URL.Query().Has("download") {
			w.Header().Set("Content-Disposition", `attachment; filename="`+safeName(name)+`-qr.png"`)
		}
		w.Write(x.QRPNG)
	default:
		http.NotFound(w, r)
	}
}

// safeName keeps a file name to letters, digits, '-' and '_'.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
