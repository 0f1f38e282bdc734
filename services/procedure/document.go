package procedure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/charter"
)

// ServiceName is the charter section the procedures are declared in:
// services.procedures. Declaring them in the charter makes them signed by
// the same quorum as the rest of the agreement, amendable only by the
// amend quorum, and chained and ledgered with every charter version,
// without a second signed-document scheme.
const ServiceName = "procedures"

// CasesRegistry is the registry cases are kept in, as sealed records: a
// host sees a record entry like any other and learns nothing of who asked
// for what. The charter must declare it, with "procedure" as its one
// index field.
const CasesRegistry = "cases"

// Document is the services.procedures section of the charter.
type Document struct {
	Procedures []*Procedure `yaml:"procedures" json:"procedures"`
}

// Procedure is one legal administrative procedure.
type Procedure struct {
	// ID names the procedure in cases and signatures.
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title" json:"title"`
	// Start says who may open a case.
	Start Start `yaml:"start" json:"start"`
	// Input is the schema of the submission; it must be of type object.
	Input *Schema `yaml:"input" json:"input"`
	// Steps are done in order; a procedure without steps decides when the
	// case is opened (it is automatic).
	Steps []Step `yaml:"steps,omitempty" json:"steps,omitempty"`
	// Effects are the record versions the decision writes, together with
	// the case's final version, in one ledger batch.
	Effects []Effect `yaml:"effects,omitempty" json:"effects,omitempty"`
	// Output is what the decision produces besides its effects.
	Output Output `yaml:"output" json:"output"`

	hash string
}

// Start is who may open a case: officials holding one of Roles, and, if
// Citizen is set, an authenticated citizen. When CitizenField is set, the
// citizen must be the person that input field names (a citizen changes
// their own address, not a neighbour's).
type Start struct {
	Roles        []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	Citizen      bool     `yaml:"citizen,omitempty" json:"citizen,omitempty"`
	CitizenField string   `yaml:"citizen_field,omitempty" json:"citizen_field,omitempty"`
}

// Step is one stage of a case. Either Role is set — Signatures distinct
// officials holding Role must sign it — or Citizen is: the name of an
// input field holding the person id of the citizen who must consent,
// authenticated by sign-in.
type Step struct {
	ID         string `yaml:"id" json:"id"`
	Role       string `yaml:"role,omitempty" json:"role,omitempty"`
	Signatures int    `yaml:"signatures,omitempty" json:"signatures,omitempty"`
	Citizen    string `yaml:"citizen,omitempty" json:"citizen,omitempty"`
}

// Effect is one record version a decision writes. ID and every string in
// Fields are templates (see template.go); with Merge the fields are laid
// over the record's latest version, which must exist, instead of
// replacing it.
type Effect struct {
	Registry string         `yaml:"registry" json:"registry"`
	ID       string         `yaml:"id" json:"id"`
	Merge    bool           `yaml:"merge,omitempty" json:"merge,omitempty"`
	Fields   map[string]any `yaml:"fields" json:"fields"`
}

// Output kinds.
const (
	OutputDecision = "decision"
	OutputExtract  = "extract-request"
	OutputPayment  = "payment-instruction"
)

// Output is what a decided case hands on: nothing more than the decision,
// a request for a certified extract (fulfilled by the extract service),
// or a payment instruction (a pain.001 file approved by the steps).
type Output struct {
	Kind    string       `yaml:"kind" json:"kind"`
	Extract *ExtractSpec `yaml:"extract,omitempty" json:"extract,omitempty"`
	Payment *PaymentSpec `yaml:"payment,omitempty" json:"payment,omitempty"`
}

// ExtractSpec names the record to certify; ID is a template.
type ExtractSpec struct {
	Registry string `yaml:"registry" json:"registry"`
	ID       string `yaml:"id" json:"id"`
}

// PaymentSpec says how a payment run selects its beneficiaries and what
// the file says. Beneficiaries are the records of Registry whose field
// Select.Field equals Select.Value in their version as of the run's
// ledger index.
type PaymentSpec struct {
	Registry string `yaml:"registry" json:"registry"`
	Select   struct {
		Field string `yaml:"field" json:"field"`
		Value string `yaml:"value" json:"value"`
	} `yaml:"select" json:"select"`
	// AmountField holds a decimal amount with at most two decimals
	// ("812.50"); NameField the creditor's name; IBANField their IBAN.
	AmountField string `yaml:"amount_field" json:"amount_field"`
	NameField   string `yaml:"name_field" json:"name_field"`
	IBANField   string `yaml:"iban_field" json:"iban_field"`
	Currency    string `yaml:"currency" json:"currency"`
	// Debtor is the state's paying account.
	Debtor struct {
		Name string `yaml:"name" json:"name"`
		IBAN string `yaml:"iban" json:"iban"`
		BIC  string `yaml:"bic" json:"bic"`
	} `yaml:"debtor" json:"debtor"`
	// Remittance is the unstructured remittance text, a template.
	Remittance string `yaml:"remittance,omitempty" json:"remittance,omitempty"`
	// DateField names the input field holding the requested execution
	// date (format date).
	DateField string `yaml:"date_field" json:"date_field"`
	// AsOfField, if set, names an optional integer input field holding the
	// ledger index the beneficiaries are selected as of; without it, or
	// when the submission leaves it out, the ledger's last index.
	AsOfField string `yaml:"as_of_field,omitempty" json:"as_of_field,omitempty"`
}

var idRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

// ParseDocument decodes a procedures document from YAML strictly (an
// unknown field is an error naming it) and checks it against c.
func ParseDocument(data []byte, c *charter.Charter) (*Document, error) {
	var d Document
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("procedures: %w", err)
	}
	if err := d.Check(c); err != nil {
		return nil, err
	}
	return &d, nil
}

// FromCharter reads and checks the procedures c declares in
// services.procedures.
func FromCharter(c *charter.Charter) (*Document, error) {
	var d Document
	ok, err := c.Service(ServiceName, &d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("charter %s v%d declares no procedures (services.%s)", c.Guest.ID, c.Version, ServiceName)
	}
	if err := d.Check(c); err != nil {
		return nil, fmt.Errorf("charter services.%s: %w", ServiceName, err)
	}
	return &d, nil
}

// Lookup returns the procedure with the given id.
func (d *Document) Lookup(id string) (*Procedure, bool) {
	for _, p := range d.Procedures {
		if p.ID == id {
			return p, true
		}
	}
	return nil, false
}

// Check validates the document and compiles its schemas; with a charter,
// it also checks that every role is held by at least one official and
// every registry is declared (a procedure no one can carry out is refused
// when it is declared, not when a citizen needs it).
func (d *Document) Check(c *charter.Charter) error {
	if len(d.Procedures) == 0 {
		return errors.New("procedures: none declared")
	}
	seen := map[string]bool{}
	for i, p := range d.Procedures {
		if p == nil {
			return fmt.Errorf("procedures[%d]: empty", i)
		}
		if err := p.check(c); err != nil {
			return fmt.Errorf("procedures[%d] (%s): %w", i, abbreviate(p.ID), err)
		}
		if seen[p.ID] {
			return fmt.Errorf("procedures[%d].id: %s is declared twice", i, p.ID)
		}
		seen[p.ID] = true
	}
	return nil
}

func (p *Procedure) check(c *charter.Charter) error {
	if !idRe.MatchString(p.ID) {
		return fmt.Errorf("id: %q must be a lowercase name (a-z, 0-9, '-') of at most 64 characters", abbreviate(p.ID))
	}
	if p.Input == nil || p.Input.Type != TypeObject {
		return errors.New("input: the input schema is of type object")
	}
	if err := p.Input.check("input", 0); err != nil {
		return err
	}
	fieldOK := func(name string) bool { _, ok := p.Input.Properties[name]; return ok }
	hasRole := func(role string) bool {
		if c == nil {
			return true
		}
		for _, o := range c.Officials {
			if o.HasRole(role) {
				return true
			}
		}
		return false
	}
	hasRegistry := func(name string) bool {
		if c == nil {
			return true
		}
		_, ok := c.Registry(name)
		return ok
	}
	if len(p.Start.Roles) == 0 && !p.Start.Citizen {
		return errors.New("start: name the roles that may start it, or citizen: true")
	}
	for i, r := range p.Start.Roles {
		if !hasRole(r) {
			return fmt.Errorf("start.roles[%d]: no official of the charter holds role %q", i, abbreviate(r))
		}
	}
	if p.Start.CitizenField != "" && (!p.Start.Citizen || !fieldOK(p.Start.CitizenField)) {
		return fmt.Errorf("start.citizen_field: %q must be an input field, with citizen: true", abbreviate(p.Start.CitizenField))
	}
	steps := map[string]bool{}
	for i, s := range p.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		if !idRe.MatchString(s.ID) {
			return fmt.Errorf("%s.id: %q must be a lowercase name", path, abbreviate(s.ID))
		}
		if steps[s.ID] {
			return fmt.Errorf("%s.id: %s appears twice", path, s.ID)
		}
		steps[s.ID] = true
		switch {
		case s.Role != "" && s.Citizen != "":
			return fmt.Errorf("%s: a step is signed by a role or consented by a citizen, not both", path)
		case s.Role != "":
			if s.Signatures < 1 || s.Signatures > 16 {
				return fmt.Errorf("%s.signatures: %d, want 1 to 16", path, s.Signatures)
			}
			if !hasRole(s.Role) {
				return fmt.Errorf("%s.role: no official of the charter holds role %q", path, abbreviate(s.Role))
			}
			if c != nil {
				n := 0
				for _, o := range c.Officials {
					if o.HasRole(s.Role) {
						n++
					}
				}
				if n < s.Signatures {
					return fmt.Errorf("%s.signatures: %d needed but only %d officials hold role %s", path, s.Signatures, n, s.Role)
				}
			}
		case s.Citizen != "":
			if s.Signatures != 0 {
				return fmt.Errorf("%s.signatures: a citizen's consent is one sign-in, not signatures", path)
			}
			if !fieldOK(s.Citizen) {
				return fmt.Errorf("%s.citizen: %q is not an input field", path, abbreviate(s.Citizen))
			}
		default:
			return fmt.Errorf("%s: name the role that signs it or the input field of the citizen who consents", path)
		}
	}
	for i, e := range p.Effects {
		path := fmt.Sprintf("effects[%d]", i)
		if !hasRegistry(e.Registry) {
			return fmt.Errorf("%s.registry: %q is not a registry of the charter", path, abbreviate(e.Registry))
		}
		if e.Registry == CasesRegistry {
			return fmt.Errorf("%s.registry: a procedure does not write the cases registry itself", path)
		}
		if err := checkTemplate(e.ID, p.Input); err != nil {
			return fmt.Errorf("%s.id: %w", path, err)
		}
		if len(e.Fields) == 0 {
			return fmt.Errorf("%s.fields: an effect writes at least one field", path)
		}
		if err := checkTemplates(e.Fields, p.Input, path+".fields", 0); err != nil {
			return err
		}
	}
	switch p.Output.Kind {
	case OutputDecision:
		if p.Output.Extract != nil || p.Output.Payment != nil {
			return errors.New("output: a decision carries no extract or payment")
		}
	case OutputExtract:
		x := p.Output.Extract
		if x == nil || p.Output.Payment != nil {
			return errors.New("output.extract: an extract request names the registry and id of the record")
		}
		if !hasRegistry(x.Registry) {
			return fmt.Errorf("output.extract.registry: %q is not a registry of the charter", abbreviate(x.Registry))
		}
		if err := checkTemplate(x.ID, p.Input); err != nil {
			return fmt.Errorf("output.extract.id: %w", err)
		}
	case OutputPayment:
		if err := p.checkPayment(hasRegistry); err != nil {
			return err
		}
	default:
		return fmt.Errorf("output.kind: %q is not decision, extract-request or payment-instruction", abbreviate(p.Output.Kind))
	}
	b, err := canonicalJSON(p)
	if err != nil {
		return fmt.Errorf("not representable as JSON: %w", err)
	}
	sum := sha256.Sum256(b)
	p.hash = hex.EncodeToString(sum[:])
	return nil
}

func (p *Procedure) checkPayment(hasRegistry func(string) bool) error {
	ps := p.Output.Payment
	if ps == nil || p.Output.Extract != nil {
		return errors.New("output.payment: a payment instruction declares how it selects and pays")
	}
	if len(p.Steps) == 0 {
		return errors.New("steps: a payment run is approved by officials: declare at least one signed step")
	}
	for i, s := range p.Steps {
		if s.Role == "" {
			return fmt.Errorf("steps[%d]: the steps of a payment run are signed by officials", i)
		}
	}
	if !hasRegistry(ps.Registry) {
		return fmt.Errorf("output.payment.registry: %q is not a registry of the charter", abbreviate(ps.Registry))
	}
	if ps.Select.Field == "" || ps.Select.Value == "" {
		return errors.New("output.payment.select: name the field and value that select beneficiaries")
	}
	for name, f := range map[string]string{"amount_field": ps.AmountField, "name_field": ps.NameField, "iban_field": ps.IBANField} {
		if !fieldNameRe.MatchString(f) {
			return fmt.Errorf("output.payment.%s: %q is not a field name", name, abbreviate(f))
		}
	}
	if !currencyRe.MatchString(ps.Currency) {
		return fmt.Errorf("output.payment.currency: %q is not an ISO 4217 code", abbreviate(ps.Currency))
	}
	if err := checkName(ps.Debtor.Name); err != nil {
		return fmt.Errorf("output.payment.debtor.name: %w", err)
	}
	if err := CheckIBAN(ps.Debtor.IBAN); err != nil {
		return fmt.Errorf("output.payment.debtor.iban: %w", err)
	}
	if err := CheckBIC(ps.Debtor.BIC); err != nil {
		return fmt.Errorf("output.payment.debtor.bic: %w", err)
	}
	ds, ok := p.Input.Properties[ps.DateField]
	if !ok || ds.Type != TypeString || ds.Format != "date" || !contains(p.Input.Required, ps.DateField) {
		return fmt.Errorf("output.payment.date_field: %q must be a required input field of format date", abbreviate(ps.DateField))
	}
	if ps.AsOfField != "" {
		as, ok := p.Input.Properties[ps.AsOfField]
		if !ok || as.Type != TypeInteger || as.Minimum == nil || *as.Minimum < 0 {
			return fmt.Errorf("output.payment.as_of_field: %q must be an input field of type integer with minimum 0", abbreviate(ps.AsOfField))
		}
	}
	if err := checkTemplate(ps.Remittance, p.Input); err != nil {
		return fmt.Errorf("output.payment.remittance: %w", err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Hash is the lowercase hex SHA-256 of the procedure's canonical JSON, set
// by Check. A case records it when it opens and every later step must find
// the same: a procedure amended mid-case does not change under what an
// official already signed for.
func (p *Procedure) Hash() string { return p.hash }
