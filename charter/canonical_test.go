package charter

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// restyle rewrites a YAML document without changing its meaning: mapping
// keys reversed, every collection in flow style or block style, scalars
// quoted, comments added.
func restyle(t *testing.T, doc string, flow bool) string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			pairs := len(n.Content) / 2
			rev := make([]*yaml.Node, 0, len(n.Content))
			for i := pairs - 1; i >= 0; i-- {
				rev = append(rev, n.Content[2*i], n.Content[2*i+1])
			}
			n.Content = rev
		case yaml.ScalarNode:
			if n.Tag == "!!str" {
				n.Style = yaml.DoubleQuotedStyle
			}
		}
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			if flow {
				n.Style = yaml.FlowStyle
			} else {
				n.Style = 0
			}
		}
		n.HeadComment = "# restyled"
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	out, err := yaml.Marshal(&root)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestCanonicalStable(t *testing.T) {
	f := newFixture(t)
	base := f.charter(t)
	want := base.CanonicalBytes()
	tests := []struct {
		name string
		doc  func() string
	}{
		{"reordered block", func() string { return restyle(t, f.yaml, false) }},
		{"reordered flow", func() string { return restyle(t, f.yaml, true) }},
		{"marshalled", func() string { b, _ := base.Marshal(); return string(b) }},
		{"duration spelled out", func() string {
			return strings.Replace(f.yaml, "suspend_notice: 720h", "suspend_notice: 719h60m0s", 1)
		}},
		{"sets reordered", func() string {
			s := strings.Replace(f.yaml, "roles: [minister, cio]", "roles: [cio, minister]", 1)
			s = strings.Replace(s, "operator_may: [health, capacity, sizes, suspend]", "operator_may: [suspend, sizes, health, capacity]", 1)
			return strings.Replace(s, "sites: [home, embassy-north, embassy-west]", "sites: [embassy-west, home, embassy-north]", 1)
		}},
		{"signatures added", func() string {
			c := newFixtureCopy(t, f)
			f.sign(t, c, nil, KindHost, "host-north")
			b, _ := c.Marshal()
			return string(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc()
			c, err := Parse([]byte(doc))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, doc)
			}
			if got := c.CanonicalBytes(); !bytes.Equal(got, want) {
				t.Errorf("canonical bytes changed:\n got %s\nwant %s", got, want)
			}
		})
	}
	// Entity lists are sorted too: moving a site changes nothing.
	c := f.charter(t)
	c.Sites[1], c.Sites[2] = c.Sites[2], c.Sites[1]
	slices.Reverse(c.Officials)
	if !bytes.Equal(c.CanonicalBytes(), want) {
		t.Error("reordering sites or officials changed the canonical bytes")
	}
}

func newFixtureCopy(t *testing.T, f *fixture) *Charter { return f.charter(t) }

// TestCanonicalChanges checks that every field is covered: changing any one
// changes the hash.
func TestCanonicalChanges(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t).charter(t) // a source of different valid keys
	base := f.charter(t).Hash()
	tests := []struct {
		name   string
		mutate func(c *Charter)
	}{
		{"format", func(c *Charter) { c.Format = "x" }},
		{"version", func(c *Charter) { c.Version = 2 }},
		{"previous", func(c *Charter) { c.Previous = strings.Repeat("0", 64) }},
		{"guest.id", func(c *Charter) { c.Guest.ID = "other" }},
		{"guest.name", func(c *Charter) { c.Guest.Name = "Other" }},
		{"guest.origin", func(c *Charter) { c.Guest.Origin = "other.example" }},
		{"hosts.id", func(c *Charter) { c.Hosts[0].ID = "host-x" }},
		{"hosts.name", func(c *Charter) { c.Hosts[0].Name = "X" }},
		{"hosts.key", func(c *Charter) { c.Hosts[0].Key = other.Hosts[0].Key }},
		{"hosts removed", func(c *Charter) { c.Hosts = c.Hosts[:1] }},
		{"sites.id", func(c *Charter) { c.Sites[1].ID = "x" }},
		{"sites.host", func(c *Charter) { c.Sites[1].Host = "host-west" }},
		{"sites.role", func(c *Charter) { c.Sites[1].Role = RoleHome }},
		{"sites.url", func(c *Charter) { c.Sites[1].URL = "https://x" }},
		{"sites.jurisdiction", func(c *Charter) { c.Sites[1].Jurisdiction = "XX" }},
		{"sites.checkpoint_key", func(c *Charter) { c.Sites[1].CheckpointKey = other.Sites[1].CheckpointKey }},
		{"sites.tls_key", func(c *Charter) { c.Sites[1].TLSKey = other.Sites[1].TLSKey }},
		{"officials.id", func(c *Charter) { c.Officials[0].ID = "x" }},
		{"officials.name", func(c *Charter) { c.Officials[0].Name = "X" }},
		{"officials.roles", func(c *Charter) { c.Officials[0].Roles = append(c.Officials[0].Roles, "notary") }},
		{"officials.key", func(c *Charter) { c.Officials[0].Key = other.Officials[0].Key }},
		{"custodians.threshold", func(c *Charter) { c.Custodians.Threshold = 3 }},
		{"custodians.members.id", func(c *Charter) { c.Custodians.Members[0].ID = "x" }},
		{"custodians.members.name", func(c *Charter) { c.Custodians.Members[0].Name = "X" }},
		{"custodians.members.recipient", func(c *Charter) { c.Custodians.Members[0].Recipient = other.Custodians.Members[0].Recipient }},
		{"registries.name", func(c *Charter) { c.Registries[0].Name = "x" }},
		{"registries.classification", func(c *Charter) { c.Registries[0].Classification = ClassPublic }},
		{"registries.sites", func(c *Charter) { c.Registries[0].Sites = c.Registries[0].Sites[:2] }},
		{"registries.index", func(c *Charter) { c.Registries[0].Index = []string{"national_id"} }},
		{"registries.index order", func(c *Charter) { slices.Reverse(c.Registries[0].Index) }},
		{"registries.sync", func(c *Charter) { c.Registries[0].Sync = SyncAsync }},
		{"registries.quorum_sites", func(c *Charter) { c.Registries[0].QuorumSites = 2 }},
		{"quorum.threshold", func(c *Charter) { r := c.Quorum[ActionDrill]; r.Threshold = 2; c.Quorum[ActionDrill] = r }},
		{"quorum.of", func(c *Charter) { r := c.Quorum[ActionDrill]; r.Of = []string{"cio"}; c.Quorum[ActionDrill] = r }},
		{"quorum.require", func(c *Charter) {
			r := c.Quorum[ActionDrill]
			r.Require = map[string]int{"cio": 1}
			c.Quorum[ActionDrill] = r
		}},
		{"safeguards.suspend_notice", func(c *Charter) { c.Safeguards.SuspendNotice = "721h" }},
		{"safeguards.operator_may", func(c *Charter) { c.Safeguards.OperatorMay = c.Safeguards.OperatorMay[1:] }},
		{"safeguards.retention", func(c *Charter) { c.Safeguards.Retention = "1h" }},
	}
	seen := map[[32]byte]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.charter(t)
			tt.mutate(c)
			h := c.Hash()
			if h == base {
				t.Fatal("hash did not change")
			}
			if prev, dup := seen[h]; dup {
				t.Fatalf("same hash as mutation %q", prev)
			}
			seen[h] = tt.name
		})
	}
}

func TestCanonicalLayout(t *testing.T) {
	c := newFixture(t).charter(t)
	b := c.CanonicalBytes()
	if !bytes.HasPrefix(b, []byte("chancery-charter/v1\n{\"format\":\"chancery-charter/v1\",\"version\":1,\"previous\":\"\",\"guest\":{")) {
		t.Errorf("unexpected layout: %.120s", b)
	}
	if bytes.HasSuffix(b, []byte("\n")) || bytes.Contains(b, []byte("signatures")) {
		t.Error("canonical bytes must have no trailing newline and no signatures")
	}
	if !strings.Contains(string(b), `"safeguards":{"suspend_notice":2592000000000000,"operator_may":["capacity","health","sizes","suspend"],"retention":315360000000000000}`) {
		t.Errorf("safeguards not encoded as documented: %s", b)
	}
	if got := c.HashHex(); len(got) != 64 {
		t.Errorf("HashHex = %q", got)
	} else if h := c.Hash(); hex.EncodeToString(h[:]) != got {
		t.Error("HashHex disagrees with Hash")
	}
}
