package site

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/siteapi"
)

// The officials' procedures API (docs/procedures.md): routes over
// guest.Procedures. Requests are authenticated like every API call;
// what an official may do on a case is the procedure's to say (the roles
// of its starters and steps), so the site's registry policy is asked only
// for a read. A refusal writes nothing and names the field; reads of a
// case (get, queue, payment file) are access entries where reads are
// recorded.

func (g *officialsAPI) mountProcedures(mux *http.ServeMux, prefix string) {
	const c = "/cases/{case}"
	mux.Handle("GET "+prefix+"/procedures", g.authed(ActionRead, false, g.listProcedures))
	mux.Handle("POST "+prefix+"/cases", g.authed(ActionRead, false, g.startCase))
	mux.Handle("GET "+prefix+c, g.authed(ActionRead, false, g.getCase))
	mux.Handle("POST "+prefix+c+"/steps", g.authed(ActionRead, false, g.submitStep))
	mux.Handle("GET "+prefix+"/queue", g.authed(ActionRead, false, g.queue))
	mux.Handle("GET "+prefix+c+"/payment-file", g.authed(ActionRead, false, g.paymentFile))
	mux.Handle("GET "+prefix+c+"/approval", g.authed(ActionRead, false, g.approval))
	mux.Handle("POST "+prefix+c+"/payment-file/check", g.authed(ActionRead, true, g.checkPaymentFile))
}

// procs returns the guest's procedures, or answers the request with why
// there are none.
func (g *officialsAPI) procs(w http.ResponseWriter, r *http.Request) (*guest.Procedures, bool) {
	p, err := g.procedures()
	if err != nil {
		g.failCase(w, r, err, "")
		return nil, false
	}
	return p, true
}

// failCase answers a procedures request's error with its status: a
// refusal is the caller's to fix and names its field; the rest are
// mapped as registry errors are.
func (g *officialsAPI) failCase(w http.ResponseWriter, r *http.Request, err error, caseID string) {
	var rf *procedure.Refusal
	switch {
	case errors.As(err, &rf):
		status := http.StatusBadRequest
		switch {
		case rf.Field == "case" && rf.Reason == "no such case":
			status = http.StatusNotFound
		case rf.Field == "step" || (rf.Field == "" && rf.Step != ""), rf.Field == "procedure" && rf.Case != "":
			status = http.StatusConflict // out of turn, decided, amended since: the case's state refuses it
		case rf.Field == "sig", rf.Field == "official", rf.Field == "starter", rf.Field == "citizen":
			status = http.StatusForbidden
		}
		field := rf.Field
		if field == "" && rf.Step != "" {
			field = "step"
		}
		err = &httpError{status: status, body: siteapi.ErrorBody{Error: rf.Error(), Field: field, Registry: procedure.CasesRegistry, ID: rf.Case}}
	case errors.Is(err, guest.ErrNoProcedures):
		err = newHTTPError(http.StatusNotFound, "", err.Error())
	case errors.Is(err, guest.ErrNotWritable):
		err = newHTTPError(http.StatusServiceUnavailable, "", err.Error())
	case errors.Is(err, guest.ErrNotAllowed):
		err = newHTTPError(http.StatusForbidden, "", err.Error())
	case errors.Is(err, procedure.ErrDigestMismatch):
		err = newHTTPError(http.StatusUnprocessableEntity, "file", err.Error())
	}
	g.fail(w, r, err, procedure.CasesRegistry, caseID)
}

func (g *officialsAPI) caseResponse(c *procedure.Case, p *guest.Procedures) siteapi.CaseResponse {
	out := siteapi.CaseResponse{Guest: g.local.Charter.Guest.ID, Case: c, Version: c.Version, Index: c.Index}
	if pr, ok := p.Lookup(c.Procedure); ok {
		if st, waiting := procedure.Waiting(pr, c); waiting {
			out.Waiting = &st
		}
	}
	return out
}

func (g *officialsAPI) listProcedures(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, siteapi.ProceduresResponse{Guest: g.local.Charter.Guest.ID, Procedures: p.List()})
}

func (g *officialsAPI) startCase(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	var req siteapi.StartCaseRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		g.failCase(w, r, newHTTPError(http.StatusBadRequest, "", "request body: "+err.Error()), "")
		return
	}
	if dec.More() {
		g.failCase(w, r, newHTTPError(http.StatusBadRequest, "", "request body: more than one JSON value"), "")
		return
	}
	c, err := p.Start(r.Context(), guest.Actor{Official: o.ID}, req.Procedure, req.Input)
	if err != nil {
		g.failCase(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusCreated, g.caseResponse(c, p))
}

func (g *officialsAPI) submitStep(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	id := r.PathValue("case")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	sub, err := procedure.DecodeSubmission(body)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	if sub.Case != id {
		g.failCase(w, r, &procedure.Refusal{Case: id, Field: "submission.case", Reason: "names case " + sub.Case + ", posted to case " + id}, id)
		return
	}
	c, err := p.Submit(r.Context(), guest.Actor{Official: o.ID}, sub)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	writeJSON(w, http.StatusOK, g.caseResponse(c, p))
}

func (g *officialsAPI) getCase(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	id := r.PathValue("case")
	c, err := p.Case(r.Context(), guest.Actor{Official: o.ID}, id)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	writeJSON(w, http.StatusOK, g.caseResponse(c, p))
}

func (g *officialsAPI) queue(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	role := r.URL.Query().Get("role")
	items, err := p.Queue(r.Context(), guest.Actor{Official: o.ID}, role)
	if err != nil {
		g.failCase(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, siteapi.QueueResponse{Role: role, Cases: items})
}

func (g *officialsAPI) paymentFile(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	id := r.PathValue("case")
	file, a, err := p.PaymentFile(r.Context(), guest.Actor{Official: o.ID}, id)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(file)))
	h.Set("Content-Disposition", `attachment; filename="`+id+`.pain.001.xml"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Chancery-Payment-Digest", procedure.Digest(file))
	state := "awaiting-approval"
	if a != nil {
		state = "approved"
	}
	h.Set("Chancery-Payment-State", state)
	w.WriteHeader(http.StatusOK)
	w.Write(file)
}

func (g *officialsAPI) approval(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	id := r.PathValue("case")
	a, err := p.Approval(r.Context(), id)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (g *officialsAPI) checkPaymentFile(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	p, ok := g.procs(w, r)
	if !ok {
		return
	}
	id := r.PathValue("case")
	file, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.limits.MaxBlobBytes))
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	a, err := p.CheckPaymentFile(r.Context(), id, file)
	if err != nil {
		g.failCase(w, r, err, id)
		return
	}
	writeJSON(w, http.StatusOK, siteapi.CheckResponse{Approved: true, Digest: procedure.Digest(file), Approval: a})
}
