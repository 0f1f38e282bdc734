package site

import (
	"errors"
	"net/http"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/siteapi"
)

// An auditor's route to a citizen's data tracker: officials the charter
// names in services.access.auditors read who read any citizen's records,
// through the officials' signed API. The auditor's read is itself an
// access entry (of the person record, with the purpose given), sealed
// like any, so the citizen sees in their own tracker that an auditor
// looked, and why.

// mountTracker registers GET <prefix>/tracker/{person}?purpose=.
func (g *officialsAPI) mountTracker(mux *http.ServeMux, prefix string) {
	mux.Handle("GET "+prefix+"/tracker/{person}", g.authed(ActionRead, false, g.auditTracker))
}

func (g *officialsAPI) auditTracker(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	person, purpose := r.PathValue("person"), r.URL.Query().Get("purpose")
	c := g.local.Charter
	var idcfg identity.Config
	ok, err := c.Service(identity.Section, &idcfg)
	if err != nil {
		g.fail(w, r, err, "", "")
		return
	}
	rules, err := access.FromCharter(c)
	if err != nil {
		g.fail(w, r, err, "", "")
		return
	}
	reg := idcfg.PersonRegistry
	switch {
	case !ok:
		g.fail(w, r, newHTTPError(http.StatusNotFound, "", "the charter has no services.identity: no citizen has a data tracker"), "", "")
		return
	case !rules.IsAuditor(o.ID):
		g.fail(w, r, newHTTPError(http.StatusForbidden, "", "official "+o.ID+" is not an auditor named in services.access.auditors: a citizen's data tracker is served to the citizen and the charter's auditors only"), "", "")
		return
	case purpose == "":
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "purpose", "required: why the auditor reads this citizen's tracker (?purpose=...)"), reg, person)
		return
	}
	// An unknown person gets an empty tracker, recorded like any: the
	// answer does not tell whether the person exists.
	var version uint64
	rec, err := g.local.Registries.Get(r.Context(), reg, person, registry.AsOf{})
	switch {
	case err == nil:
		version = rec.Version
	case !errors.Is(err, registry.ErrNotFound):
		g.fail(w, r, err, reg, person)
		return
	}
	rd := &access.Recorder{Log: g.local.Log, Keys: g.local.Keys, Site: g.local.Site}
	p := access.Principal{Kind: access.KindOfficial, ID: o.ID, Purpose: purpose}
	if err := rd.Record(r.Context(), p, access.Access{Kind: continuity.AccessRecord, Registry: reg, ID: person, Version: version}); err != nil {
		g.fail(w, r, &httpError{status: http.StatusServiceUnavailable, cause: err, body: siteapi.ErrorBody{
			Error: "the data tracker was not served because the auditor's access entry could not be appended to the ledger"}}, reg, person)
		return
	}
	owned, err := rules.Owned(r.Context(), g.local.Registries, reg, person)
	if err != nil {
		g.fail(w, r, err, reg, person)
		return
	}
	seen, err := access.Track(r.Context(), g.local.Log, g.local.Keys, person, owned)
	if err != nil {
		g.fail(w, r, err, reg, person)
		return
	}
	out := siteapi.TrackerResponse{Person: person, Reads: make([]siteapi.TrackedRead, len(seen))}
	for i, s := range seen {
		out.Reads[i] = siteapi.TrackedRead(s)
	}
	writeJSON(w, http.StatusOK, out)
}
