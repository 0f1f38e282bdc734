package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// PageDesk is the officials' desk: search the records the viewer's role
// may read, the orders waiting for signatures, the case queue.
const PageDesk Page = "desk"

// Desk is what the officials' desk shows one official.
type Desk struct {
	Official string
	Roles    []string
	// Registries are those the official's role may read here, with the
	// fields each can be searched by; empty with NotServed set when the
	// guest's registries are not served at this site.
	Registries []DeskRegistry
	NotServed  string
	// Orders are continuity orders waiting for signatures at this site.
	Orders []PendingOrder
	// OrdersHow says how an order comes to wait here.
	OrdersHow string
	// Cases are the open cases waiting for a step one of the official's
	// roles signs (desk_cases.go); CasesNote says why there are none to
	// list, if it is not that none waits.
	Cases     []CaseRow
	CasesNote string
}

// DeskRegistry is one registry the official may search.
type DeskRegistry struct {
	Name  string
	Index []string // the index fields; "id" always works too
}

// DeskQuery is one search: a record by id, or records by an index field.
type DeskQuery struct {
	Registry string
	Field    string // "id", or an index field of Registry
	Value    string
}

// DeskRecord is one record found, its fields in the record's order.
type DeskRecord struct {
	Registry string
	ID       string
	Version  uint64
	Fields   []DeskField
}

// DeskField is one top-level field of a record, its value as text.
type DeskField struct{ Name, Value string }

// PendingOrder is a continuity order an official left at the site for the
// others to sign: who signed, who may still, and what the quorum lacks.
type PendingOrder struct {
	ID      string
	Summary string // the order in words: action, site, epoch, reason
	Expires string
	Signed  []string
	Refused []string // signatures that do not count, with why
	Missing string   // what the quorum still needs, "" when met
	// Command is the exact command the viewer runs to sign it, with the
	// file the desk serves at Download.
	Command  string
	Download string
	MaySign  bool // the viewer's signature would count and is not there yet
}

// deskSearch is the desk page with a search's outcome.
type deskSearch struct {
	*Desk
	Query    DeskQuery
	Searched bool
	Results  []DeskRecord
	Error    string
}

func (u *UI) mountDesk() {
	if u.opts.Desk == nil {
		return
	}
	u.mux.HandleFunc("GET /ui/desk", u.desk)
	if u.opts.DeskSearch != nil {
		u.mux.HandleFunc("POST /ui/desk/search", u.deskSearch)
	}
	if u.opts.DeskCase != nil {
		u.mux.HandleFunc("GET /ui/desk/cases/{case}", u.deskCase)
	}
	if u.opts.DeskOrder != nil {
		u.mux.HandleFunc("GET /ui/desk/orders/{id}", u.deskOrder)
	}
}

func (u *UI) deskPage(w http.ResponseWriter, r *http.Request) (Viewer, *Desk, bool) {
	v, ok := u.authorize(w, r, PageDesk)
	if !ok {
		return v, nil, false
	}
	d, err := u.opts.Desk(r.Context(), v)
	if err != nil {
		u.problem(w, r, http.StatusServiceUnavailable, "The desk cannot be shown", fmt.Errorf("%w; try again in a moment", err))
		return v, nil, false
	}
	return v, d, true
}

func (u *UI) desk(w http.ResponseWriter, r *http.Request) {
	v, d, ok := u.deskPage(w, r)
	if !ok {
		return
	}
	u.render(w, r, "desk.html", "Officials' desk", v, &deskSearch{Desk: d}, "")
}

// deskSearch answers the search form. A search is a read of records, so
// it is a POST with the form's CSRF token: a link elsewhere cannot make an
// official's browser read (and record an access entry) in their name.
func (u *UI) deskSearch(w http.ResponseWriter, r *http.Request) {
	v, d, ok := u.deskPage(w, r)
	if !ok {
		return
	}
	if !u.readForm(w, r, v) {
		return
	}
	q := DeskQuery{Registry: r.PostForm.Get("registry"), Field: strings.TrimSpace(r.PostForm.Get("field")), Value: strings.TrimSpace(r.PostForm.Get("value"))}
	s := &deskSearch{Desk: d, Query: q, Searched: true}
	switch {
	case q.Registry == "" || q.Value == "":
		s.Error = "Choose a registry and say what to look for."
	case q.Field == "":
		s.Error = "Say which field to search: id, or one of the registry's index fields."
	default:
		recs, err := u.opts.DeskSearch(r.Context(), v, q)
		if err != nil {
			s.Error = err.Error()
		}
		s.Results = recs
	}
	code := http.StatusOK
	if s.Error != "" {
		code = http.StatusUnprocessableEntity
	}
	w.WriteHeader(code)
	u.render(w, r, "desk.html", "Officials' desk", v, s, "")
}

// deskOrder serves the file of an order waiting for signatures, for the
// official to sign with `chancery order sign`.
func (u *UI) deskOrder(w http.ResponseWriter, r *http.Request) {
	v, ok := u.authorize(w, r, PageDesk)
	if !ok {
		return
	}
	b, err := u.opts.DeskOrder(r.Context(), v, r.PathValue("id"))
	if err != nil {
		u.problem(w, r, http.StatusNotFound, "No such order", errors.Join(err, errors.New("go back to the desk: the order may have been submitted or have expired")))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+r.PathValue("id")+`.order"`)
	w.Write(b)
}

// DeskHooks are the officials' desk's hooks in Options.
type DeskHooks struct {
	// Desk gathers the desk's figures for the viewer; nil leaves the page out.
	Desk func(ctx context.Context, v Viewer) (*Desk, error)
	// DeskSearch reads records for the viewer through the API's own read
	// path (its policy and its access entries).
	DeskSearch func(ctx context.Context, v Viewer, q DeskQuery) ([]DeskRecord, error)
	// DeskCase reads one case for the viewer, through the procedures API's
	// read (an access entry).
	DeskCase func(ctx context.Context, v Viewer, id string) (*CaseView, error)
	// DeskOrder returns the file of an order waiting for signatures.
	DeskOrder func(ctx context.Context, v Viewer, id string) ([]byte, error)
}
