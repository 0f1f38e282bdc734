package charter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadChain: a chain read from files verifies link by link, returns
// the last version, and a refusal names the file at fault.
func TestReadChain(t *testing.T) {
	f := newFixture(t)
	v1 := f.signed(t)
	v2 := amend(t, v1, func(c *Charter) { c.Safeguards.Retention = "43800h" })
	f.sign(t, v2, v1, KindOfficial, "deputy", "cio", "registrar")
	f.sign(t, v2, v1, KindHost, "host-north", "host-west")
	unsigned := amend(t, v2, func(c *Charter) { c.Guest.Name = "Republic of Demo" })

	dir := t.TempDir()
	file := func(name string, c *Charter) string {
		t.Helper()
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1, p2, p3 := file("v1.yaml", v1), file("v2.yaml", v2), file("v3.yaml", unsigned)

	for _, tt := range []struct {
		name    string
		paths   []string
		version int    // of the charter returned, when no error
		want    string // in the error
	}{
		{"v1 alone", []string{p1}, 1, ""},
		{"v1 v2", []string{p1, p2}, 2, ""},
		{"none", nil, 0, "no charter given"},
		{"v2 without v1", []string{p2}, 0, "v2.yaml is version 2: version 1 is needed"},
		{"out of order", []string{p1, p1}, 0, "v1.yaml (version 2 of the chain)"},
		{"unsigned amendment", []string{p1, p2, p3}, 0, "v3.yaml (version 3 of the chain)"},
		{"missing file", []string{p1, filepath.Join(dir, "absent.yaml")}, 0, "absent.yaml"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ReadChain(tt.paths)
			if tt.want == "" {
				if err != nil || c.Version != tt.version {
					t.Fatalf("ReadChain = %v, %v; want version %d", c, err, tt.version)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadChain = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
