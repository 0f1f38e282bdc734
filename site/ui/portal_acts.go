package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The portal's second half: the state's public notices, the citizen's
// inbox, and procedures a citizen starts or consents to. Like the rest,
// every page and form works without JavaScript.

// PortalActs wires the notices, the inbox and the procedures; each nil
// function leaves its page out.
type PortalActs struct {
	// Notices are the state's public notices, newest first (public).
	Notices func(ctx context.Context) ([]Notice, error)
	// Inbox lists the citizen's messages; Message opens one (an access
	// entry).
	Inbox   func(ctx context.Context, v Viewer) ([]MessageRow, error)
	Message func(ctx context.Context, v Viewer, id string) (*MessageView, error)
	// Procedures are those a citizen may start, and the cases that wait
	// for the citizen's consent.
	Procedures func(ctx context.Context, v Viewer) (*ProceduresView, error)
	// Start opens a case of a procedure with the form's input; Consent
	// gives the citizen's consent to a case's step; Case reads a case.
	Start   func(ctx context.Context, v Viewer, procedure string, form url.Values) (string, error)
	Consent func(ctx context.Context, v Viewer, caseID, step string) error
	Case    func(ctx context.Context, v Viewer, id string) (*CitizenCase, error)
}

// Notice is one public notice.
type Notice struct {
	ID, Class, Title, Body, Site string
	Issued                       time.Time
	Index                        uint64
}

// MessageRow is one message in the inbox.
type MessageRow struct {
	ID, From, Subject string
	Sent              time.Time
}

// MessageView is an opened message.
type MessageView struct {
	MessageRow
	Body    string
	AgeBody string // the body, encrypted to the citizen's own age key
}

// ProceduresView is what the procedures page shows.
type ProceduresView struct {
	Forms   []ProcedureForm
	Waiting []Waiting
}

// ProcedureForm is a procedure a citizen may start, as a form.
type ProcedureForm struct {
	ID, Title string
	Fields    []InputField
}

// InputField is one input of a procedure, from its schema.
type InputField struct {
	Name, Label, Hint string
	Type              string // text, number
	Pattern           string
	Required          bool
	Options           []string // an enum: a select
	Value             string   // prefilled: the citizen's own id
	Fixed             bool     // the citizen cannot change it
}

// Waiting is a case waiting for the citizen's consent.
type Waiting struct {
	Case, Title, Step, Starter string
	Opened                     string
	Input                      []Field
}

// CitizenCase is a case as the citizen sees it.
type CitizenCase struct {
	ID, Title, State string
	Input            []Field
	Steps            []Field // step and who did it, when
	Decision         string
}

func (u *UI) actsRoutes() {
	a := u.opts.Portal.Acts
	if a.Notices != nil {
		u.mux.HandleFunc("GET /portal/notices", u.portalNotices)
	}
	if a.Inbox != nil {
		u.mux.HandleFunc("GET /portal/inbox", u.portalInbox)
		u.mux.HandleFunc("GET /portal/inbox/{id}", u.portalMessage)
	}
	if a.Procedures != nil {
		u.mux.HandleFunc("GET /portal/procedures", u.portalProcedures)
		u.mux.HandleFunc("POST /portal/procedures/start", u.portalStartCase)
		u.mux.HandleFunc("POST /portal/procedures/consent", u.portalConsent)
		u.mux.HandleFunc("GET /portal/cases/{id}", u.portalCase)
	}
}

func (u *UI) portalNotices(w http.ResponseWriter, r *http.Request) {
	// Notices are public; a signed-in citizen keeps their navigation.
	v := u.maybeCitizen(r)
	ns, err := u.opts.Portal.Acts.Notices(r.Context())
	if err != nil {
		u.portalProblem(w, r, http.StatusServiceUnavailable, "The notices cannot be shown", err)
		return
	}
	u.renderPortal(w, r, "portal_notices.html", "Notices from the state", v, ns, "")
}

func (u *UI) portalInbox(w http.ResponseWriter, r *http.Request) {
	showCitizen(u, w, r, "portal_inbox.html", "My inbox", "Your inbox cannot be shown", u.opts.Portal.Acts.Inbox)
}

func (u *UI) portalMessage(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok {
		return
	}
	m, err := u.opts.Portal.Acts.Message(r.Context(), v, r.PathValue("id"))
	if err != nil {
		u.portalProblem(w, r, http.StatusNotFound, "No such message", err)
		return
	}
	u.renderPortal(w, r, "portal_message.html", m.Subject, v, m, "")
}

func (u *UI) portalProcedures(w http.ResponseWriter, r *http.Request) {
	showCitizen(u, w, r, "portal_procedures.html", "Start a procedure", "Procedures cannot be shown", u.opts.Portal.Acts.Procedures)
}

func (u *UI) portalStartCase(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok || !u.form(w, r, v.Session) {
		return
	}
	id, err := u.opts.Portal.Acts.Start(r.Context(), v, r.PostForm.Get("procedure"), r.PostForm)
	if err != nil {
		u.portalProblem(w, r, http.StatusBadRequest, "The procedure was not started", fmt.Errorf("%w: go back, correct it and submit again", err))
		return
	}
	http.Redirect(w, r, "/portal/cases/"+url.PathEscape(id), http.StatusSeeOther)
}

func (u *UI) portalConsent(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok || !u.form(w, r, v.Session) {
		return
	}
	c := r.PostForm.Get("case")
	if c == "" {
		u.portalProblem(w, r, http.StatusBadRequest, "No case", errors.New("the form names no case: go back and try again"))
		return
	}
	if err := u.opts.Portal.Acts.Consent(r.Context(), v, c, r.PostForm.Get("step")); err != nil {
		u.portalProblem(w, r, http.StatusBadRequest, "Your consent was not recorded", err)
		return
	}
	http.Redirect(w, r, "/portal/cases/"+url.PathEscape(c), http.StatusSeeOther)
}

func (u *UI) portalCase(w http.ResponseWriter, r *http.Request) {
	v, ok := u.citizen(w, r)
	if !ok {
		return
	}
	c, err := u.opts.Portal.Acts.Case(r.Context(), v, r.PathValue("id"))
	if err != nil {
		u.portalProblem(w, r, http.StatusNotFound, "No such case", err)
		return
	}
	u.renderPortal(w, r, "portal_case.html", c.Title, v, c, "")
}
