package charter

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"
)

// FieldError is a problem with one field of a charter. Path names the
// field as it appears in the YAML, e.g. "sites[2].checkpoint_key" or
// "quorum.activate.require.minister"; list indexes count from 0 in
// document order.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// problems collects every FieldError of a charter, so that an author sees
// them all at once instead of fixing one per run.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
}

func (p *problems) wrap(path string, err error) {
	*p = append(*p, &FieldError{Path: path, Err: err})
}

// Validate checks every rule of docs/charter.md except signatures. The error
// joins one FieldError per problem found.
func (c *Charter) Validate() error {
	var p problems
	if c.Format != Format {
		p.add("format", "is %q, want %q", c.Format, Format)
	}
	if c.Version < 1 {
		p.add("version", "must be at least 1")
	}
	switch {
	case c.Version == 1 && c.Previous != "":
		p.add("previous", "must be empty for version 1")
	case c.Version > 1 && !isHexHash(c.Previous):
		p.add("previous", "must be the 64-digit lowercase hex SHA-256 of version %d, got %q", c.Version-1, c.Previous)
	}
	c.validateGuest(&p)
	c.validateHosts(&p)
	c.validateSites(&p)
	c.validateOfficials(&p)
	c.validateKeyRoles(&p)
	c.validateCustodians(&p)
	c.validateRegistries(&p)
	c.validateQuorum(&p)
	c.validateSafeguards(&p)
	c.validateStateKeys(&p)
	c.validateServices(&p)
	c.validateSignatureShapes(&p)
	return errors.Join(p...)
}

func (c *Charter) validateGuest(p *problems) {
	checkID(p, "guest.id", c.Guest.ID)
	checkText(p, "guest.name", c.Guest.Name)
	if !isNoteName(c.Guest.Origin) {
		p.add("guest.origin", "%q must be a non-empty signed-note key name: no spaces, no '+'", c.Guest.Origin)
	}
}

func (c *Charter) validateHosts(p *problems) {
	ids := map[string]int{}
	keys := map[string]string{}
	for i, h := range c.Hosts {
		path := fmt.Sprintf("hosts[%d]", i)
		checkID(p, path+".id", h.ID)
		checkUnique(p, path+".id", "host", h.ID, ids, i, "hosts")
		checkText(p, path+".name", h.Name)
		if _, err := decodeKey(h.Key); err != nil {
			p.wrap(path+".key", err)
		} else if other, dup := keys[h.Key]; dup {
			p.add(path+".key", "host %s uses the same key as %s: each party needs its own key", h.ID, other)
		} else {
			keys[h.Key] = "host " + h.ID
		}
	}
}

func (c *Charter) validateSites(p *problems) {
	ids := map[string]int{}
	ckeys := map[string]int{}
	homes := 0
	for i, s := range c.Sites {
		path := fmt.Sprintf("sites[%d]", i)
		checkID(p, path+".id", s.ID)
		checkUnique(p, path+".id", "site", s.ID, ids, i, "sites")
		switch s.Role {
		case RoleHome:
			homes++
			if s.Host != "" {
				p.add(path+".host", "must be empty for a home site, got %q", s.Host)
			}
		case RoleEmbassy:
			if s.Host == "" {
				p.add(path+".host", "an embassy site must name its host")
			} else if _, ok := c.Host(s.Host); !ok {
				p.add(path+".host", "unknown host %q", s.Host)
			}
		default:
			p.add(path+".role", "is %q, want %q or %q", s.Role, RoleHome, RoleEmbassy)
		}
		if strings.IndexFunc(s.URL, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			p.add(path+".url", "must be printable ASCII (use punycode for international names)")
		} else if u, err := url.Parse(s.URL); err != nil {
			p.wrap(path+".url", err)
		} else if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			p.add(path+".url", "%q must be an https URL with a host and no user, query or fragment", s.URL)
		}
		if s.Jurisdiction == "" || strings.IndexFunc(s.Jurisdiction, func(r rune) bool {
			return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
		}) >= 0 {
			p.add(path+".jurisdiction", "%q must be non-empty upper-case letters, digits or '-' (e.g. an ISO 3166 code)", s.Jurisdiction)
		}
		if err := checkCheckpointKey(s.CheckpointKey, c.Guest.Origin); err != nil {
			p.wrap(path+".checkpoint_key", err)
		} else if j, dup := ckeys[s.CheckpointKey]; dup {
			p.add(path+".checkpoint_key", "same key as sites[%d]: each site signs with its own key", j)
		} else {
			ckeys[s.CheckpointKey] = i
		}
		if _, err := decodeKey(s.TLSKey); err != nil {
			p.wrap(path+".tls_key", err)
		}
		if s.Quota != "" {
			if _, err := parseQuota(s.Quota); err != nil {
				p.wrap(path+".quota", err)
			}
		}
	}
	if homes != 1 {
		p.add("sites", "must have exactly one site with role %s, has %d", RoleHome, homes)
	}
}

// validateKeyRoles refuses one Ed25519 key in two roles: a site's
// checkpoint key, its TLS key, an official's key, a host's key. Each role
// signs its own kind of message (signed notes, TLS handshakes, requests and
// charters, charters as host); a key in two roles lets a signature made in
// one be offered in the other, and lets one party stand for two. Repeats
// within one role are reported by the role's own check; this one names
// both uses of a key shared across roles.
func (c *Charter) validateKeyRoles(p *problems) {
	type use struct{ role, path, what string }
	first := map[string]use{}
	note := func(raw []byte, u use) {
		if raw == nil {
			return
		}
		prev, seen := first[string(raw)]
		if !seen {
			first[string(raw)] = u
			return
		}
		if prev.role != u.role {
			p.add(u.path, "the %s is also the %s (%s): one key may serve one role only", u.what, prev.what, prev.path)
		}
	}
	raw := func(s string) []byte {
		k, err := decodeKey(s)
		if err != nil {
			return nil
		}
		return k
	}
	for i, h := range c.Hosts {
		note(raw(h.Key), use{"host", fmt.Sprintf("hosts[%d].key", i), "key of host " + h.ID})
	}
	for i, o := range c.Officials {
		note(raw(o.Key), use{"official", fmt.Sprintf("officials[%d].key", i), "key of official " + o.ID})
	}
	for i, s := range c.Sites {
		note(checkpointRaw(s.CheckpointKey), use{"checkpoint", fmt.Sprintf("sites[%d].checkpoint_key", i), "checkpoint key of site " + s.ID})
		note(raw(s.TLSKey), use{"tls", fmt.Sprintf("sites[%d].tls_key", i), "TLS key of site " + s.ID})
	}
}

// checkpointRaw is the raw Ed25519 public key inside a signed-note verifier
// key, or nil if it is not one.
func checkpointRaw(vkey string) []byte {
	_, rest, _ := strings.Cut(vkey, "+")
	_, b64, _ := strings.Cut(rest, "+")
	raw, err := decodeCanonicalBase64(b64, 1+32)
	if err != nil || raw[0] != 0x01 {
		return nil
	}
	return raw[1:]
}

// checkCheckpointKey accepts a C2SP Ed25519 verifier key named origin, in
// the exact form note.NewEd25519VerifierKey writes, so the string itself is
// canonical.
func checkCheckpointKey(vkey, origin string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("not a signed-note verifier key: %w", err)
	}
	if v.Name() != origin {
		return fmt.Errorf("key name %q must equal guest.origin %q", v.Name(), origin)
	}
	// NewVerifier only knows Ed25519 today, but say it rather than rely on it.
	raw := checkpointRaw(vkey)
	if raw == nil {
		return errors.New("must be an Ed25519 key (type 0x01, 32 bytes) in canonical base64")
	}
	want, err := note.NewEd25519VerifierKey(origin, raw)
	if err != nil || want != vkey {
		return fmt.Errorf("not in canonical form, want %q", want)
	}
	return nil
}

func (c *Charter) validateOfficials(p *problems) {
	ids := map[string]int{}
	keys := map[string]string{}
	for i, o := range c.Officials {
		path := fmt.Sprintf("officials[%d]", i)
		checkID(p, path+".id", o.ID)
		checkUnique(p, path+".id", "official", o.ID, ids, i, "officials")
		checkText(p, path+".name", o.Name)
		checkSet(p, path+".roles", o.Roles, func(path, r string) { checkID(p, path, r) })
		if _, err := decodeKey(o.Key); err != nil {
			p.wrap(path+".key", err)
			continue
		}
		// One key for two officials would let one person count twice
		// towards a quorum.
		if other, dup := keys[o.Key]; dup {
			p.add(path+".key", "official %s uses the same key as %s: each official needs their own key", o.ID, other)
		} else {
			keys[o.Key] = "official " + o.ID
		}
	}
	if len(c.Officials) == 0 {
		p.add("officials", "must list at least one official")
	}
}

func (c *Charter) validateCustodians(p *problems) {
	cu := c.Custodians
	n := len(cu.Members)
	if n == 0 {
		p.add("custodians.members", "must list at least one custodian")
	}
	if cu.Threshold < 1 || cu.Threshold > n {
		p.add("custodians.threshold", "is %d, must be between 1 and the %d members", cu.Threshold, n)
	}
	switch {
	case cu.Package == "" && cu.Commitment == "":
	case cu.Package == "" || cu.Commitment == "":
		p.add("custodians", "package and commitment go together: both or neither")
	default:
		checkHash32(p, "custodians.package", cu.Package)
		checkHash32(p, "custodians.commitment", cu.Commitment)
	}
	ids := map[string]int{}
	rcpts := map[string]int{}
	for i, m := range cu.Members {
		path := fmt.Sprintf("custodians.members[%d]", i)
		checkID(p, path+".id", m.ID)
		checkUnique(p, path+".id", "custodian", m.ID, ids, i, "custodians.members")
		checkText(p, path+".name", m.Name)
		if err := checkRecipient(m.Recipient); err != nil {
			p.wrap(path+".recipient", err)
		} else if j, dup := rcpts[m.Recipient]; dup {
			// Two shares to one recipient would let one person hold two.
			p.add(path+".recipient", "same recipient as custodians.members[%d]", j)
		} else {
			rcpts[m.Recipient] = i
		}
	}
}

// checkHash32 accepts 32 bytes in lowercase hex: one spelling per value,
// so that comparing the strings compares the hashes.
func checkHash32(p *problems, path, s string) {
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 || hex.EncodeToString(b) != s {
		p.add(path, "must be 64 lowercase hex digits (32 bytes)")
	}
}

// checkRecipient accepts the age recipients custodians can hold: X25519
// ("age1…") and hybrid post-quantum ("age1pq1…"), in canonical spelling.
func checkRecipient(s string) error {
	var str string
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return fmt.Errorf("hybrid age recipient: %w", err)
		}
		str = r.String()
	case strings.HasPrefix(s, "age1"):
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return fmt.Errorf("X25519 age recipient: %w", err)
		}
		str = r.String()
	default:
		return fmt.Errorf("%q is not an age recipient (want age1… or age1pq1…)", abbreviate(s))
	}
	if str != s {
		return errors.New("age recipient not in canonical (lower-case) form")
	}
	return nil
}

func (c *Charter) validateRegistries(p *problems) {
	names := map[string]int{}
	for i, r := range c.Registries {
		path := fmt.Sprintf("registries[%d]", i)
		checkName(p, path+".name", r.Name)
		checkUnique(p, path+".name", "registry", r.Name, names, i, "registries")
		if !slices.Contains(Classifications(), r.Classification) {
			p.add(path+".classification", "is %q, want one of %s", r.Classification, strings.Join(Classifications(), ", "))
		}
		embassies := 0
		checkSet(p, path+".sites", r.Sites, func(path, id string) {
			s, ok := c.Site(id)
			if !ok {
				p.add(path, "unknown site %q", id)
				return
			}
			if s.Role != RoleHome {
				embassies++
			}
		})
		if len(r.Index) > 0 {
			checkSet(p, path+".index", r.Index, func(path, f string) { checkName(p, path, f) })
		}
		switch r.Sync {
		case SyncAsync:
			if r.QuorumSites != 0 {
				p.add(path+".quorum_sites", "must be omitted or 0 when sync is %s", SyncAsync)
			}
		case SyncQuorum:
			if r.QuorumSites < 1 || r.QuorumSites > embassies {
				p.add(path+".quorum_sites", "is %d, must be between 1 and the %d non-home sites allowed to hold %s", r.QuorumSites, embassies, r.Name)
			}
		default:
			p.add(path+".sync", "is %q, want %q or %q", r.Sync, SyncAsync, SyncQuorum)
		}
	}
}

func (c *Charter) validateQuorum(p *problems) {
	for _, a := range Actions() {
		if _, ok := c.Quorum[a]; !ok {
			p.add("quorum."+a, "missing: every action needs a rule")
		}
	}
	// Report in a fixed order; map iteration is random.
	actions := make([]string, 0, len(c.Quorum))
	for a := range c.Quorum {
		actions = append(actions, a)
	}
	slices.Sort(actions)
	for _, a := range actions {
		path := "quorum." + a
		if !slices.Contains(Actions(), a) {
			p.add(path, "unknown action, want one of %s", strings.Join(Actions(), ", "))
			continue
		}
		c.validateRule(p, path, c.Quorum[a])
	}
}

func (c *Charter) validateRule(p *problems, path string, r Rule) {
	before := len(*p)
	if r.Threshold < 1 {
		p.add(path+".threshold", "is %d, must be at least 1", r.Threshold)
	}
	checkSet(p, path+".of", r.Of, func(path, role string) { checkID(p, path, role) })
	for _, role := range r.requiredRoles() {
		rp := path + ".require." + role
		if !slices.Contains(r.Of, role) {
			p.add(rp, "role %q is not in %s.of", role, path)
		}
		if r.Require[role] < 1 {
			p.add(rp, "is %d, must be at least 1", r.Require[role])
		}
	}
	if len(*p) > before {
		return // the rule is malformed; whether it can be met means little
	}
	// With every official signing, a rule that fails can never be met.
	if err := r.Satisfied(c.Officials); err != nil {
		p.add(path, "can never be met by the officials listed: %w", err)
	}
}

func (c *Charter) validateSafeguards(p *problems) {
	s := c.Safeguards
	checkDuration(p, "safeguards.suspend_notice", s.SuspendNotice)
	checkDuration(p, "safeguards.retention", s.Retention)
	if s.OperatorMay == nil {
		p.add("safeguards.operator_may", "missing: list what operators may do (an empty list [] means nothing)")
	}
	checkSetAllowEmpty(p, "safeguards.operator_may", s.OperatorMay, func(path, v string) {
		if !slices.Contains(OperatorPowers(), v) {
			p.add(path, "is %q, want one of %s", v, strings.Join(OperatorPowers(), ", "))
		}
	})
}

func (c *Charter) validateSignatureShapes(p *problems) {
	for i, s := range c.Signatures {
		path := fmt.Sprintf("signatures[%d]", i)
		checkID(p, path+".signer", s.Signer)
		if s.Kind != KindOfficial && s.Kind != KindHost {
			p.add(path+".kind", "is %q, want %q or %q", s.Kind, KindOfficial, KindHost)
		}
		if _, err := decodeCanonicalBase64(s.Sig, 64); err != nil {
			p.add(path+".sig", "want standard base64 of a 64-byte Ed25519 signature: %w", err)
		}
	}
}

func checkDuration(p *problems, path, s string) {
	if s == "" {
		p.add(path, "missing: give a Go duration such as 720h")
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.wrap(path, err)
		return
	}
	if d <= 0 {
		p.add(path, "is %s, must be positive", s)
	}
}

// checkID accepts [a-z0-9-]+: ids appear in paths, logs and URLs, so they
// stay plain.
func checkID(p *problems, path, id string) {
	if !isID(id, false) {
		p.add(path, "%q must be non-empty and only a-z, 0-9 and '-'", abbreviate(id))
	}
}

// checkName is checkID that also allows '_', as registry and field names
// often have it (national_id).
func checkName(p *problems, path, name string) {
	if !isID(name, true) {
		p.add(path, "%q must be non-empty and only a-z, 0-9, '-' and '_'", abbreviate(name))
	}
}

// IsID reports whether s is a charter id (a site, an official, a role):
// [a-z0-9-]+, at most 128 bytes. Parsers of outside input check ids with
// it before they look them up.
func IsID(s string) bool { return isID(s, false) }

func isID(s string, underscore bool) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || underscore && r == '_') {
			return false
		}
	}
	return true
}

// checkText accepts human-readable names: non-empty, valid UTF-8, no
// control characters, so a summary cannot be spoofed with escape codes.
func checkText(p *problems, path, s string) {
	switch {
	case strings.TrimSpace(s) == "":
		p.add(path, "missing")
	case !utf8.ValidString(s):
		p.add(path, "is not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		p.add(path, "contains control characters")
	}
}

func checkUnique(p *problems, path, what, id string, seen map[string]int, i int, list string) {
	if j, dup := seen[id]; dup {
		p.add(path, "duplicate %s id %q (also %s[%d])", what, id, list, j)
		return
	}
	seen[id] = i
}

// checkSet checks a non-empty list without duplicates, calling each for
// every element with its path.
func checkSet(p *problems, path string, list []string, each func(path, v string)) {
	if len(list) == 0 {
		p.add(path, "must not be empty")
		return
	}
	checkSetAllowEmpty(p, path, list, each)
}

func checkSetAllowEmpty(p *problems, path string, list []string, each func(path, v string)) {
	seen := map[string]int{}
	for i, v := range list {
		ep := fmt.Sprintf("%s[%d]", path, i)
		if j, dup := seen[v]; dup {
			p.add(ep, "duplicate %q (also %s[%d])", v, path, j)
			continue
		}
		seen[v] = i
		each(ep, v)
	}
}

func isNoteName(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.Contains(s, "+") &&
		strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// abbreviate keeps hostile values from flooding error messages.
func abbreviate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
