package procedure

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
)

// ErrRefused is wrapped by every Refusal.
var ErrRefused = errors.New("refused")

// Refusal is a submission refused before anything is written: the ledger
// holds nothing of it. It names the case, step and field concerned.
type Refusal struct {
	Case      string
	Procedure string
	Step      string
	Field     string
	Reason    string
}

func (r *Refusal) Error() string {
	var parts []string
	if r.Procedure != "" {
		parts = append(parts, "procedure "+r.Procedure)
	}
	if r.Case != "" {
		parts = append(parts, "case "+r.Case)
	}
	if r.Step != "" {
		parts = append(parts, "step "+r.Step)
	}
	where := strings.Join(parts, " ")
	if where != "" {
		where += ": "
	}
	if r.Field != "" {
		where += r.Field + ": "
	}
	return "refused: " + where + r.Reason
}

// Is makes errors.Is(err, ErrRefused) true for a Refusal.
func (r *Refusal) Is(target error) bool { return target == ErrRefused }

// Case states.
const (
	StateOpen    = "open"
	StateDecided = "decided"
)

// Case is a case as its record in the cases registry holds it. Every
// version of the record is one act: the opening, each signature or
// consent, and the decision, which lands in one ledger batch with the
// effects (the case's version first, then the effects in declared order).
type Case struct {
	ID            string          `json:"case_id"`
	Procedure     string          `json:"procedure"`
	ProcedureHash string          `json:"procedure_hash"`
	State         string          `json:"state"`
	Starter       string          `json:"starter"`
	Opened        time.Time       `json:"opened"`
	Input         json.RawMessage `json:"input"`
	Subject       string          `json:"subject"`
	Payment       *PaymentRecord  `json:"payment,omitempty"`
	Steps         []StepRecord    `json:"steps"`
	Decision      *Decision       `json:"decision,omitempty"`

	// From the registry, not the record's data.
	Version uint64 `json:"-"`
	Index   uint64 `json:"-"`
}

// PaymentRecord is what a payment run's case records of its file; Digest
// is the file's SHA-256, the subject every approval signs.
type PaymentRecord struct {
	MsgID   string `json:"msg_id"`
	Digest  string `json:"digest"`
	NbOfTxs int    `json:"nb_of_txs"`
	CtrlSum string `json:"ctrl_sum"`
	AsOf    uint64 `json:"as_of"`
	File    string `json:"file"` // the attachment's name
}

// StepRecord is one signature or consent.
type StepRecord struct {
	Step     string    `json:"step"`
	Official string    `json:"official,omitempty"`
	Sig      []byte    `json:"sig,omitempty"`
	Citizen  string    `json:"citizen,omitempty"`
	At       time.Time `json:"at"`
}

// Decision is the end of a case.
type Decision struct {
	At      time.Time       `json:"at"`
	Effects []EffectRef     `json:"effects"`
	Output  string          `json:"output"`
	Extract *ExtractRequest `json:"extract,omitempty"`
}

// EffectRef names a record an effect wrote.
type EffectRef struct {
	Registry string `json:"registry"`
	ID       string `json:"id"`
}

// ExtractRequest is the output of an extract procedure: the extract
// service certifies the record for the requester.
type ExtractRequest struct {
	Case      string `json:"case"`
	Registry  string `json:"registry"`
	ID        string `json:"id"`
	Requester string `json:"requester"`
}

// Options configure an Engine.
type Options struct {
	Charter    *charter.Charter
	Registries *registry.Registries
	// Procedures are the declared procedures; default: the charter's
	// services.procedures. New checks them (compiling their patterns), so
	// a document is not handed to New while another engine uses it.
	Procedures *Document
	// Log gives a payment run the ledger index it selects as of.
	Log *ledger.Log
	Now func() time.Time
}

// Engine runs cases at the writer site.
type Engine struct {
	opts Options
	doc  *Document
	// A case's acts are read, checked and written one at a time; cases
	// do not wait for each other (a shared stripe would hold one case's
	// act behind another's durable write).
	mu    sync.Mutex
	locks map[string]*caseLock
	// open caches the latest version of each open case this engine wrote,
	// so that a step does not read, prove and unseal the case's ledger
	// entry again. A cached case is used only while the registry's index
	// still names the very version (ledger index) cached.
	open map[string]cachedCase
}

type caseLock struct {
	mu   sync.Mutex
	refs int
}

type cachedCase struct {
	c    Case
	atts []registry.Attachment
}

// maxCachedCases bounds the cache of open cases; past it, cases are read
// from the ledger.
const maxCachedCases = 1 << 16

// New checks the options and the procedures against the charter.
func New(opts Options) (*Engine, error) {
	if opts.Charter == nil || opts.Registries == nil {
		return nil, errors.New("procedure engine: charter and registries are required")
	}
	if _, ok := opts.Charter.Registry(CasesRegistry); !ok {
		return nil, fmt.Errorf("procedure engine: charter %s v%d declares no %s registry", opts.Charter.Guest.ID, opts.Charter.Version, CasesRegistry)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	doc := opts.Procedures
	if doc == nil {
		var err error
		if doc, err = FromCharter(opts.Charter); err != nil {
			return nil, fmt.Errorf("procedure engine: %w", err)
		}
	} else if err := doc.Check(opts.Charter); err != nil {
		return nil, fmt.Errorf("procedure engine: %w", err)
	}
	return &Engine{opts: opts, doc: doc, locks: map[string]*caseLock{}, open: map[string]cachedCase{}}, nil
}

// Procedures returns the declared procedures.
func (e *Engine) Procedures() *Document { return e.doc }

// StartRequest opens a case. Exactly one of Official and Citizen is set,
// by the caller from its authentication (the official's session, the
// citizen's sign-in), never from the request body.
type StartRequest struct {
	Procedure string
	Input     json.RawMessage
	Official  string
	Citizen   string
}

// lock takes case id's lock and returns its release.
func (e *Engine) lock(id string) func() {
	e.mu.Lock()
	l := e.locks[id]
	if l == nil {
		l = &caseLock{}
		e.locks[id] = l
	}
	l.refs++
	e.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		e.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(e.locks, id)
		}
		e.mu.Unlock()
	}
}

// Start opens a case. A procedure without steps is decided at once, the
// opening, the decision and the effects landing as one batch.
func (e *Engine) Start(ctx context.Context, req StartRequest) (*Case, error) {
	p, ok := e.doc.Lookup(req.Procedure)
	if !ok {
		return nil, &Refusal{Field: "procedure", Reason: fmt.Sprintf("%q is not a declared procedure", abbreviate(req.Procedure))}
	}
	refuse := func(field, format string, args ...any) error {
		return &Refusal{Procedure: p.ID, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	input, err := p.Input.ValidateJSON(req.Input)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, refuse(fe.Path, "%v", fe.Err)
		}
		return nil, refuse("input", "%v", err)
	}
	inMap := input.(map[string]any)
	var starter string
	switch {
	case req.Official != "" && req.Citizen != "":
		return nil, refuse("starter", "an official or a citizen opens a case, not both")
	case req.Official != "":
		o, ok := e.opts.Charter.Official(req.Official)
		if !ok {
			return nil, refuse("starter", "%q is not an official of the charter", abbreviate(req.Official))
		}
		if !slices.ContainsFunc(p.Start.Roles, o.HasRole) {
			return nil, refuse("starter", "official %s holds none of the roles that may start it (%s)", o.ID, strings.Join(p.Start.Roles, ", "))
		}
		starter = "official:" + o.ID
	case req.Citizen != "":
		if !p.Start.Citizen {
			return nil, refuse("starter", "a citizen may not start it")
		}
		if f := p.Start.CitizenField; f != "" && inMap[f] != req.Citizen {
			return nil, refuse("input."+f, "a citizen opens this case only for themself")
		}
		starter = "citizen:" + req.Citizen
	default:
		return nil, refuse("starter", "no authenticated official or citizen")
	}
	canonInput, err := canonicalJSON(input)
	if err != nil {
		return nil, refuse("input", "%v", err)
	}
	// The case record is one ledger entry with its steps; escapes can
	// make the encoded input larger than the submission.
	if len(canonInput) > maxInputSize {
		return nil, refuse("input", "%d bytes once encoded, at most %d", len(canonInput), maxInputSize)
	}
	id, err := newCaseID()
	if err != nil {
		return nil, fmt.Errorf("procedure %s: %w", p.ID, err)
	}
	now := e.opts.Now().UTC().Truncate(time.Millisecond)
	c := &Case{
		ID: id, Procedure: p.ID, ProcedureHash: p.Hash(), State: StateOpen, Starter: starter,
		Opened: now, Input: canonInput, Steps: []StepRecord{},
	}
	var atts []registry.Attachment
	if p.Output.Kind == OutputPayment {
		att, err := e.preparePayment(ctx, p, c, inMap, now)
		if err != nil {
			return nil, err
		}
		atts = []registry.Attachment{att}
	} else {
		subj, err := canonicalJSON(struct {
			Procedure string          `json:"procedure_hash"`
			Case      string          `json:"case"`
			Starter   string          `json:"starter"`
			Input     json.RawMessage `json:"input"`
		}{c.ProcedureHash, c.ID, c.Starter, c.Input})
		if err != nil {
			return nil, fmt.Errorf("case %s: subject: %w", id, err)
		}
		sum := sha256.Sum256(subj)
		c.Subject = hex.EncodeToString(sum[:])
	}
	defer e.lock(id)()
	if len(p.Steps) == 0 {
		return e.decide(ctx, p, c, inMap, atts, now)
	}
	return e.write(ctx, c, atts, nil)
}

func newCaseID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("case id: %w", err)
	}
	return "case-" + hex.EncodeToString(b[:]), nil
}

// write lands the case's next version, and with it any effects, as one
// ledger batch.
func (e *Engine) write(ctx context.Context, c *Case, atts []registry.Attachment, effects []registry.Write) (*Case, error) {
	data, err := canonicalJSON(c)
	if err != nil {
		return nil, fmt.Errorf("case %s: encode: %w", c.ID, err)
	}
	ws := append([]registry.Write{{Registry: CasesRegistry, ID: c.ID, Data: data, Attachments: atts}}, effects...)
	recs, err := e.opts.Registries.Apply(ctx, ws)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", c.ID, err)
	}
	c.Version, c.Index = recs[0].Version, recs[0].Index
	e.mu.Lock()
	if c.State == StateDecided {
		delete(e.open, c.ID)
	} else if len(e.open) < maxCachedCases {
		cc := *c
		cc.Steps = slices.Clone(c.Steps)
		e.open[c.ID] = cachedCase{c: cc, atts: atts}
	}
	e.mu.Unlock()
	return c, nil
}

// Case reads a case's latest version.
func (e *Engine) Case(ctx context.Context, id string) (*Case, error) {
	c, _, err := e.load(ctx, id)
	return c, err
}

func (e *Engine) load(ctx context.Context, id string) (*Case, []registry.Attachment, error) {
	if !caseIDRe.MatchString(id) {
		return nil, nil, &Refusal{Field: "case", Reason: fmt.Sprintf("%q is not a case id", abbreviate(id))}
	}
	e.mu.Lock()
	cc, ok := e.open[id]
	e.mu.Unlock()
	if ok {
		if h, err := e.opts.Registries.History(ctx, CasesRegistry, id); err == nil && len(h) > 0 && h[len(h)-1].Index == cc.c.Index {
			c := cc.c
			c.Steps = slices.Clone(cc.c.Steps)
			return &c, cc.atts, nil
		}
	}
	rec, err := e.opts.Registries.Get(ctx, CasesRegistry, id, registry.AsOf{})
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil, &Refusal{Case: id, Field: "case", Reason: "no such case"}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("case %s: %w", id, err)
	}
	var c Case
	if err := json.Unmarshal(rec.Data, &c); err != nil || c.ID != id {
		return nil, nil, fmt.Errorf("case %s version %d: record does not decode as a case", id, rec.Version)
	}
	c.Version, c.Index = rec.Version, rec.Index
	return &c, rec.Attachments, nil
}

// Advance applies one official's signature or one citizen's consent to
// the case's current step. When it completes the last step, the decision
// and every effect land in the same ledger batch as the step. A refusal
// writes nothing.
func (e *Engine) Advance(ctx context.Context, sub *Submission) (*Case, error) {
	if sub == nil {
		return nil, &Refusal{Field: "submission", Reason: "none"}
	}
	if !caseIDRe.MatchString(sub.Case) {
		return nil, &Refusal{Field: "case", Reason: fmt.Sprintf("%q is not a case id", abbreviate(sub.Case))}
	}
	defer e.lock(sub.Case)()
	c, atts, err := e.load(ctx, sub.Case)
	if err != nil {
		return nil, err
	}
	refuse := func(field, format string, args ...any) error {
		return &Refusal{Case: c.ID, Procedure: c.Procedure, Step: sub.Step, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.State == StateDecided {
		return nil, refuse("", "the case was decided at %s; it takes no more steps", c.Decision.At.Format(time.RFC3339))
	}
	p, ok := e.doc.Lookup(c.Procedure)
	if !ok || p.Hash() != c.ProcedureHash {
		return nil, refuse("procedure", "procedure %s was amended or withdrawn since the case opened; open a new case", c.Procedure)
	}
	cur, done := currentStep(p, c)
	if done {
		return nil, refuse("", "every step is complete") // cannot happen: the decision lands with the last step
	}
	if sub.Step != cur.ID {
		if slices.ContainsFunc(p.Steps, func(s Step) bool { return s.ID == sub.Step }) {
			return nil, refuse("step", "the case waits for step %s", cur.ID)
		}
		return nil, refuse("step", "not a step of procedure %s", p.ID)
	}
	var input map[string]any
	var v any
	if err := decodeStrict(c.Input, &v); err != nil {
		return nil, fmt.Errorf("case %s: recorded input: %w", c.ID, err)
	}
	input, _ = v.(map[string]any)
	now := e.opts.Now().UTC().Truncate(time.Millisecond)
	rec := StepRecord{Step: cur.ID, At: now}
	if cur.Role != "" {
		if sub.Official == "" || sub.Citizen != "" {
			return nil, refuse("official", "step %s is signed by an official holding role %s", cur.ID, cur.Role)
		}
		claim := StepClaim{Guest: e.opts.Charter.Guest.ID, Case: c.ID, Procedure: p.ID, Step: cur.ID, Subject: c.Subject, Official: sub.Official}
		o, err := verifyStep(e.opts.Charter, claim, sub.Sig)
		if err != nil {
			return nil, refuse("sig", "%v", err)
		}
		if !o.HasRole(cur.Role) {
			return nil, refuse("official", "official %s does not hold role %s (roles %s)", o.ID, cur.Role, strings.Join(o.Roles, ", "))
		}
		for _, s := range c.Steps {
			if s.Step == cur.ID && s.Official == o.ID {
				return nil, refuse("official", "official %s has already signed this step", o.ID)
			}
		}
		rec.Official, rec.Sig = o.ID, sub.Sig
	} else {
		want, _ := input[cur.Citizen].(string)
		if sub.Citizen == "" || sub.Citizen != want {
			return nil, refuse("citizen", "step %s is the consent of the person named in input.%s, signed in", cur.ID, cur.Citizen)
		}
		rec.Citizen = sub.Citizen
	}
	c.Steps = append(c.Steps, rec)
	if _, done := currentStep(p, c); done {
		return e.decide(ctx, p, c, input, atts, now)
	}
	return e.write(ctx, c, atts, nil)
}

// currentStep is the first step not yet complete.
func currentStep(p *Procedure, c *Case) (Step, bool) {
	for _, s := range p.Steps {
		if s.Citizen != "" {
			if !slices.ContainsFunc(c.Steps, func(r StepRecord) bool { return r.Step == s.ID }) {
				return s, false
			}
			continue
		}
		n := 0
		seen := map[string]bool{}
		for _, r := range c.Steps {
			if r.Step == s.ID && !seen[r.Official] {
				seen[r.Official] = true
				n++
			}
		}
		if n < s.Signatures {
			return s, false
		}
	}
	return Step{}, true
}

// decide renders the effects and output and lands them with the case's
// decided version.
func (e *Engine) decide(ctx context.Context, p *Procedure, c *Case, input map[string]any, atts []registry.Attachment, now time.Time) (*Case, error) {
	vs := &vars{input: input, caseID: c.ID, starter: c.Starter, date: now.Format(time.DateOnly), procedure: p.ID}
	d := &Decision{At: now, Effects: []EffectRef{}, Output: p.Output.Kind}
	var ws []registry.Write
	for i, ef := range p.Effects {
		w, err := e.effect(ctx, vs, ef)
		if err != nil {
			return nil, &Refusal{Case: c.ID, Procedure: p.ID, Field: fmt.Sprintf("effects[%d]", i), Reason: err.Error()}
		}
		ws = append(ws, w)
		d.Effects = append(d.Effects, EffectRef{Registry: w.Registry, ID: w.ID})
	}
	if x := p.Output.Extract; x != nil {
		id, err := expand(x.ID, vs.lookup)
		if err != nil || id == "" {
			return nil, &Refusal{Case: c.ID, Procedure: p.ID, Field: "output.extract.id", Reason: fmt.Sprintf("renders no record id (%v)", err)}
		}
		d.Extract = &ExtractRequest{Case: c.ID, Registry: x.Registry, ID: id, Requester: c.Starter}
	}
	c.State, c.Decision = StateDecided, d
	out, err := e.write(ctx, c, atts, ws)
	if err != nil {
		c.State, c.Decision = StateOpen, nil
		return nil, err
	}
	return out, nil
}

// effect renders one effect into a record write.
func (e *Engine) effect(ctx context.Context, vs *vars, ef Effect) (registry.Write, error) {
	id, err := expand(ef.ID, vs.lookup)
	if err != nil {
		return registry.Write{}, fmt.Errorf("id: %w", err)
	}
	if id == "" {
		return registry.Write{}, errors.New("id: renders empty")
	}
	rendered, err := vs.renderFields(map[string]any(ef.Fields))
	if err != nil {
		return registry.Write{}, fmt.Errorf("%s record %s: fields.%w", ef.Registry, id, err)
	}
	fields := rendered.(map[string]any)
	for k, v := range fields {
		if v == nil {
			delete(fields, k) // an optional input left out writes no field
		}
	}
	if ef.Merge {
		cur, err := e.opts.Registries.Get(ctx, ef.Registry, id, registry.AsOf{})
		if err != nil {
			return registry.Write{}, fmt.Errorf("%s record %s: merge: %w", ef.Registry, id, err)
		}
		var old map[string]any
		dec := json.NewDecoder(bytes.NewReader(cur.Data))
		dec.UseNumber()
		if err := dec.Decode(&old); err != nil {
			return registry.Write{}, fmt.Errorf("%s record %s: merge: the record is not a JSON object", ef.Registry, id)
		}
		for k, v := range fields {
			old[k] = v
		}
		fields = old
	}
	data, err := canonicalJSON(fields)
	if err != nil {
		return registry.Write{}, fmt.Errorf("%s record %s: %w", ef.Registry, id, err)
	}
	return registry.Write{Registry: ef.Registry, ID: id, Data: data}, nil
}

// preparePayment selects the beneficiaries as of the ledger's head,
// builds the pain.001 file, stores it sealed as the case's attachment and
// makes its digest the case's subject.
func (e *Engine) preparePayment(ctx context.Context, p *Procedure, c *Case, input map[string]any, now time.Time) (registry.Attachment, error) {
	ps := p.Output.Payment
	if e.opts.Log == nil {
		return registry.Attachment{}, fmt.Errorf("procedure %s: a payment run needs the ledger (Options.Log)", p.ID)
	}
	size := e.opts.Log.Size()
	if size == 0 {
		return registry.Attachment{}, &Refusal{Procedure: p.ID, Field: "output.payment.registry", Reason: "the ledger is empty"}
	}
	asOf := size - 1
	if n, ok := input[ps.AsOfField].(json.Number); ok && ps.AsOfField != "" {
		want, err := n.Int64()
		if err != nil || want < 0 || uint64(want) > asOf {
			return registry.Attachment{}, &Refusal{Procedure: p.ID, Field: "input." + ps.AsOfField, Reason: fmt.Sprintf("ledger index %s is not in the ledger (last index %d)", n, asOf)}
		}
		asOf = uint64(want)
	}
	bens, err := e.selectBeneficiaries(ctx, ps, asOf)
	if err != nil {
		return registry.Attachment{}, &Refusal{Procedure: p.ID, Field: "output.payment", Reason: err.Error()}
	}
	vs := &vars{input: input, caseID: c.ID, starter: c.Starter, date: now.Format(time.DateOnly), procedure: p.ID}
	remit, err := expand(ps.Remittance, vs.lookup)
	if err != nil {
		return registry.Attachment{}, &Refusal{Procedure: p.ID, Field: "output.payment.remittance", Reason: err.Error()}
	}
	initiator := e.opts.Charter.Guest.Name
	if initiator == "" {
		initiator = e.opts.Charter.Guest.ID
	}
	run := &PaymentRun{
		MsgID: "C" + strings.TrimPrefix(c.ID, "case-"), Created: now,
		ExecutionDate: input[ps.DateField].(string), Initiator: initiator,
		DebtorName: ps.Debtor.Name, DebtorIBAN: ps.Debtor.IBAN, DebtorBIC: ps.Debtor.BIC,
		Currency: ps.Currency, Remittance: remit, Beneficiaries: bens,
	}
	file, err := BuildPain001(run)
	if err != nil {
		return registry.Attachment{}, &Refusal{Procedure: p.ID, Field: "output.payment", Reason: err.Error()}
	}
	var sum int64
	for _, b := range bens {
		sum += b.Amount
	}
	name := run.MsgID + ".pain.001.xml"
	c.Payment = &PaymentRecord{MsgID: run.MsgID, Digest: Digest(file), NbOfTxs: len(bens), CtrlSum: formatAmount(sum), AsOf: asOf, File: name}
	c.Subject = c.Payment.Digest
	ref, err := e.opts.Registries.PutBlob(ctx, CasesRegistry, bytes.NewReader(file))
	if err != nil {
		return registry.Attachment{}, fmt.Errorf("case %s: store payment file: %w", c.ID, err)
	}
	return registry.Attachment{Name: name, Size: int64(len(file)), Ref: ref}, nil
}

// selectBeneficiaries returns, sorted by record id, the records of the
// payment registry whose select field had the select value in their
// version as of ledger index asOf. The registry's plaintext index holds
// only latest versions, so the selection reads every record's version as
// of the index (registry.ScanAsOf): a pensioner who left the programme or
// died after the index is still paid for the month the index closes.
func (e *Engine) selectBeneficiaries(ctx context.Context, ps *PaymentSpec, asOf uint64) ([]Beneficiary, error) {
	var out []Beneficiary
	err := e.opts.Registries.ScanAsOf(ctx, ps.Registry, registry.AsOf{Index: &asOf}, func(rec *registry.Record) error {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(rec.Data))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("%s record %s: not a JSON object", ps.Registry, rec.ID)
		}
		if v := m[ps.Select.Field]; v != ps.Select.Value && v != json.Number(ps.Select.Value) {
			return nil
		}
		str := func(f string) (string, error) {
			s, ok := m[f].(string)
			if !ok {
				return "", fmt.Errorf("%s record %s: %s: want a string", ps.Registry, rec.ID, f)
			}
			return s, nil
		}
		name, err := str(ps.NameField)
		if err != nil {
			return err
		}
		iban, err := str(ps.IBANField)
		if err != nil {
			return err
		}
		amt, err := str(ps.AmountField)
		if err != nil {
			return err
		}
		cents, err := ParseAmount(amt)
		if err != nil {
			return fmt.Errorf("%s record %s: %s: %w", ps.Registry, rec.ID, ps.AmountField, err)
		}
		out = append(out, Beneficiary{ID: rec.ID, Name: name, IBAN: iban, Amount: cents})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select from %s as of ledger index %d: %w", ps.Registry, asOf, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Approval returns the approval a bank receives with the payment file of
// a decided payment case, read from the ledger.
func (e *Engine) Approval(ctx context.Context, caseID string) (*Approval, error) {
	c, err := e.Case(ctx, caseID)
	if err != nil {
		return nil, err
	}
	if c.Payment == nil {
		return nil, fmt.Errorf("case %s: not a payment run", caseID)
	}
	if c.State != StateDecided {
		return nil, fmt.Errorf("case %s: not approved yet", caseID)
	}
	a := &Approval{Guest: e.opts.Charter.Guest.ID, Case: c.ID, Procedure: c.Procedure, Digest: c.Payment.Digest,
		MsgID: c.Payment.MsgID, NbOfTxs: c.Payment.NbOfTxs, CtrlSum: c.Payment.CtrlSum, Index: c.Index}
	for _, s := range c.Steps {
		i := slices.IndexFunc(a.Steps, func(sa StepApproval) bool { return sa.Step == s.Step })
		if i < 0 {
			a.Steps = append(a.Steps, StepApproval{Step: s.Step})
			i = len(a.Steps) - 1
		}
		a.Steps[i].Signatures = append(a.Steps[i].Signatures, StepSignature{Official: s.Official, Sig: s.Sig})
	}
	return a, nil
}

// PaymentFile returns the pain.001 file of a payment case.
func (e *Engine) PaymentFile(ctx context.Context, caseID string) ([]byte, error) {
	c, atts, err := e.load(ctx, caseID)
	if err != nil {
		return nil, err
	}
	if c.Payment == nil || len(atts) != 1 {
		return nil, fmt.Errorf("case %s: not a payment run", caseID)
	}
	var buf bytes.Buffer
	if err := e.opts.Registries.GetBlob(ctx, CasesRegistry, atts[0].Ref, &buf); err != nil {
		return nil, fmt.Errorf("case %s: payment file: %w", caseID, err)
	}
	if Digest(buf.Bytes()) != c.Payment.Digest {
		return nil, fmt.Errorf("case %s: stored payment file: %w", caseID, ErrDigestMismatch)
	}
	return buf.Bytes(), nil
}

// CheckPaymentFile is the site's answer to a bank asking whether file is
// the one approved in case caseID: the digest recorded in the ledger and
// the approvals' signatures, verified against the charter.
func (e *Engine) CheckPaymentFile(ctx context.Context, caseID string, file []byte) error {
	a, err := e.Approval(ctx, caseID)
	if err != nil {
		return err
	}
	return VerifyPaymentFile(e.opts.Charter, file, a)
}

// VerifyCase checks a case record against the charter whose procedures it
// ran under, without the site: every official's signature verifies under
// the charter's key over the case's subject, each signer holds the step's
// role and signs a step once, each citizen consent is by the person the
// step names, and a decided case has every step complete. It is the check
// an auditor runs over cases read from the ledger.
func VerifyCase(c *charter.Charter, doc *Document, k *Case) error {
	if c == nil || doc == nil || k == nil {
		return errors.New("verify case: no charter, procedures or case")
	}
	p, ok := doc.Lookup(k.Procedure)
	if !ok || p.Hash() != k.ProcedureHash {
		return fmt.Errorf("verify case %s: procedure %s (hash %s) is not declared in charter v%d", k.ID, abbreviate(k.Procedure), abbreviate(k.ProcedureHash), c.Version)
	}
	var v any
	if err := decodeStrict(k.Input, &v); err != nil {
		return fmt.Errorf("verify case %s: input: %w", k.ID, err)
	}
	if err := p.Input.Validate("input", v); err != nil {
		return fmt.Errorf("verify case %s: %w", k.ID, err)
	}
	input, _ := v.(map[string]any)
	signed := map[string]bool{}
	for i, r := range k.Steps {
		at := slices.IndexFunc(p.Steps, func(s Step) bool { return s.ID == r.Step })
		if at < 0 {
			return fmt.Errorf("verify case %s: steps[%d]: %q is not a step of %s", k.ID, i, abbreviate(r.Step), p.ID)
		}
		st := p.Steps[at]
		if st.Citizen != "" {
			if want, _ := input[st.Citizen].(string); r.Citizen == "" || r.Citizen != want {
				return fmt.Errorf("verify case %s: steps[%d] (%s): consent by %q, the step names input.%s", k.ID, i, st.ID, abbreviate(r.Citizen), st.Citizen)
			}
			continue
		}
		claim := StepClaim{Guest: c.Guest.ID, Case: k.ID, Procedure: p.ID, Step: st.ID, Subject: k.Subject, Official: r.Official}
		o, err := verifyStep(c, claim, r.Sig)
		if err != nil {
			return fmt.Errorf("verify case %s: steps[%d] (%s): %w", k.ID, i, st.ID, err)
		}
		if !o.HasRole(st.Role) {
			return fmt.Errorf("verify case %s: steps[%d] (%s): official %s does not hold role %s", k.ID, i, st.ID, o.ID, st.Role)
		}
		if signed[st.ID+"\x00"+o.ID] {
			return fmt.Errorf("verify case %s: steps[%d] (%s): official %s signed twice", k.ID, i, st.ID, o.ID)
		}
		signed[st.ID+"\x00"+o.ID] = true
	}
	_, done := currentStep(p, k)
	switch {
	case k.State == StateDecided && !done:
		return fmt.Errorf("verify case %s: decided with steps incomplete", k.ID)
	case k.State == StateDecided && k.Decision == nil:
		return fmt.Errorf("verify case %s: decided without a decision", k.ID)
	case k.State == StateOpen && (done && len(p.Steps) > 0 || k.Decision != nil):
		return fmt.Errorf("verify case %s: open with every step complete or a decision", k.ID)
	case k.State != StateOpen && k.State != StateDecided:
		return fmt.Errorf("verify case %s: state %q", k.ID, abbreviate(k.State))
	}
	return nil
}
