package charter

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestParseFixture(t *testing.T) {
	c := newFixture(t).charter(t)
	if s, ok := c.Site("embassy-north"); !ok || s.Host != "host-north" {
		t.Errorf("Site(embassy-north) = %+v, %v", s, ok)
	}
	if _, ok := c.Site("nowhere"); ok {
		t.Error("Site(nowhere) found")
	}
	if o, ok := c.Official("deputy"); !ok || !o.HasRole("cio") || o.HasRole("registrar") {
		t.Errorf("Official(deputy) = %+v, %v", o, ok)
	}
	if r, ok := c.Registry("population"); !ok || r.QuorumSites != 1 {
		t.Errorf("Registry(population) = %+v, %v", r, ok)
	}
	if r, ok := c.Rule(ActionAmend); !ok || r.Threshold != 3 {
		t.Errorf("Rule(amend) = %+v, %v", r, ok)
	}
	if h, ok := c.Home(); !ok || h.ID != "home" {
		t.Errorf("Home() = %+v, %v", h, ok)
	}
	if got := c.Safeguards.SuspendNoticePeriod(); got != 720*time.Hour {
		t.Errorf("SuspendNoticePeriod = %v", got)
	}
	vs, err := c.CheckpointVerifiers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Sites {
		name, rest, _ := strings.Cut(s.CheckpointKey, "+")
		var hash uint32
		for _, ch := range rest[:8] {
			hash = hash<<4 | uint32(strings.IndexRune("0123456789abcdef", ch))
		}
		if _, err := vs.Verifier(name, hash); err != nil {
			t.Errorf("no verifier for site %s: %v", s.ID, err)
		}
	}
}

// TestParseErrors feeds one defect at a time and checks that the error
// names the field. Edits are textual replacements on the valid fixture,
// so that YAML-level defects are covered too.
func TestParseErrors(t *testing.T) {
	f := newFixture(t)
	c := f.charter(t)
	hostNorthKey := c.Hosts[0].Key
	homeCkpt := c.Sites[0].CheckpointKey
	cust1 := c.Custodians.Members[0].Recipient

	tests := []struct {
		name string
		old  string // replaced once by new; "" appends new
		new  string
		want []string // all must appear in the error
	}{
		{"unknown top-level field", "", "extra: 1\n", []string{"field extra not found", "line"}},
		{"unknown nested field", "    jurisdiction: NL\n", "    jurisdiction: NL\n    colour: red\n", []string{"sites[1].colour: line 28: field colour not found"}},
		{"duplicate yaml key", "version: 1\n", "version: 1\nversion: 1\n", []string{"version", "already defined"}},
		{"second document", "", "---\nformat: x\n", []string{"more than one YAML document"}},
		{"wrong format", "format: chancery-charter/v1", "format: chancery-charter/v2", []string{"format:"}},
		{"version zero", "version: 1", "version: 0", []string{"version: must be at least 1"}},
		{"negative version", "version: 1", "version: -1", []string{"version: must be at least 1"}},
		{"previous on v1", `previous: ""`, `previous: "00"`, []string{"previous: must be empty"}},
		{"previous missing on v2", "version: 1", "version: 2", []string{"previous: must be the 64-digit"}},
		{"bad guest id", "id: demo-republic", "id: Demo_Republic", []string{"guest.id"}},
		{"guest origin with space", "origin: ledger.demo-republic.example", "origin: ledger demo", []string{"guest.origin"}},
		{"guest origin with plus", "origin: ledger.demo-republic.example", "origin: a+b", []string{"guest.origin"}},
		{"empty guest name", "name: Demo Republic", `name: ""`, []string{"guest.name: missing"}},
		{"duplicate host", "id: host-west", "id: host-north", []string{"hosts[1].id", "duplicate host id"}},
		{"host key not base64", "key: " + hostNorthKey, "key: not-a-key", []string{"hosts[0].key"}},
		{"host key short", "key: " + hostNorthKey, "key: AAAA", []string{"hosts[0].key", "3 bytes"}},
		{"duplicate site", "id: embassy-west", "id: embassy-north", []string{"sites[2].id", "duplicate site id"}},
		{"home with host", "    host: \"\"\n    role: home", "    host: host-north\n    role: home", []string{"sites[0].host", "must be empty"}},
		{"embassy without host", "host: host-west", `host: ""`, []string{"sites[2].host", "must name its host"}},
		{"unknown host", "host: host-west", "host: host-south", []string{"sites[2].host", `unknown host "host-south"`}},
		{"bad role", "role: embassy", "role: consulate", []string{"sites[1].role"}},
		{"two homes", "host: host-west\n    role: embassy", "host: \"\"\n    role: home", []string{"sites: must have exactly one"}},
		{"http url", "url: https://127.0.0.1:7002", "url: http://127.0.0.1:7002", []string{"sites[1].url"}},
		{"url with query", "url: https://127.0.0.1:7002", "url: https://127.0.0.1:7002/?x=1", []string{"sites[1].url"}},
		{"lower-case jurisdiction", "jurisdiction: NL", "jurisdiction: nl", []string{"sites[1].jurisdiction"}},
		{"checkpoint key garbage", "checkpoint_key: " + homeCkpt, "checkpoint_key: nonsense", []string{"sites[0].checkpoint_key"}},
		{"checkpoint key wrong name", "checkpoint_key: " + homeCkpt, "checkpoint_key: " + renameVkey(t, homeCkpt, "other.example"), []string{"sites[0].checkpoint_key", "must equal guest.origin"}},
		{"checkpoint key reused", "checkpoint_key: {ckpt}", "", nil}, // placeholder replaced below
		{"tls key bad", "tls_key: ", "tls_key: x", []string{"sites[0].tls_key"}},
		{"quota unknown unit", "    jurisdiction: NL\n", "    jurisdiction: NL\n    quota: 12XB\n", []string{`sites[1].quota: "12XB": unknown unit`}},
		{"quota negative", "    jurisdiction: WL\n", "    jurisdiction: WL\n    quota: -5GiB\n", []string{`sites[2].quota: "-5GiB": negative`}},
		{"quota zero", "    jurisdiction: DR\n", "    jurisdiction: DR\n    quota: 0\n", []string{`sites[0].quota: "0": must be positive`}},
		{"quota overflow", "    jurisdiction: NL\n", "    jurisdiction: NL\n    quota: 8192PiB\n", []string{`sites[1].quota: "8192PiB": more than`}},
		{"quota not a scalar", "    jurisdiction: NL\n", "    jurisdiction: NL\n    quota: [1, GiB]\n", []string{"sites[1].quota", "cannot unmarshal"}},
		{"duplicate official", "id: notary", "id: cio", []string{"officials[3].id", "duplicate official id"}},
		{"official without roles", "roles: [notary]", "roles: []", []string{"officials[3].roles: must not be empty"}},
		{"official duplicate role", "roles: [notary]", "roles: [notary, notary]", []string{"officials[3].roles[1]", "duplicate"}},
		{"official shares key", "key: " + c.Officials[3].Key, "key: " + c.Officials[2].Key, []string{"officials[3].key", "same key as official registrar"}},
		{"official uses host key", "key: " + c.Officials[3].Key, "key: " + hostNorthKey, []string{"officials[3].key", "the key of official notary is also the key of host host-north (hosts[0].key)"}},
		{"custodian threshold zero", "threshold: 2\n  members", "threshold: 0\n  members", []string{"custodians.threshold", "between 1 and the 3"}},
		{"custodian threshold too high", "threshold: 2\n  members", "threshold: 4\n  members", []string{"custodians.threshold"}},
		{"duplicate custodian", "id: cust-3", "id: cust-1", []string{"custodians.members[2].id", "duplicate custodian id"}},
		{"bad recipient", "recipient: " + cust1, "recipient: age1notarecipient", []string{"custodians.members[0].recipient"}},
		{"ssh recipient", "recipient: " + cust1, "recipient: ssh-ed25519 AAAA", []string{"custodians.members[0].recipient", "not an age recipient"}},
		{"upper-case recipient", "recipient: " + cust1, "recipient: " + strings.ToUpper(cust1), []string{"custodians.members[0].recipient"}},
		{"duplicate registry", "name: land", "name: population", []string{"registries[1].name", "duplicate registry"}},
		{"bad classification", "classification: internal", "classification: top-secret", []string{"registries[1].classification"}},
		{"registry unknown site", "sites: [home, embassy-north]\n", "sites: [home, embassy-south]\n", []string{"registries[1].sites[1]", "unknown site"}},
		{"registry no sites", "sites: [home, embassy-north]\n", "sites: []\n", []string{"registries[1].sites: must not be empty"}},
		{"bad sync", "sync: async", "sync: sometimes", []string{"registries[1].sync"}},
		{"quorum sites on async", "sync: async", "sync: async\n    quorum_sites: 1", []string{"registries[1].quorum_sites", "0 when sync is async"}},
		{"quorum sites too many", "quorum_sites: 1", "quorum_sites: 3", []string{"registries[0].quorum_sites", "between 1 and the 2 non-home"}},
		{"quorum sites missing", "    quorum_sites: 1\n", "", []string{"registries[0].quorum_sites"}},
		{"missing rule", "  drill: { threshold: 1, of: [cio, registrar] }\n", "", []string{"quorum.drill: missing"}},
		{"unknown action", "  drill:", "  dance: { threshold: 1, of: [cio] }\n  drill:", []string{"quorum.dance: unknown action"}},
		{"threshold zero", "drill: { threshold: 1", "drill: { threshold: 0", []string{"quorum.drill.threshold"}},
		{"empty of", "drill: { threshold: 1, of: [cio, registrar] }", "drill: { threshold: 1, of: [] }", []string{"quorum.drill.of: must not be empty"}},
		{"require not in of", "activate: { threshold: 2, of: [minister, cio, registrar], require: { minister: 1 } }",
			"activate: { threshold: 2, of: [cio, registrar], require: { minister: 1 } }", []string{"quorum.activate.require.minister", "not in quorum.activate.of"}},
		{"require zero", "amend: { threshold: 3, of: [minister, cio, registrar], require: { minister: 1 } }",
			"amend: { threshold: 3, of: [minister, cio, registrar], require: { minister: 0 } }", []string{"quorum.amend.require.minister", "at least 1"}},
		{"threshold above eligible", "rotate-keys: { threshold: 2, of: [minister, cio] }", "rotate-keys: { threshold: 4, of: [minister, cio] }",
			[]string{"quorum.rotate-keys: can never be met", "need 4 of minister,cio, have 3"}},
		{"required role nobody holds", "drill: { threshold: 1, of: [cio, registrar] }", "drill: { threshold: 1, of: [cio, auditor], require: { auditor: 1 } }",
			[]string{"quorum.drill: can never be met", "need at least 1 auditor, have 0"}},
		{"required slots need distinct officials", "revoke-site: { threshold: 2, of: [minister, cio], require: { minister: 1, cio: 1 } }",
			"revoke-site: { threshold: 2, of: [minister, cio], require: { minister: 2, cio: 2 } }", []string{"quorum.revoke-site: can never be met", "need 4 distinct officials"}},
		{"notice missing", "  suspend_notice: 720h\n", "", []string{"safeguards.suspend_notice: missing"}},
		{"notice malformed", "suspend_notice: 720h", "suspend_notice: 30 days", []string{"safeguards.suspend_notice"}},
		{"notice negative", "suspend_notice: 720h", "suspend_notice: -1h", []string{"safeguards.suspend_notice", "positive"}},
		{"retention malformed", "retention: 87600h", "retention: forever", []string{"safeguards.retention"}},
		{"operator power unknown", "operator_may: [health, capacity, sizes, suspend]", "operator_may: [health, read]", []string{"safeguards.operator_may[1]"}},
		{"operator_may missing", "  operator_may: [health, capacity, sizes, suspend]\n", "", []string{"safeguards.operator_may: missing"}},
		{"signature bad kind", "", "signatures:\n  - { signer: cio, kind: boss, sig: AAAA }\n", []string{"signatures[0].kind", "signatures[0].sig"}},
		{"wrong type", "threshold: 2\n  members", "threshold: two\n  members", []string{"custodians.threshold: line", "cannot unmarshal"}},
	}
	// A reused checkpoint key needs the fixture's actual key text.
	for i := range tests {
		if tests[i].name == "checkpoint key reused" {
			tests[i].old = "checkpoint_key: " + c.Sites[2].CheckpointKey
			tests[i].new = "checkpoint_key: " + c.Sites[1].CheckpointKey
			tests[i].want = []string{"sites[2].checkpoint_key", "same key as sites[1]"}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := f.yaml
			if tt.old == "" {
				doc += tt.new
			} else {
				if !strings.Contains(doc, tt.old) {
					t.Fatalf("fixture does not contain %q", tt.old)
				}
				doc = strings.Replace(doc, tt.old, tt.new, 1)
			}
			_, err := Parse([]byte(doc))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

// TestFieldErrorIsInspectable checks that callers can get at the path.
func TestFieldErrorIsInspectable(t *testing.T) {
	f := newFixture(t)
	_, err := Parse([]byte(strings.Replace(f.yaml, "jurisdiction: NL", "jurisdiction: nl", 1)))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "sites[1].jurisdiction" {
		t.Fatalf("errors.As FieldError = %v (%v)", fe, err)
	}
}

// TestValidateReportsAll checks that several defects are reported together.
func TestValidateReportsAll(t *testing.T) {
	c := newFixture(t).charter(t)
	c.Sites[1].URL = "ftp://x"
	c.Officials[0].Name = ""
	c.Custodians.Threshold = 9
	err := c.Validate()
	for _, w := range []string{"sites[1].url", "officials[0].name", "custodians.threshold"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %s: %v", w, err)
		}
	}
}

// renameVkey returns a valid verifier key for the same public key under
// another name.
func renameVkey(t *testing.T, vkey, name string) string {
	t.Helper()
	_, rest, _ := strings.Cut(vkey, "+")
	_, b64, _ := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	out, err := note.NewEd25519VerifierKey(name, raw[1:])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
