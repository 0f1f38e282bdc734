package charter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadVerified: an amended charter verifies through the versions kept
// beside it, and is refused when one is missing, swapped or tampered.
func TestReadVerified(t *testing.T) {
	f := newFixture(t)
	v1 := f.signed(t)
	v2 := amend(t, v1, func(c *Charter) { c.Safeguards.Retention = "43800h" })
	f.sign(t, v2, v1, KindOfficial, "deputy", "cio", "registrar")
	f.sign(t, v2, v1, KindHost, "host-north", "host-west")
	v3 := amend(t, v2, func(c *Charter) { c.Guest.Name = "Republic of Demo" })
	f.sign(t, v3, v2, KindOfficial, "min-interior", "cio", "registrar")
	f.sign(t, v3, v2, KindHost, "host-north", "host-west")

	write := func(path string, c *Charter) {
		t.Helper()
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "charter.yaml")
	write(path, v3)
	if _, err := ReadVerified(path); err == nil || !strings.Contains(err.Error(), "version 1 is needed") {
		t.Fatalf("without history: %v", err)
	}
	write(HistoryPath(path, 1), v1)
	write(HistoryPath(path, 2), v1) // the wrong version in v2.yaml
	if _, err := ReadVerified(path); err == nil || !strings.Contains(err.Error(), "holds version 1, not 2") {
		t.Fatalf("swapped history: %v", err)
	}
	tampered := amend(t, v1, func(c *Charter) { c.Safeguards.Retention = "1h" })
	tampered.Version, tampered.Previous, tampered.Signatures = 2, v2.Previous, v2.Signatures
	write(HistoryPath(path, 2), tampered)
	if _, err := ReadVerified(path); err == nil {
		t.Fatal("a tampered v2 in the history verified")
	}
	write(HistoryPath(path, 2), v2)
	got, err := ReadVerified(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || got.Guest.Name != "Republic of Demo" {
		t.Fatalf("got version %d %q", got.Version, got.Guest.Name)
	}
	write(path, v1)
	if _, err := ReadVerified(path); err != nil {
		t.Fatalf("v1 alone: %v", err)
	}
}
