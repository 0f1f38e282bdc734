package identity

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/charter"
)

// TestDocExampleParses parses the charter sections docs/identity.md shows,
// against a charter with the registries and officials they name, so the
// documented format cannot drift from the code.
func TestDocExampleParses(t *testing.T) {
	doc, err := os.ReadFile("../../docs/identity.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- identity-example -->\n```yaml\n")
	if !ok {
		t.Fatal("docs/identity.md: no example section marked <!-- identity-example -->")
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/identity.md: example section not closed")
	}
	var sec struct {
		Services map[string]any `yaml:"services"`
	}
	dec := yaml.NewDecoder(strings.NewReader(example))
	dec.KnownFields(true)
	if err := dec.Decode(&sec); err != nil {
		t.Fatal(err)
	}
	c := &charter.Charter{
		Guest:     charter.Guest{ID: "demo-republic"},
		Officials: []charter.Official{{ID: "reg-1", Roles: []string{"registrar"}}, {ID: "aud-1", Roles: []string{"auditor"}}},
		Registries: []charter.Registry{
			{Name: "population", Index: []string{"national_id", "last_name"}},
			{Name: "land", Index: []string{"parcel_id", "owner_id"}},
			{Name: "business", Index: []string{"registration_no", "owner_id"}},
			{Name: "eid-crl", Index: []string{"ca"}},
			{Name: "passkeys", Index: []string{"person_id"}},
		},
		Services: sec.Services,
	}
	cfg, err := load(c)
	if err != nil {
		t.Fatalf("the documented sections do not load: %v", err)
	}
	if cfg.Issuer != "https://id.demo-republic.example" || len(cfg.clients) != 2 || cfg.caByName["demo-eid-ca"] == nil ||
		!cfg.rules.MayVerify("tax-office") || cfg.rules.LinkField("land") != "owner_id" || cfg.challengeTTL.String() != "2m0s" {
		t.Errorf("documented sections parsed to %+v", cfg.Config)
	}
}
