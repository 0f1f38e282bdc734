package continuity_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/chancery-gov/chancery/continuity"
)

// FuzzParseSignedOrder checks that ParseSignedOrder never panics, that
// whatever it accepts is exactly what Marshal writes for it (one order,
// one encoding), and that verifying it against a charter never panics.
func FuzzParseSignedOrder(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "activate.order"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(bytes.Replace(golden, []byte(`"epoch":2`), []byte(`"epoch":2,"epoch":3`), 1))
	f.Add(bytes.Replace(golden, []byte(`"registries":["land","population"]`), []byte(`"registries":null`), 1))
	f.Add([]byte(`{"format":"chancery-order/v1","order":{},"signatures":[]}`))
	f.Add([]byte(`{"format":"chancery-order/v1","order":{"id":"\ud800"},"signatures":[{}]}`))
	r := demo(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		so, err := continuity.ParseSignedOrder(data)
		if err != nil {
			return
		}
		out, err := so.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed order: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in %q\nout %q", data, out)
		}
		_ = so.Order.String()
		_ = continuity.TallyOrder(r.c, so)
		_, _ = continuity.Verify(r.c, so, homeState(), t0)
	})
}
