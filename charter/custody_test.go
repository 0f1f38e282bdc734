package charter

import (
	"bytes"
	"strings"
	"testing"
)

// TestCustodyPinned: the charter pins the custody package and its root
// commitment. Both are signed (they change the canonical bytes), survive
// a YAML round trip, go together, and are 32 bytes in lowercase hex; a
// charter without them keeps the bytes it had before they existed.
func TestCustodyPinned(t *testing.T) {
	f := newFixture(t)
	plain := f.charter(t).CanonicalBytes()
	if bytes.Contains(plain, []byte(`"package"`)) || bytes.Contains(plain, []byte(`"commitment"`)) {
		t.Fatalf("a charter without a pinned package carries the fields:\n%s", plain)
	}
	pkg, commit := strings.Repeat("ab", 32), strings.Repeat("0c", 32)
	c := f.charter(t)
	c.Custodians.Package, c.Custodians.Commitment = pkg, commit
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	pinned := c.CanonicalBytes()
	if !bytes.Contains(pinned, []byte(`"package":"`+pkg+`","commitment":"`+commit+`"}`)) {
		t.Fatalf("canonical custodians not as documented:\n%s", pinned)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil || !bytes.Equal(back.CanonicalBytes(), pinned) {
		t.Fatalf("pinned custody does not round-trip: %v", err)
	}
	for name, tc := range map[string]struct{ pkg, commit, want string }{
		"package alone":    {pkg, "", "both or neither"},
		"commitment alone": {"", commit, "both or neither"},
		"upper case":       {strings.ToUpper(pkg), commit, "custodians.package"},
		"short":            {pkg, commit[:62], "custodians.commitment"},
		"not hex":          {strings.Repeat("zz", 32), commit, "custodians.package"},
	} {
		c := f.charter(t)
		c.Custodians.Package, c.Custodians.Commitment = tc.pkg, tc.commit
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		}
	}
}
