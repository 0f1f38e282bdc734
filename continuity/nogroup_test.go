package continuity_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/group"

	"github.com/chancery-gov/chancery/seal"
)

// TestStateHoldsNoRootPoint: no file of a founded guest state — the custody
// package every embassy receives, the charter, the ledgers, the keys —
// contains s·G (version 1 custody packages did), nor s or any share's
// point, from which a future quantum computer would recover s and so R.
func TestStateHoldsNoRootPoint(t *testing.T) {
	r := demo(t)
	root, err := seal.ReadRootKeyFile(r.layout.RootKey(), r.prot.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Wipe()
	s := scalarField(t, root, "s")
	sG, err := group.Ristretto255.NewElement().MulGen(s).MarshalBinaryCompress()
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := s.MarshalBinary()
	forbidden := map[string][]byte{"s·G": sG, "s": sb}
	c := r.custody(t)
	for _, id := range c.ord {
		sh, err := c.pkg.OpenShare(id, c.ids[id])
		if err != nil {
			t.Fatal(err)
		}
		p, _ := group.Ristretto255.NewElement().MulGen(scalarOf(t, sh)).MarshalBinaryCompress()
		forbidden["share point of "+id] = p
		sh.Wipe()
	}
	files := 0
	err = filepath.WalkDir(r.layout.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for name, v := range forbidden {
			if bytes.Contains(b, v) {
				t.Errorf("%s contains %s", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("walked %d files: the fixture wrote no state", files)
	}
}
