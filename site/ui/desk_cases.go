package ui

import (
	"fmt"
	"net/http"
)

// CaseRow is one open case waiting for a step the official's role signs.
type CaseRow struct {
	ID         string
	Title      string // the procedure's title
	Step       string
	Role       string
	Signatures int // how many the step needs
	Signed     int // how many it has
	Starter    string
	Opened     string
}

// CaseView is one case as the desk shows it to an official.
type CaseView struct {
	ID        string
	Title     string
	Procedure string
	State     string
	Starter   string
	Opened    string
	Subject   string
	Input     []DeskField
	Steps     []CaseStep
	// Waiting is the step the case waits for, "" once decided.
	Waiting    string
	Role       string
	Signatures int
	Signed     int
	// Command is the exact command the viewer runs to sign the waiting
	// step, when their role signs it and they have not yet.
	Command  string
	Decision string   // the decision in words, once decided
	Effects  []string // the records the decision wrote
}

// CaseStep is one step done.
type CaseStep struct{ Step, By, At string }

func (u *UI) deskCase(w http.ResponseWriter, r *http.Request) {
	v, ok := u.authorize(w, r, PageDesk)
	if !ok {
		return
	}
	c, err := u.opts.DeskCase(r.Context(), v, r.PathValue("case"))
	if err != nil {
		u.problem(w, r, http.StatusNotFound, "The case cannot be shown", fmt.Errorf("%w; go back to the desk's queue", err))
		return
	}
	u.render(w, r, "desk_case.html", "Case "+c.ID, v, c, "")
}
