// Package ui is the web interface every site serves under /ui/: the
// continuity dashboard and the host operator's console, rendered on the
// server from html/template with embedded assets, so there is no build step
// and no CDN, and every page works with JavaScript off (a small script only
// refreshes the dashboard in place).
//
// The package renders; it does not decide. The site passes functions that
// gather each page's figures and one that authorises the viewer, and every
// page's data goes through them, so the pages see exactly what the API
// would show the same person. Without an Authorize function every page is
// refused.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page names a page, for Authorize.
type Page string

// The pages.
const (
	PageIndex     Page = "index"
	PageDashboard Page = "dashboard"
	PageHost      Page = "host"
)

// Viewer is who is looking, as Authorize found.
type Viewer struct {
	Name    string // shown in the header
	Session string // the session id the page's forms are bound to
	Guest   string // the guest whose pages these are
	ID      string // the official's or host's id in the guest's charter
}

// Options wires the pages to a site.
type Options struct {
	// StateName is the guest state's name, shown on every page.
	StateName string
	// Site is the id of the site serving the pages.
	Site string
	// Authorize says whether the request may see page, and as whom. It
	// must fail closed: an error refuses the page with 403 and the error's
	// text, which should say what to do next.
	Authorize func(r *http.Request, page Page) (Viewer, error)
	// Dashboard gathers the continuity dashboard's figures; nil leaves the
	// page out.
	Dashboard func(ctx context.Context, v Viewer) (*Dashboard, error)
	// Host gathers the host console's figures; nil leaves the page out.
	Host func(ctx context.Context, v Viewer) (*HostConsole, error)
	// Suspend serves a notice of suspension on guest, as the operator API
	// does (signed by the host, recorded in the guest's ledger).
	Suspend func(ctx context.Context, guest, reason string) error
	// The officials' desk (desk.go).
	DeskHooks
	// Refresh is how often the dashboard refreshes itself when script
	// runs; 10 s when zero.
	Refresh time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// UI is the pages' handler; mount it at /ui/.
type UI struct {
	opts Options
	tpl  *template.Template
	csrf *csrf
	mux  *http.ServeMux
}

// New parses the embedded templates and builds the handler.
func New(opts Options) (*UI, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tpl, err := template.New("").Funcs(template.FuncMap{
		"ago":    func(t time.Time) string { return ago(opts.Now(), t) },
		"utc":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"secs":   func(s float64) string { return fmt.Sprintf("%.1f s", s) },
		"bytes":  HumanBytes,
		"upper":  strings.ToUpper,
		"pct":    func(a, b int64) string { return pct(a, b) },
		"nonneg": func(v int64) int64 { return max(v, 0) },
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	c, err := newCSRF()
	if err != nil {
		return nil, fmt.Errorf("ui: csrf key: %w", err)
	}
	u := &UI{opts: opts, tpl: tpl, csrf: c, mux: http.NewServeMux()}
	static, _ := fs.Sub(staticFS, "static")
	u.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	u.mux.HandleFunc("GET /ui/{$}", u.index)
	if opts.Dashboard != nil {
		u.mux.HandleFunc("GET /ui/dashboard", u.dashboard)
	}
	if opts.Host != nil {
		u.mux.HandleFunc("GET /ui/host", u.host)
		if opts.Suspend != nil {
			u.mux.HandleFunc("POST /ui/host/suspend", u.suspend)
		}
	}
	u.mountDesk()
	return u, nil
}

// ServeHTTP serves the pages with the security headers on every response.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if strings.HasPrefix(r.URL.Path, "/ui/static/") {
		// Assets are public and immutable for the life of the binary.
		w.Header().Set("Cache-Control", "public, max-age=3600")
	}
	u.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	State     string
	Site      string
	Title     string
	Viewer    Viewer
	CSRF      string
	Generated time.Time
	Nav       []navItem
	Data      any
	Flash     string
	Refresh   int // milliseconds
}

type navItem struct {
	Href, Label string
	Current     bool
}

func (u *UI) authorize(w http.ResponseWriter, r *http.Request, p Page) (Viewer, bool) {
	if u.opts.Authorize == nil {
		u.problem(w, r, http.StatusForbidden, "Not available", errors.New("this site serves no pages: its operator has not configured who may see them"))
		return Viewer{}, false
	}
	v, err := u.opts.Authorize(r, p)
	if err != nil {
		u.problem(w, r, http.StatusForbidden, "You cannot see this page", err)
		return Viewer{}, false
	}
	return v, true
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, name, title string, v Viewer, data any, flash string) {
	p := page{
		State: u.opts.StateName, Site: u.opts.Site, Title: title, Viewer: v,
		CSRF: u.csrf.token(v.Session), Generated: u.opts.Now(), Data: data, Flash: flash,
		Refresh: int(u.opts.Refresh / time.Millisecond),
	}
	for _, n := range []struct {
		href, label string
		on          bool
	}{
		{"/ui/", "Overview", true},
		{"/ui/dashboard", "Continuity dashboard", u.opts.Dashboard != nil},
		{"/ui/desk", "Officials' desk", u.opts.Desk != nil},
		{"/ui/host", "Host console", u.opts.Host != nil},
	} {
		if n.on {
			p.Nav = append(p.Nav, navItem{Href: n.href, Label: n.label, Current: n.href == r.URL.Path})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := u.tpl.ExecuteTemplate(w, name, p); err != nil {
		u.opts.Logger.Error("ui: render", "page", name, "err", err)
	}
}

func (u *UI) problem(w http.ResponseWriter, r *http.Request, code int, title string, err error) {
	w.WriteHeader(code)
	u.render(w, r, "problem.html", title, Viewer{}, err.Error(), "")
}

func (u *UI) index(w http.ResponseWriter, r *http.Request) {
	v, ok := u.authorize(w, r, PageIndex)
	if !ok {
		return
	}
	u.render(w, r, "index.html", "Overview", v, nil, "")
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	v, ok := u.authorize(w, r, PageDashboard)
	if !ok {
		return
	}
	d, err := u.opts.Dashboard(r.Context(), v)
	if err != nil {
		u.problem(w, r, http.StatusServiceUnavailable, "The dashboard cannot be shown", fmt.Errorf("%w; try again in a moment, or run `chancery status --all`", err))
		return
	}
	u.render(w, r, "dashboard.html", "Continuity dashboard", v, d, "")
}

func (u *UI) host(w http.ResponseWriter, r *http.Request) {
	v, ok := u.authorize(w, r, PageHost)
	if !ok {
		return
	}
	h, err := u.opts.Host(r.Context(), v)
	if err != nil {
		u.problem(w, r, http.StatusServiceUnavailable, "The host console cannot be shown", fmt.Errorf("%w; try again in a moment", err))
		return
	}
	// The confirmation names a tenant of this host only, so a crafted link
	// cannot put words on the page.
	flash := ""
	if g := r.URL.Query().Get("served"); g != "" {
		for _, t := range h.Tenants {
			if t.Guest == g {
				flash = "Notice of suspension served on " + g + ". It is recorded in the guest's ledger."
			}
		}
	}
	if u.opts.Suspend == nil && h.SuspendCommand == "" {
		h.SuspendCommand = "chancery operator suspend --help"
	}
	u.render(w, r, "host.html", "Host console", v, h, flash)
}

func (u *UI) suspend(w http.ResponseWriter, r *http.Request) {
	v, ok := u.authorize(w, r, PageHost)
	if !ok {
		return
	}
	if !u.readForm(w, r, v) {
		return
	}
	guest, reason := strings.TrimSpace(r.PostForm.Get("guest")), strings.TrimSpace(r.PostForm.Get("reason"))
	if guest == "" || reason == "" {
		u.problem(w, r, http.StatusBadRequest, "The notice is incomplete", errors.New("a notice of suspension needs the guest and a reason: go back and fill in both fields"))
		return
	}
	if err := u.opts.Suspend(r.Context(), guest, reason); err != nil {
		u.problem(w, r, http.StatusConflict, "The notice was not served", err)
		return
	}
	// Post/redirect/get, so a reload does not serve the notice twice.
	http.Redirect(w, r, "/ui/host?served="+url.QueryEscape(guest), http.StatusSeeOther)
}

// readForm reads a posted form, bounded, and checks its CSRF token
// against the viewer's session; it answers the request if either fails.
func (u *UI) readForm(w http.ResponseWriter, r *http.Request, v Viewer) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		u.problem(w, r, http.StatusBadRequest, "The form could not be read", fmt.Errorf("%w: go back and submit it again", err))
		return false
	}
	if err := u.csrf.check(v.Session, r.PostForm.Get("csrf")); err != nil {
		u.problem(w, r, http.StatusForbidden, "The form was refused", err)
		return false
	}
	return true
}
