package charter

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseQuota(t *testing.T) {
	valid := []struct {
		in   string
		want int64
	}{
		{"1", 1},
		{"1048576", 1 << 20},
		{"1048576B", 1 << 20},
		{"007", 7}, // the canonical form is the integer, so leading zeros are harmless
		{"1kB", 1000},
		{"750MB", 750e6},
		{"3GB", 3e9},
		{"2TB", 2e12},
		{"5PB", 5e15},
		{"1KiB", 1024},
		{"512MiB", 512 << 20},
		{"500GiB", 500 << 30},
		{"64GiB", 64 << 30},
		{"2TiB", 2 << 40},
		{"8191PiB", 8191 << 50},                // the largest whole PiB in an int64
		{"9223372036854775807", math.MaxInt64}, // exactly the limit
		{"9223372036854775B", 9223372036854775},
		{"9223372036854kB", 9223372036854000},
	}
	for _, tt := range valid {
		got, err := parseQuota(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseQuota(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}

	invalid := []struct{ in, want string }{
		// unknown or mis-cased units: "mb" could be either family
		{"12XB", `"12XB": unknown unit`},
		{"5gib", `"5gib": unknown unit`},
		{"5Gib", `"5Gib": unknown unit`},
		{"5KB", `"5KB": unknown unit`},
		{"5kiB", `"5kiB": unknown unit`},
		{"5EiB", `"5EiB": unknown unit`},
		{"5 GiB", `"5 GiB": unknown unit`},
		{"5GiB ", `"5GiB ": unknown unit`},
		{"5GiBGiB", `"5GiBGiB": unknown unit`},
		{"1e9", `"1e9": unknown unit`},
		{"0x10", `"0x10": unknown unit`},
		// overflow
		{"8192PiB", "more than the 9223372036854775807 bytes"},
		{"9223372036854775808", "more than the 9223372036854775807 bytes"},
		{"10000PB", "more than the 9223372036854775807 bytes"},
		{"9223372036854776kB", "more than the 9223372036854775807 bytes"},
		{"99999999999999999999999999GiB", "more than the 9223372036854775807 bytes"},
		// negative and zero
		{"-1", `"-1": negative`},
		{"-5GiB", `"-5GiB": negative`},
		{"0", "must be positive"},
		{"0GiB", "must be positive"},
		{"000B", "must be positive"},
		// garbage
		{"", "want a whole number"},
		{"GiB", `"GiB": want a whole number`},
		{"+5GiB", "want a whole number"},
		{" 5GiB", "want a whole number"},
		{"lots", "want a whole number"},
		{"５GiB", "want a whole number"}, // full-width digit
		{"1.5GiB", "fractions are not allowed"},
		{"1,5GiB", "fractions are not allowed"},
	}
	for _, tt := range invalid {
		got, err := parseQuota(tt.in)
		if err == nil {
			t.Errorf("parseQuota(%q) = %d, want error containing %q", tt.in, got, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseQuota(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
	}

	// A hostile value is cut short in the message.
	_, err := parseQuota(strings.Repeat("9", 10000) + "XB")
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("long quota: error of %d bytes: %v", len(err.Error()), err)
	}
}

func TestQuotaBytes(t *testing.T) {
	if n, err := (Site{ID: "home"}).QuotaBytes(); n != 0 || err != nil {
		t.Errorf("no quota: QuotaBytes = %d, %v; want 0, nil", n, err)
	}
	if n, err := (Site{ID: "embassy-north", Quota: "64GiB"}).QuotaBytes(); n != 64<<30 || err != nil {
		t.Errorf("64GiB: QuotaBytes = %d, %v", n, err)
	}
	_, err := (Site{ID: "embassy-north", Quota: "12XB"}).QuotaBytes()
	if err == nil || !strings.Contains(err.Error(), `site embassy-north quota: "12XB": unknown unit`) {
		t.Errorf("12XB: QuotaBytes error = %v", err)
	}
}

// TestQuotaParsesFromYAML covers the spellings YAML turns into other types
// (an unquoted 1048576 is an integer) and the summary line.
func TestQuotaParsesFromYAML(t *testing.T) {
	f := newFixture(t)
	doc := strings.Replace(f.yaml, "    jurisdiction: NL\n", "    jurisdiction: NL\n    quota: 1048576\n", 1)
	doc = strings.Replace(doc, "    jurisdiction: WL\n", "    jurisdiction: WL\n    quota: \"2TiB\"\n", 1)
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{"home": 0, "embassy-north": 1 << 20, "embassy-west": 2 << 40} {
		s, _ := c.Site(id)
		if n, err := s.QuotaBytes(); n != want || err != nil {
			t.Errorf("site %s: QuotaBytes = %d, %v; want %d", id, n, err, want)
		}
	}
	if sum := Summary(c); !strings.Contains(sum, "embassy embassy-west  https://127.0.0.1:7003  (WL)  quota 2TiB\n") ||
		!strings.Contains(sum, "(DR)\n") {
		t.Errorf("summary does not show quotas as written:\n%s", sum)
	}
}

// TestCanonicalQuota pins how a quota enters the canonical encoding: as
// bytes, after tls_key, and not at all when the site has none, so that
// charters signed before quotas existed keep their hash.
func TestCanonicalQuota(t *testing.T) {
	v1Path := filepath.Join("testdata", "example-v1.yaml")
	data, err := os.ReadFile(v1Path)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "example-v1.canonical"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	north, _ := base.Site("embassy-north")
	withQuota := func(q string) *Charter {
		t.Helper()
		doc := strings.Replace(string(data), "    jurisdiction: NL\n", "    jurisdiction: NL\n    quota: "+q+"\n", 1)
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("quota %s: %v", q, err)
		}
		return c
	}

	if got := withQuota(`""`).CanonicalBytes(); !bytes.Equal(got, golden) {
		t.Errorf("an empty quota changed the canonical bytes:\n got %s\nwant %s", got, golden)
	}

	tlsMember := `"tls_key":"` + north.TLSKey + `"}`
	if !bytes.Contains(golden, []byte(tlsMember)) {
		t.Fatalf("golden lacks %s", tlsMember)
	}
	want := bytes.Replace(golden, []byte(tlsMember), []byte(`"tls_key":"`+north.TLSKey+`","quota":68719476736}`), 1)
	for _, q := range []string{"64GiB", "65536MiB", "67108864KiB", "68719476736", "68719476736B"} {
		if got := withQuota(q).CanonicalBytes(); !bytes.Equal(got, want) {
			t.Errorf("quota %s:\n got %s\nwant %s", q, got, want)
		}
	}
	if bytes.Equal(withQuota("64GB").CanonicalBytes(), want) {
		t.Error("64GB and 64GiB encode the same")
	}

	// The quota is covered by the signatures: adding one to a signed
	// charter invalidates it.
	signed := withQuota("64GiB")
	if err := VerifySignatures(signed, nil); err == nil {
		t.Error("signatures still verify after a quota was added")
	}
	if err := VerifySignatures(base, nil); err != nil {
		t.Errorf("example without quota: %v", err)
	}
}
