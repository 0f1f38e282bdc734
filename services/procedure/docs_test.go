package procedure

import (
	"os"
	"strings"
	"testing"
)

// docBlock returns the body of the first fenced block of the given
// language after heading in docs/procedures.md.
func docBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/procedures.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/procedures.md has no heading %q", heading)
	}
	rest := doc[i:]
	j := strings.Index(rest, "\n```"+lang+"\n")
	if j < 0 {
		t.Fatalf("no ```%s block after %q", lang, heading)
	}
	rest = rest[j+len("\n```"+lang+"\n"):]
	k := strings.Index(rest, "\n```\n")
	if k < 0 {
		t.Fatalf("unterminated block after %q", heading)
	}
	return rest[:k+1]
}

// TestDocsExampleIsTheDemoProcedure parses the worked example of
// docs/procedures.md and checks that it is, byte for byte in meaning, the
// demo's register-birth procedure.
func TestDocsExampleIsTheDemoProcedure(t *testing.T) {
	c, _ := testCharter(t)
	ex, err := ParseDocument([]byte(docBlock(t, "### Worked example", "yaml")), c)
	if err != nil {
		t.Fatalf("the docs' example: %v", err)
	}
	demo, err := ParseDocument(DemoYAML(), c)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := demo.Lookup("register-birth")
	if len(ex.Procedures) != 1 || ex.Procedures[0].Hash() != want.Hash() {
		t.Fatal("the docs' worked example is not demo.yaml's register-birth procedure")
	}
	if !strings.Contains(string(DemoYAML()), strings.TrimPrefix(docBlock(t, "### Worked example", "yaml"), "procedures:\n")) {
		t.Fatal("the docs' worked example is not a byte-exact excerpt of demo.yaml")
	}
	// The payment section shown is the demo's too.
	pay := docBlock(t, "## Payments", "yaml")
	if !strings.Contains(string(DemoYAML()), pay) {
		t.Fatalf("the docs' payment output is not an excerpt of demo.yaml:\n%s", pay)
	}
}

// TestStepMessageFormat pins the signed bytes docs/procedures.md shows.
func TestStepMessageFormat(t *testing.T) {
	claim := StepClaim{Guest: "demo-republic", Case: "case-0123456789abcdef0123456789abcdef", Procedure: "register-birth", Step: "decide",
		Subject: "9f0c", Official: "registrar"}
	shown := strings.Replace(docBlock(t, "### Step signatures", ""), "9f0c…", "9f0c", 1)
	if got := string(claim.Message()) + "\n"; got != shown {
		t.Fatalf("message\n%s\ndocs show\n%s", got, shown)
	}
}

func TestDocumentRefusalsNameTheField(t *testing.T) {
	c, _ := testCharter(t)
	demo := string(DemoYAML())
	for _, tc := range []struct{ from, to, want string }{
		{"        birth_date: {type: string, format: date}", "        birth_date: {type: string, format: date, colour: red}", "field colour not found"},
		{"        role: registrar\n        signatures: 1", "        role: astronaut\n        signatures: 1", `steps[0].role: no official of the charter holds role "astronaut"`},
		{"        role: minister\n        signatures: 2", "        role: minister\n        signatures: 3", "steps[0].signatures: 3 needed but only 2 officials hold role minister"},
		{"      - registry: land", "      - registry: moon", `effects[0].registry: "moon" is not a registry`},
		{`        id: "{input.parcel_id}"`, `        id: "{input.parcel}"`, `effects[0].id: {input.parcel}: "parcel" is not an input field`},
		{"      kind: decision\n\n  - id: change-address", "      kind: verdict\n\n  - id: change-address", `output.kind: "verdict"`},
		{"          iban: DR72TRSY00000000000001", "          iban: DR73TRSY00000000000001", "output.payment.debtor.iban: DR73TRSY00000000000001 fails the mod-97 check"},
		{"  - id: change-address", "  - id: register-birth", "procedures[1].id: register-birth is declared twice"},
		{`          address: "{input.street}, {input.postcode} {input.city}"`, `          address: "{input.street"`, "a { without its }"},
	} {
		if !strings.Contains(demo, tc.from) {
			t.Fatalf("demo.yaml has no %q", tc.from)
		}
		_, err := ParseDocument([]byte(strings.Replace(demo, tc.from, tc.to, 1)), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.to, err, tc.want)
		}
	}
	// The charter's copy reads back and checks.
	if _, err := FromCharter(c); err != nil {
		t.Fatal(err)
	}
}
