package charter

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives Marshal and Parse again with the same canonical bytes, so that
// `charter sign`, which rewrites the file, can never change what was signed.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"example-v1.yaml", "example-v2.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("format: chancery-charter/v1\nversion: 1\n"))
	f.Add([]byte("quorum: {amend: {threshold: 1, of: [a], require: {a: 9999999999}}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed charter: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-Parse of marshalled charter: %v\n%s", err, out)
		}
		if !bytes.Equal(c.CanonicalBytes(), c2.CanonicalBytes()) {
			t.Fatalf("canonical bytes changed through Marshal:\n%s\n%s", c.CanonicalBytes(), c2.CanonicalBytes())
		}
		_ = Summary(c)
		_ = VerifySignatures(c, nil)
	})
}
