package site

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/site/ui"
)

// The desk's case queue and case pages, over the procedures API's own
// methods (guest.Procedures: Queue and Case, each an access entry where
// reads are recorded). An official's key is a file the CLI uses, never
// the browser's: the case page shows the exact command that signs the
// waiting step, and shows the step once it lands.

const deskTime = "2006-01-02 15:04:05 UTC"

// deskCases lists the open cases waiting for a step one of o's roles signs.
func deskCases(ctx context.Context, g *officialsAPI, official string, roles []string) ([]ui.CaseRow, string) {
	p, err := g.procedures()
	if errors.Is(err, guest.ErrNoProcedures) {
		return nil, "This state's charter declares no procedures."
	}
	if err != nil {
		return nil, "The case queue cannot be read here: " + err.Error()
	}
	var out []ui.CaseRow
	for _, role := range roles {
		items, err := p.Queue(ctx, guest.Actor{Official: official}, role)
		if err != nil {
			return out, fmt.Sprintf("The queue of role %s cannot be read: %v", role, err)
		}
		for _, it := range items {
			if slices.ContainsFunc(out, func(c ui.CaseRow) bool { return c.ID == it.Case }) {
				continue
			}
			out = append(out, ui.CaseRow{ID: it.Case, Title: it.Title, Step: it.Step, Role: it.Role, Signatures: it.Signatures, Signed: it.Signed,
				Starter: it.Starter, Opened: openedText(it.Opened)})
		}
	}
	return out, ""
}

func openedText(rfc string) string {
	t, err := time.Parse(time.RFC3339Nano, rfc)
	if err != nil {
		return rfc
	}
	return t.UTC().Format(deskTime)
}

// deskCase reads one case for the viewer, as GET /v1/cases/{case} does.
func (s *Site) deskCase(ctx context.Context, v ui.Viewer, id string) (*ui.CaseView, error) {
	t, o, g, err := s.deskRead(v, procedure.CasesRegistry)
	if err != nil {
		return nil, err
	}
	p, err := g.procedures()
	if err != nil {
		return nil, err
	}
	c, err := p.Case(ctx, guest.Actor{Official: o.ID}, id)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	cv := &ui.CaseView{ID: c.ID, Procedure: c.Procedure, Title: c.Procedure, State: c.State, Starter: c.Starter,
		Opened: c.Opened.UTC().Format(deskTime), Subject: c.Subject}
	cv.Input = deskRecord(&registry.Record{Data: c.Input}).Fields
	for _, st := range c.Steps {
		by := st.Official
		if by == "" {
			by = "the citizen " + st.Citizen
		}
		cv.Steps = append(cv.Steps, ui.CaseStep{Step: st.Step, By: by, At: st.At.UTC().Format(deskTime)})
	}
	pr, ok := p.Lookup(c.Procedure)
	if ok {
		cv.Title = pr.Title
		if st, waiting := procedure.Waiting(pr, c); waiting {
			cv.Waiting, cv.Role, cv.Signatures, cv.Signed = st.ID, st.Role, st.Signatures, procedure.Signed(c, st.ID)
			signed := slices.ContainsFunc(c.Steps, func(r procedure.StepRecord) bool { return r.Step == st.ID && r.Official == o.ID })
			if st.Role != "" && o.HasRole(st.Role) && !signed {
				// --step and --subject make the signature the one for what
				// this page showed: the CLI signs nothing if the case has
				// moved on or its subject differs.
				cv.Command = fmt.Sprintf("chancery case sign %s --step %s --subject %s --site %s --official %s", c.ID, st.ID, c.Subject, t.Site(), o.ID)
			}
		}
	}
	if d := c.Decision; d != nil {
		cv.Decision = fmt.Sprintf("Decided %s: %s.", d.At.UTC().Format(deskTime), d.Output)
		for _, e := range d.Effects {
			cv.Effects = append(cv.Effects, "wrote "+e.Registry+" / "+e.ID)
		}
	}
	return cv, nil
}
