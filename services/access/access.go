// Package access holds the rules that say who may read, find and write
// which records at an active site, and the ledger's record of every read
// made under them (access entries), including the citizen's data tracker.
//
// The rules come from the charter's signed section services.access, so
// they change only by the quorum that amends the charter and are the same
// at every site. Three kinds of principal read records:
//
//   - an official, by role: per registry, any of read, find and write;
//   - a citizen, signed in through the identity service: the records
//     linked to their person id (their person record, the parcels and
//     businesses whose link field names them), read and find only;
//   - a relying party, on a citizen's behalf: the citizen's own records in
//     the registries its rule names, and only the claims its rule names.
//
// Everything here is decisions and formats; the HTTP lives in the services
// that use it.
package access

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/chancery-gov/chancery/charter"
)

// Service is the name of the charter section the rules live in.
const Service = "access"

// Actions on a registry.
const (
	Read  = "read"
	Find  = "find"
	Write = "write"
)

// Actions lists every action, in the order the matrix test walks them.
func Actions() []string { return []string{Read, Find, Write} }

// Kinds of principal.
const (
	KindOfficial = "official"
	KindCitizen  = "citizen"
	KindClient   = "client"
)

// ErrDenied is wrapped by every refusal of the rules.
var ErrDenied = errors.New("access denied")

// Config is the charter section services.access.
type Config struct {
	// Auditors are the ids of officials who may read any citizen's data
	// tracker (who read their records, when and why).
	Auditors []string `yaml:"auditors,omitempty"`
	// Officials maps a role to the actions it may take per registry:
	// officials[role][registry] = [read, find, write].
	Officials map[string]map[string][]string `yaml:"officials,omitempty"`
	// Citizens maps a registry to its link field: the indexed field whose
	// value is the person id of the citizen the record belongs to (in the
	// person registry, the person's own id field). A citizen may read and
	// find in these registries the records that name them, and nothing else.
	Citizens map[string]string `yaml:"citizens,omitempty"`
	// Clients are the relying parties' rules, by client id.
	Clients map[string]ClientRule `yaml:"clients,omitempty"`
}

// ClientRule is what a relying party may see of a citizen who signed in to it.
type ClientRule struct {
	// Registries are the citizen registries (keys of Citizens) whose
	// records the client may read with the citizen's token.
	Registries []string `yaml:"registries,omitempty"`
	// Claims are the claims the client may receive (OIDC claim names:
	// sub, name, given_name, family_name, birthdate, ...).
	Claims []string `yaml:"claims,omitempty"`
	// Verify lets the client call the identity verification API
	// (match / no-match).
	Verify bool `yaml:"verify,omitempty"`
}

// Rules are the decoded and checked rules of one charter.
type Rules struct {
	cfg Config
	// official[role][registry] is the set of actions.
	official map[string]map[string]map[string]bool
}

// FromCharter decodes services.access and checks it against the charter:
// every role held by some official, every registry declared, every action
// known, every link field indexed, every auditor an official. A charter
// without the section gives rules that deny everything.
func FromCharter(c *charter.Charter) (*Rules, error) {
	var cfg Config
	if _, err := c.Service(Service, &cfg); err != nil {
		return nil, err
	}
	return New(c, cfg)
}

// New checks cfg against c and builds the rules.
func New(c *charter.Charter, cfg Config) (*Rules, error) {
	regs := map[string]charter.Registry{}
	for _, r := range c.Registries {
		regs[r.Name] = r
	}
	roles := map[string]bool{}
	officials := map[string]bool{}
	for _, o := range c.Officials {
		officials[o.ID] = true
		for _, r := range o.Roles {
			roles[r] = true
		}
	}
	var errs []error
	for _, a := range cfg.Auditors {
		if !officials[a] {
			errs = append(errs, fmt.Errorf("services.access.auditors: %q is not an official of the charter", a))
		}
	}
	r := &Rules{cfg: cfg, official: map[string]map[string]map[string]bool{}}
	for _, role := range sortedKeys(cfg.Officials) {
		if !roles[role] {
			errs = append(errs, fmt.Errorf("services.access.officials.%s: no official holds the role", role))
		}
		r.official[role] = map[string]map[string]bool{}
		for _, reg := range sortedKeys(cfg.Officials[role]) {
			if _, ok := regs[reg]; !ok {
				errs = append(errs, fmt.Errorf("services.access.officials.%s.%s: no such registry in the charter", role, reg))
			}
			set := map[string]bool{}
			for _, a := range cfg.Officials[role][reg] {
				if !slices.Contains(Actions(), a) {
					errs = append(errs, fmt.Errorf("services.access.officials.%s.%s: action %q: want read, find or write", role, reg, a))
				}
				set[a] = true
			}
			r.official[role][reg] = set
		}
	}
	for _, reg := range sortedKeys(cfg.Citizens) {
		def, ok := regs[reg]
		if !ok {
			errs = append(errs, fmt.Errorf("services.access.citizens.%s: no such registry in the charter", reg))
			continue
		}
		if !slices.Contains(def.Index, cfg.Citizens[reg]) {
			errs = append(errs, fmt.Errorf("services.access.citizens.%s: link field %q is not indexed by the registry (index: %v)", reg, cfg.Citizens[reg], def.Index))
		}
	}
	for _, id := range sortedKeys(cfg.Clients) {
		for _, reg := range cfg.Clients[id].Registries {
			if _, ok := cfg.Citizens[reg]; !ok {
				errs = append(errs, fmt.Errorf("services.access.clients.%s.registries: %q is not a citizen registry (services.access.citizens)", id, reg))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Config returns the rules' configuration.
func (r *Rules) Config() Config { return r.cfg }

// Principal is who asks.
type Principal struct {
	Kind string // KindOfficial, KindCitizen or KindClient
	// ID is the official's id, the citizen's person id, or the client id.
	ID string
	// Roles are an official's roles.
	Roles []string
	// Person is, for a client, the citizen on whose behalf it reads (the
	// token's subject).
	Person string
	// Purpose is the reason the request gives; it goes into the access
	// entry. Citizens and clients must give one.
	Purpose string
}

// person is the citizen whose records the principal may see.
func (p Principal) person() string {
	if p.Kind == KindCitizen {
		return p.ID
	}
	return p.Person
}

// Allow decides whether p may take action on registry at all, before any
// record is opened: for citizens and clients the record must then pass
// Owns (read) or the find must be by the link field and the citizen's own
// id (FindAllowed).
func (r *Rules) Allow(p Principal, registry, action string) error {
	switch p.Kind {
	case KindOfficial:
		for _, role := range p.Roles {
			if r.official[role][registry][action] {
				return nil
			}
		}
		return fmt.Errorf("%w: official %s (roles %v) may not %s in registry %s", ErrDenied, p.ID, p.Roles, action, registry)
	case KindCitizen, KindClient:
		if p.person() == "" {
			return fmt.Errorf("%w: %s %s reads on behalf of no citizen", ErrDenied, p.Kind, p.ID)
		}
		if _, ok := r.cfg.Citizens[registry]; !ok {
			return fmt.Errorf("%w: registry %s holds no citizen's own records (services.access.citizens)", ErrDenied, registry)
		}
		if action != Read && action != Find {
			return fmt.Errorf("%w: a %s may not %s in registry %s", ErrDenied, p.Kind, action, registry)
		}
		if p.Kind == KindClient {
			rule, ok := r.cfg.Clients[p.ID]
			if !ok || !slices.Contains(rule.Registries, registry) {
				return fmt.Errorf("%w: client %s may not read registry %s (services.access.clients)", ErrDenied, p.ID, registry)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind of principal %q", ErrDenied, p.Kind)
}

// LinkField is the registry's citizen link field, or "" if citizens have
// no records there.
func (r *Rules) LinkField(registry string) string { return r.cfg.Citizens[registry] }

// CitizenRegistries lists the registries citizens have records in.
func (r *Rules) CitizenRegistries() []string { return sortedKeys(r.cfg.Citizens) }

// Owns reports whether a record (its JSON) of registry belongs to the
// principal's citizen: its link field holds the citizen's person id.
// Officials own nothing and need not: Allow decides for them.
func (r *Rules) Owns(p Principal, registry string, data json.RawMessage) error {
	if p.Kind == KindOfficial {
		return nil
	}
	field := r.cfg.Citizens[registry]
	person := p.person()
	if field == "" || person == "" {
		return fmt.Errorf("%w: registry %s has no citizen link field", ErrDenied, registry)
	}
	v, err := LinkValue(data, field)
	if err != nil {
		return fmt.Errorf("%w: record of registry %s: %v", ErrDenied, registry, err)
	}
	if v != person {
		return fmt.Errorf("%w: the record of registry %s is not the citizen's own", ErrDenied, registry)
	}
	return nil
}

// FindAllowed checks a citizen's or client's find: only by the link field,
// only for the citizen's own id.
func (r *Rules) FindAllowed(p Principal, registry, field, value string) error {
	if err := r.Allow(p, registry, Find); err != nil {
		return err
	}
	if p.Kind == KindOfficial {
		return nil
	}
	if field != r.cfg.Citizens[registry] || value != p.person() {
		return fmt.Errorf("%w: a %s finds only by %s = their own id in registry %s", ErrDenied, p.Kind, r.cfg.Citizens[registry], registry)
	}
	return nil
}

// ClaimAllowed reports whether a client may receive claim.
func (r *Rules) ClaimAllowed(client, claim string) bool {
	return slices.Contains(r.cfg.Clients[client].Claims, claim)
}

// MayVerify reports whether a client may call the verification API.
func (r *Rules) MayVerify(client string) bool { return r.cfg.Clients[client].Verify }

// IsAuditor reports whether an official is one of the charter's auditors.
func (r *Rules) IsAuditor(official string) bool { return slices.Contains(r.cfg.Auditors, official) }

// LinkValue returns the string value of a top-level field of a JSON
// object: the citizen link of a record. A missing field or a value that is
// not a string is an error.
func LinkValue(data json.RawMessage, field string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return "", fmt.Errorf("not a JSON object: %w", err)
	}
	// One value only: bytes after the object would make the record read
	// differently here and by every other JSON reader.
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("not a JSON object: data after the object")
	}
	raw, ok := obj[field]
	if !ok {
		return "", fmt.Errorf("no field %q", field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field %q is not a string", field)
	}
	return s, nil
}
