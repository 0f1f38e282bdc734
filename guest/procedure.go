package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/siteapi"
)

// The guest's declared procedures (services/procedure, docs/procedures.md)
// at this site: the officials' API and the citizen portal both call the
// methods of *Procedures, which the guest hands out while it is unsealed.
// The caller authenticates who acts (an official's signed request, a
// citizen's sign-in) and says so in an Actor; nothing here reads an
// identity from a request body. Acts (start, step) are written only where
// the guest is active and writable; reads of a case are access entries,
// as record reads are, wherever reads are recorded.

// ErrNoProcedures is returned while the guest's charter declares no
// procedures (no services.procedures, or no cases registry).
var ErrNoProcedures = errors.New("the charter declares no procedures")

// ErrNotWritable refuses an act where the guest is not active and
// writable: a case's steps are written only by the site that writes.
var ErrNotWritable = errors.New("cases are acted on where the guest is active and writable")

// ErrNotAllowed refuses a read of a case by someone it does not concern:
// a citizen reads only the cases they started or are named in.
var ErrNotAllowed = errors.New("not allowed")

// Actor is who acts on or reads a case, as the caller authenticated them:
// exactly one of Official (the official's id, from a signed request) and
// Citizen (the person id the sign-in vouches for).
type Actor struct {
	Official string
	Citizen  string
}

func (a Actor) check() error {
	switch {
	case a.Official != "" && a.Citizen != "":
		return &procedure.Refusal{Field: "actor", Reason: "an official or a citizen acts, not both"}
	case a.Official == "" && a.Citizen == "":
		return &procedure.Refusal{Field: "actor", Reason: "no authenticated official or citizen"}
	}
	return nil
}

// QueueItem is one open case waiting for a step a role signs (or, for a
// citizen's queue, the citizen's consent): the wire type itself, so the
// portal and the desk serve what the guest lists.
type QueueItem = siteapi.QueueItem

// Procedures serves the guest's declared procedures over its unsealed
// state. It is valid while that state is (Guest.Procedures hands out a new
// one after an activation or a reseal).
type Procedures struct {
	t      *Guest
	sv     *Served
	engine *procedure.Engine
}

// procedureEngines keeps one procedure engine per unsealed state: the
// engine caches open cases and serialises each case's acts, so every
// caller at this site must share it.
type procedureEngines struct {
	mu     sync.Mutex
	local  *Local
	engine *procedure.Engine
	err    error
}

// Procedures returns the guest's procedures at this site, or an error
// while the guest is sealed (naming the guest and its mode) or its
// charter declares none (ErrNoProcedures).
func (t *Guest) Procedures() (*Procedures, error) {
	sv := t.Served()
	if sv == nil {
		return nil, fmt.Errorf("guest %s is %s at site %s and not unsealed: no case is served", t.id, t.currentMode(), t.site)
	}
	pe := &t.procs
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if pe.local != sv.Local {
		pe.local, pe.engine, pe.err = sv.Local, nil, nil
		if _, ok := sv.Local.Charter.Registry(procedure.CasesRegistry); !ok {
			pe.err = fmt.Errorf("guest %s: %w (no %s registry)", t.id, ErrNoProcedures, procedure.CasesRegistry)
		} else if _, ok := sv.Local.Charter.Services[procedure.ServiceName]; !ok {
			pe.err = fmt.Errorf("guest %s: %w (no services.%s)", t.id, ErrNoProcedures, procedure.ServiceName)
		} else {
			pe.engine, pe.err = procedure.New(procedure.Options{Charter: sv.Local.Charter, Registries: sv.Local.Registries, Log: sv.Local.Log, Now: t.opts.Now})
			if pe.err != nil {
				pe.err = fmt.Errorf("guest %s: %w", t.id, pe.err)
			}
		}
	}
	if pe.err != nil {
		return nil, pe.err
	}
	return &Procedures{t: t, sv: sv, engine: pe.engine}, nil
}

// Engine is the procedure engine underneath, for callers that need the
// library itself (tests, benchmarks).
func (p *Procedures) Engine() *procedure.Engine { return p.engine }

// List returns the charter's declared procedures, in declared order.
func (p *Procedures) List() []*procedure.Procedure {
	return slices.Clone(p.engine.Procedures().Procedures)
}

// Lookup returns one declared procedure.
func (p *Procedures) Lookup(id string) (*procedure.Procedure, bool) {
	return p.engine.Procedures().Lookup(id)
}

func (p *Procedures) writable() error {
	switch m := p.t.currentMode(); {
	case m != siteapi.ModeActive:
		return fmt.Errorf("guest %s at site %s is %s: %w", p.t.id, p.t.site, m, ErrNotWritable)
	case p.sv.ReadOnly:
		return fmt.Errorf("guest %s at site %s was activated read-only: %w", p.t.id, p.t.site, ErrNotWritable)
	}
	return nil
}

// Start opens a case of procedure procID with input (JSON), started by
// actor. A refusal (procedure.ErrRefused) names the field and writes
// nothing.
func (p *Procedures) Start(ctx context.Context, actor Actor, procID string, input json.RawMessage) (*procedure.Case, error) {
	if err := actor.check(); err != nil {
		return nil, err
	}
	if err := p.writable(); err != nil {
		return nil, err
	}
	return p.engine.Start(ctx, procedure.StartRequest{Procedure: procID, Input: input, Official: actor.Official, Citizen: actor.Citizen})
}

// Submit applies one act to a case's current step: an official's
// signature (sub.Official must be the authenticated official: nobody
// submits another's signature, even a valid one) or the signed-in
// citizen's consent (sub.Citizen is set from actor). When it completes
// the last step, the decision and its effects land in one ledger batch.
func (p *Procedures) Submit(ctx context.Context, actor Actor, sub *procedure.Submission) (*procedure.Case, error) {
	if err := actor.check(); err != nil {
		return nil, err
	}
	if sub == nil {
		return nil, &procedure.Refusal{Field: "submission", Reason: "none"}
	}
	s := *sub
	switch {
	case actor.Official != "":
		if s.Official != actor.Official {
			return nil, &procedure.Refusal{Case: s.Case, Step: s.Step, Field: "official", Reason: fmt.Sprintf("the request is authenticated as official %s, the signature names %q", actor.Official, s.Official)}
		}
		s.Citizen = ""
	default:
		if s.Official != "" || s.Sig != nil {
			return nil, &procedure.Refusal{Case: s.Case, Step: s.Step, Field: "official", Reason: "a citizen consents signed in; an official's signature is submitted by that official"}
		}
		s.Citizen = actor.Citizen
	}
	if err := p.writable(); err != nil {
		return nil, err
	}
	return p.engine.Advance(ctx, &s)
}

// RunPayment opens a payment run: procID must be a procedure whose output
// is a payment instruction. The case's subject is the SHA-256 of its
// pain.001 file, which the approvers sign with ApprovePayment.
func (p *Procedures) RunPayment(ctx context.Context, actor Actor, procID string, input json.RawMessage) (*procedure.Case, error) {
	if pr, ok := p.Lookup(procID); ok && pr.Output.Kind != procedure.OutputPayment {
		return nil, &procedure.Refusal{Procedure: procID, Field: "procedure", Reason: "not a payment run (its output is " + pr.Output.Kind + ")"}
	}
	return p.Start(ctx, actor, procID, input)
}

// ApprovePayment submits one approver's signature on a payment run; the
// signature that completes the last step approves the file.
func (p *Procedures) ApprovePayment(ctx context.Context, actor Actor, sub *procedure.Submission) (*procedure.Case, error) {
	if sub != nil {
		c, err := p.engine.Case(ctx, sub.Case)
		if err == nil && c.Payment == nil {
			return nil, &procedure.Refusal{Case: sub.Case, Procedure: c.Procedure, Field: "case", Reason: "not a payment run"}
		}
	}
	return p.Submit(ctx, actor, sub)
}

// Case reads a case's latest version for actor. The read is an access
// entry where reads are recorded, appended before the case is returned;
// a citizen reads only a case they started or a step of which names them.
func (p *Procedures) Case(ctx context.Context, actor Actor, id string) (*procedure.Case, error) {
	if err := actor.check(); err != nil {
		return nil, err
	}
	c, err := p.engine.Case(ctx, id)
	if err != nil {
		// A lookup that finds nothing is recorded too, as for records.
		var rf *procedure.Refusal
		if errors.As(err, &rf) && rf.Reason == "no such case" && actor.Citizen == "" {
			if rerr := p.record(ctx, actor, &Read{Kind: continuity.AccessRecord, Registry: procedure.CasesRegistry, ID: id}); rerr != nil {
				return nil, rerr
			}
		}
		return nil, err
	}
	if actor.Citizen != "" && !p.concerns(c, actor.Citizen) {
		return nil, fmt.Errorf("case %s: citizen: %w: it neither was started by nor names the person signed in", id, ErrNotAllowed)
	}
	rec := &registry.Record{Registry: procedure.CasesRegistry, ID: c.ID, VersionInfo: registry.VersionInfo{Version: c.Version, Index: c.Index}}
	if err := p.record(ctx, actor, &Read{Kind: continuity.AccessRecord, Registry: procedure.CasesRegistry, ID: c.ID, Records: []*registry.Record{rec}}); err != nil {
		return nil, err
	}
	return c, nil
}

// concerns says whether case c concerns person: they started it, or a
// citizen step's input field names them.
func (p *Procedures) concerns(c *procedure.Case, person string) bool {
	if c.Starter == "citizen:"+person {
		return true
	}
	pr, ok := p.Lookup(c.Procedure)
	if !ok {
		return false
	}
	var in map[string]any
	if json.Unmarshal(c.Input, &in) != nil {
		return false
	}
	for _, s := range pr.Steps {
		if s.Citizen != "" && in[s.Citizen] == person {
			return true
		}
	}
	return false
}

// record appends the access entry of a read by actor, where this site
// records reads (Served.RecordsAccess): an official's read as the
// officials' API records it, a citizen's with the person sealed
// (services/access).
func (p *Procedures) record(ctx context.Context, actor Actor, rd *Read) error {
	if !p.sv.RecordsAccess {
		return nil
	}
	if actor.Official != "" {
		if err := p.t.RecordAccess(ctx, actor.Official, rd); err != nil {
			return fmt.Errorf("registry %s: the %s read was not served because its access entry could not be appended to the ledger: %w", rd.Registry, rd.Kind, err)
		}
		return nil
	}
	rc := access.Recorder{Log: p.sv.Local.Log, Keys: p.sv.Local.Keys, Site: p.t.site, Now: p.t.opts.Now}
	a := access.Access{Kind: rd.Kind, Registry: rd.Registry, ID: rd.ID}
	if rd.Kind == continuity.AccessFind {
		a.Field, a.Value = rd.Field, rd.Value
		for _, r := range rd.Records {
			a.Results = append(a.Results, access.Result{ID: r.ID, Version: r.Version})
		}
	} else if len(rd.Records) == 1 {
		a.Version = rd.Records[0].Version
	}
	return rc.Record(ctx, access.Principal{Kind: access.KindCitizen, ID: actor.Citizen, Purpose: "own case"}, a)
}

// Queue lists the open cases waiting for a step that role signs, oldest
// first. For a citizen (role empty), the open cases waiting for that
// citizen's consent. Each procedure's cases are one find of the cases
// registry by procedure, recorded as a find.
func (p *Procedures) Queue(ctx context.Context, actor Actor, role string) ([]QueueItem, error) {
	if err := actor.check(); err != nil {
		return nil, err
	}
	if actor.Citizen != "" && role != "" {
		return nil, &procedure.Refusal{Field: "role", Reason: "a citizen's queue is the cases awaiting their consent; it takes no role"}
	}
	if actor.Official != "" {
		o, ok := p.sv.Local.Charter.Official(actor.Official)
		if !ok {
			return nil, &procedure.Refusal{Field: "official", Reason: fmt.Sprintf("%q is not an official of the charter", actor.Official)}
		}
		if role == "" {
			return nil, &procedure.Refusal{Field: "role", Reason: "required: the role whose queue to list (" + fmt.Sprint(o.Roles) + ")"}
		}
	}
	out := []QueueItem{}
	for _, pr := range p.List() {
		if !slices.ContainsFunc(pr.Steps, func(s procedure.Step) bool {
			return (actor.Official != "" && s.Role == role) || (actor.Citizen != "" && s.Citizen != "")
		}) {
			continue
		}
		recs, err := p.sv.Local.Registries.Find(ctx, procedure.CasesRegistry, "procedure", pr.ID)
		if err != nil {
			return nil, fmt.Errorf("queue %s: cases of procedure %s: %w", role, pr.ID, err)
		}
		var served []*registry.Record
		var items []QueueItem
		for _, rec := range recs {
			var c procedure.Case
			if err := json.Unmarshal(rec.Data, &c); err != nil {
				return nil, fmt.Errorf("queue %s: case record %s version %d does not decode: %w", role, rec.ID, rec.Version, err)
			}
			c.Version, c.Index = rec.Version, rec.Index
			st, waiting := procedure.Waiting(pr, &c)
			if !waiting || c.ProcedureHash != pr.Hash() {
				continue
			}
			if actor.Official != "" && st.Role != role {
				continue
			}
			if actor.Citizen != "" {
				var in map[string]any
				if st.Citizen == "" || json.Unmarshal(c.Input, &in) != nil || in[st.Citizen] != actor.Citizen {
					continue
				}
			}
			served = append(served, rec)
			items = append(items, QueueItem{Case: c.ID, Procedure: pr.ID, Title: pr.Title, Step: st.ID, Role: st.Role, Signatures: st.Signatures,
				Signed: procedure.Signed(&c, st.ID), Starter: c.Starter, Opened: c.Opened.Format("2006-01-02T15:04:05.000Z07:00"), Subject: c.Subject, Version: c.Version})
		}
		// What the caller learns is what is served: the find is recorded
		// with the cases it lists.
		if err := p.record(ctx, actor, &Read{Kind: continuity.AccessFind, Registry: procedure.CasesRegistry, Field: "procedure", Value: pr.ID, Records: served}); err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Opened < out[j].Opened })
	return out, nil
}

// PaymentFile returns a payment run's pain.001 file and, once approved,
// its approval (nil while the run awaits signatures: the approvers fetch
// the file to check what they sign). The read is an access entry.
func (p *Procedures) PaymentFile(ctx context.Context, actor Actor, caseID string) ([]byte, *procedure.Approval, error) {
	c, err := p.Case(ctx, actor, caseID)
	if err != nil {
		return nil, nil, err
	}
	if c.Payment == nil {
		return nil, nil, &procedure.Refusal{Case: caseID, Procedure: c.Procedure, Field: "case", Reason: "not a payment run"}
	}
	file, err := p.engine.PaymentFile(ctx, caseID)
	if err != nil {
		return nil, nil, err
	}
	if c.State != procedure.StateDecided {
		return file, nil, nil
	}
	a, err := p.engine.Approval(ctx, caseID)
	if err != nil {
		return nil, nil, err
	}
	return file, a, nil
}

// Approval returns an approved payment run's approval: what a bank
// checks the file against (procedure.VerifyPaymentFile). It carries no
// personal data (digest, totals, officials' signatures), so it is not an
// access entry. A case that is no payment run, or not approved yet, is
// refused naming it.
func (p *Procedures) Approval(ctx context.Context, caseID string) (*procedure.Approval, error) {
	c, err := p.engine.Case(ctx, caseID)
	if err != nil {
		return nil, err
	}
	if c.Payment == nil {
		return nil, &procedure.Refusal{Case: caseID, Procedure: c.Procedure, Field: "case", Reason: "not a payment run"}
	}
	if c.State != procedure.StateDecided {
		step := ""
		if pr, ok := p.Lookup(c.Procedure); ok {
			if st, waiting := procedure.Waiting(pr, c); waiting {
				step = st.ID
			}
		}
		return nil, &procedure.Refusal{Case: caseID, Procedure: c.Procedure, Step: step, Field: "step", Reason: "the run is not approved yet"}
	}
	return p.engine.Approval(ctx, caseID)
}

// CheckPaymentFile answers a bank asking whether file is the one approved
// in case caseID, with the approval read from the ledger: the file's
// digest is the approved one (else procedure.ErrDigestMismatch) and the
// approvers' signatures verify under the charter. It returns the approval
// it checked against.
func (p *Procedures) CheckPaymentFile(ctx context.Context, caseID string, file []byte) (*procedure.Approval, error) {
	a, err := p.Approval(ctx, caseID)
	if err != nil {
		return nil, err
	}
	return a, procedure.VerifyPaymentFile(p.sv.Local.Charter, file, a)
}
