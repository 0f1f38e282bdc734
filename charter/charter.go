// Package charter holds the signed agreement between a guest state and the
// host states that run its embassy sites: who the parties are, which sites
// exist, who may act and with which quorum, and what a host may do.
//
// A charter is YAML (see docs/charter.md). Parse is strict: it rejects
// unknown fields, dangling references, malformed keys and rules that could
// never be met, and every error names the field. Signatures cover
// CanonicalBytes, a deterministic encoding of everything but the
// signatures, so that formatting and field order in the YAML do not matter.
//
// Everything here is pure: no clocks, no network, no files except ReadFile.
// An auditor can import this package alone to check a charter chain.
package charter

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"
)

// Format is the value of the format field and the domain-separation prefix
// of the canonical encoding.
const Format = "chancery-charter/v1"

// maxCharterSize bounds what Parse accepts. Real charters are kilobytes;
// the bound keeps a hostile file from costing much to reject.
const maxCharterSize = 4 << 20

// Actions that need a quorum. Every charter has a rule for each.
const (
	ActionActivate   = "activate"
	ActionFailback   = "failback"
	ActionDrill      = "drill"
	ActionRevokeSite = "revoke-site"
	ActionRotateKeys = "rotate-keys"
	ActionAmend      = "amend"
)

// Actions returns every action a charter must have a quorum rule for.
func Actions() []string {
	return []string{ActionActivate, ActionFailback, ActionDrill, ActionRevokeSite, ActionRotateKeys, ActionAmend}
}

// Site roles.
const (
	RoleHome    = "home"
	RoleEmbassy = "embassy"
)

// Registry replication modes.
const (
	SyncAsync  = "async"
	SyncQuorum = "quorum"
)

// Registry classifications, least to most sensitive.
const (
	ClassPublic     = "public"
	ClassInternal   = "internal"
	ClassRestricted = "restricted"
	ClassSecret     = "secret"
)

// Classifications returns the closed set of registry classifications.
func Classifications() []string {
	return []string{ClassPublic, ClassInternal, ClassRestricted, ClassSecret}
}

// What a host operator may do (safeguards.operator_may).
const (
	OperatorHealth   = "health"   // read health status of the site
	OperatorCapacity = "capacity" // read and set capacity and quotas
	OperatorSizes    = "sizes"    // read sizes and counts of sealed data
	OperatorSuspend  = "suspend"  // suspend the guest, after the notice period
)

// OperatorPowers returns the closed set of operator powers.
func OperatorPowers() []string {
	return []string{OperatorHealth, OperatorCapacity, OperatorSizes, OperatorSuspend}
}

// Signer kinds.
const (
	KindOfficial = "official"
	KindHost     = "host"
)

// Charter is one version of the agreement.
type Charter struct {
	Format     string          `yaml:"format"`
	Version    int             `yaml:"version"`
	Previous   string          `yaml:"previous"`
	Guest      Guest           `yaml:"guest"`
	Hosts      []Host          `yaml:"hosts"`
	Sites      []Site          `yaml:"sites"`
	Officials  []Official      `yaml:"officials"`
	Custodians Custodians      `yaml:"custodians"`
	Registries []Registry      `yaml:"registries"`
	Quorum     map[string]Rule `yaml:"quorum"`
	Safeguards Safeguards      `yaml:"safeguards"`
	// StateKeys are the public halves of the state's signing keys
	// (services.go).
	StateKeys []StateKey `yaml:"state_keys,omitempty"`
	// Services are the services' own configuration sections (services.go).
	Services map[string]any `yaml:"services,omitempty"`
	// Signatures are not covered by CanonicalBytes: they sign it.
	Signatures []Signature `yaml:"signatures,omitempty"`
}

// Guest is the state whose data the sites hold.
type Guest struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Origin is the ledger's checkpoint origin line and the name of every
	// site's checkpoint key (C2SP signed-note key name).
	Origin string `yaml:"origin"`
}

// Host is a state that runs embassy sites for the guest.
type Host struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Key is the host's Ed25519 public key (standard base64), with which it
	// signs the charter for its own sites.
	Key string `yaml:"key"`
}

// Site is a chancery node: the guest's home or an embassy in a host state.
type Site struct {
	ID string `yaml:"id"`
	// Host is empty for the home site and names a host for an embassy.
	Host         string `yaml:"host"`
	Role         string `yaml:"role"`
	URL          string `yaml:"url"`
	Jurisdiction string `yaml:"jurisdiction"`
	// CheckpointKey is a C2SP signed-note verifier key
	// ("name+hash+base64"), Ed25519, named after the guest's origin.
	CheckpointKey string `yaml:"checkpoint_key"`
	// TLSKey is the Ed25519 public key (standard base64) of the site's
	// TLS certificate, pinned so that no CA is trusted.
	TLSKey string `yaml:"tls_key"`
	// Quota is the most the site holds for this guest, ledger and blobs
	// together, such as "500GiB", "750MB" or "1048576" (bytes); empty is
	// no quota. The host signs it with the site, so neither side can
	// change it alone. See QuotaBytes.
	Quota string `yaml:"quota,omitempty"`
}

// Official is a person of the guest state who signs orders and charters.
type Official struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	Roles []string `yaml:"roles"`
	// Key is the official's Ed25519 public key (standard base64).
	Key string `yaml:"key"`
}

// Custodians hold shares of the root key; Threshold of them unseal a site.
type Custodians struct {
	Threshold int         `yaml:"threshold"`
	Members   []Custodian `yaml:"members"`
	// Package pins the custody package that splits the root among the
	// members: its id (seal.CustodyPackage.PackageID), lowercase hex. A
	// package with another id is refused before any share is sealed to a
	// site or combined. Empty in charters signed before it existed.
	Package string `yaml:"package,omitempty"`
	// Commitment is that package's root commitment
	// (seal.CustodyPackage.RootCommitment, an HKDF output of R — never a
	// group element such as s·G), lowercase hex: what a rebuilt root must
	// match. Set together with Package.
	Commitment string `yaml:"commitment,omitempty"`
}

// Custodian is one holder of a root-key share.
type Custodian struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Recipient is the age recipient (X25519 "age1…" or hybrid
	// post-quantum "age1pq1…") the custodian's share is sealed to.
	Recipient string `yaml:"recipient"`
}

// Registry is a register of the state that the sites replicate.
type Registry struct {
	Name           string `yaml:"name"`
	Classification string `yaml:"classification"`
	// Sites may hold this registry; others never receive it.
	Sites []string `yaml:"sites"`
	// Index lists the record fields a plaintext index is built on when a
	// site is active, in order.
	Index []string `yaml:"index"`
	Sync  string   `yaml:"sync"`
	// QuorumSites is k for sync: quorum — a write is acknowledged when k
	// non-home sites have cosigned it. Zero for async.
	QuorumSites int `yaml:"quorum_sites,omitempty"`
}

// Safeguards bind the host states.
type Safeguards struct {
	// SuspendNotice is the minimum notice (a Go duration such as "720h")
	// a host gives before suspending the guest.
	SuspendNotice string `yaml:"suspend_notice"`
	// OperatorMay is what a host operator may do; anything else is denied.
	OperatorMay []string `yaml:"operator_may"`
	// Retention (a Go duration) is how long the host must keep the data.
	Retention string `yaml:"retention"`
}

// SuspendNoticePeriod returns SuspendNotice as a duration, or 0 if it does
// not parse (Validate reports that).
func (s Safeguards) SuspendNoticePeriod() time.Duration {
	d, _ := time.ParseDuration(s.SuspendNotice)
	return d
}

// RetentionPeriod returns Retention as a duration, or 0 if it does not parse
// (Validate reports that).
func (s Safeguards) RetentionPeriod() time.Duration {
	d, _ := time.ParseDuration(s.Retention)
	return d
}

// Signature is one party's Ed25519 signature over CanonicalBytes.
type Signature struct {
	// Signer is an official id (kind official) or a host id (kind host).
	Signer string `yaml:"signer"`
	Kind   string `yaml:"kind"`
	// Sig is the 64-byte signature, standard base64.
	Sig string `yaml:"sig"`
}

// Parse decodes and validates one charter. It rejects unknown fields,
// several YAML documents, and anything Validate rejects.
func Parse(data []byte) (*Charter, error) {
	if len(data) > maxCharterSize {
		return nil, fmt.Errorf("parse charter: %d bytes is more than the %d allowed", len(data), maxCharterSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Charter
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parse charter: empty document")
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("parse charter: %w", locate(data, te))
		}
		return nil, fmt.Errorf("parse charter: %w", err)
	}
	// A second document could smuggle content a reader of the file sees but
	// the signature does not cover.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse charter: more than one YAML document")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// locate turns yaml's "line N: ..." type errors into FieldErrors that name
// the field path at that line, so that authors need not count lines.
func locate(data []byte, te *yaml.TypeError) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return te
	}
	paths := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		// The first path recorded for a line is the outermost; on a flow
		// line such as "activate: { threshold: x }" that is the rule, which
		// still contains the culprit.
		// Collections start on their first key's line, which that key
		// names better; only scalars claim their own line here.
		if _, ok := paths[n.Line]; !ok && path != "" && n.Kind == yaml.ScalarNode {
			paths[n.Line] = path
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				child := n.Content[i].Value
				if path != "" {
					child = path + "." + child
				}
				if _, ok := paths[n.Content[i].Line]; !ok {
					paths[n.Content[i].Line] = child
				}
				walk(n.Content[i+1], child)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(&root, "")
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		var line int
		if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
			if path, ok := paths[line]; ok {
				errs = append(errs, &FieldError{Path: path, Err: errors.New(msg)})
				continue
			}
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// ReadFile reads and parses the charter at path.
func ReadFile(path string) (*Charter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read charter: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("charter %s: %w", path, err)
	}
	return c, nil
}

// Marshal encodes c as YAML, signatures included. Parse(Marshal(c)) has
// the same canonical bytes as c.
func (c *Charter) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("marshal charter %s v%d: %w", c.Guest.ID, c.Version, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal charter %s v%d: %w", c.Guest.ID, c.Version, err)
	}
	return buf.Bytes(), nil
}

// Host returns the host with the given id.
func (c *Charter) Host(id string) (*Host, bool) {
	for i := range c.Hosts {
		if c.Hosts[i].ID == id {
			return &c.Hosts[i], true
		}
	}
	return nil, false
}

// Site returns the site with the given id.
func (c *Charter) Site(id string) (*Site, bool) {
	for i := range c.Sites {
		if c.Sites[i].ID == id {
			return &c.Sites[i], true
		}
	}
	return nil, false
}

// Home returns the home site.
func (c *Charter) Home() (*Site, bool) {
	for i := range c.Sites {
		if c.Sites[i].Role == RoleHome {
			return &c.Sites[i], true
		}
	}
	return nil, false
}

// SitesOf returns the sites run by the given host, in document order.
func (c *Charter) SitesOf(hostID string) []Site {
	var out []Site
	for _, s := range c.Sites {
		if s.Role == RoleEmbassy && s.Host == hostID {
			out = append(out, s)
		}
	}
	return out
}

// Official returns the official with the given id.
func (c *Charter) Official(id string) (*Official, bool) {
	for i := range c.Officials {
		if c.Officials[i].ID == id {
			return &c.Officials[i], true
		}
	}
	return nil, false
}

// Custodian returns the custodian with the given id.
func (c *Charter) Custodian(id string) (*Custodian, bool) {
	for i := range c.Custodians.Members {
		if c.Custodians.Members[i].ID == id {
			return &c.Custodians.Members[i], true
		}
	}
	return nil, false
}

// Registry returns the registry with the given name.
func (c *Charter) Registry(name string) (*Registry, bool) {
	for i := range c.Registries {
		if c.Registries[i].Name == name {
			return &c.Registries[i], true
		}
	}
	return nil, false
}

// Rule returns the quorum rule for an action (see Actions).
func (c *Charter) Rule(action string) (Rule, bool) {
	r, ok := c.Quorum[action]
	return r, ok
}

// CheckpointVerifiers returns a verifier for every site's checkpoint key,
// for note.Open on the guest's checkpoints.
func (c *Charter) CheckpointVerifiers() (note.Verifiers, error) {
	vs := make([]note.Verifier, 0, len(c.Sites))
	for i, s := range c.Sites {
		v, err := note.NewVerifier(s.CheckpointKey)
		if err != nil {
			return nil, fmt.Errorf("sites[%d].checkpoint_key (site %s): %w", i, s.ID, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// PublicKey decodes the host's key.
func (h Host) PublicKey() (ed25519.PublicKey, error) { return decodeKey(h.Key) }

// PublicKey decodes the official's key.
func (o Official) PublicKey() (ed25519.PublicKey, error) { return decodeKey(o.Key) }

// TLSPublicKey decodes the site's pinned TLS key.
func (s Site) TLSPublicKey() (ed25519.PublicKey, error) { return decodeKey(s.TLSKey) }

// HasRole reports whether the official holds role.
func (o Official) HasRole(role string) bool {
	for _, r := range o.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// decodeKey accepts only the canonical standard-base64 form of a 32-byte
// key: the canonical encoding carries the string, so two spellings of one
// key must not exist.
func decodeKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeCanonicalBase64(s, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("want standard base64 of a %d-byte Ed25519 public key: %w", ed25519.PublicKeySize, err)
	}
	return ed25519.PublicKey(b), nil
}

func decodeCanonicalBase64(s string, size int) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	// Go's decoder skips \r and \n inside its input: only the canonical
	// spelling is accepted, so that one key has one string.
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("not canonical base64")
	}
	if len(b) != size {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), size)
	}
	// Go's decoder skips '\r' and '\n'; re-encoding catches those.
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not in canonical form")
	}
	return b, nil
}
