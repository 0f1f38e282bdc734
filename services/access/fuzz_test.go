package access

import (
	"encoding/json"
	"testing"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/seal"
)

// FuzzLinkValue: the link of a record is found only where encoding/json
// finds that field as a string.
func FuzzLinkValue(f *testing.F) {
	f.Add([]byte(`{"owner_id":"P-1"}`), "owner_id")
	f.Add([]byte(`{"owner_id":1}`), "owner_id")
	f.Add([]byte(`{"owner_id":"P-1","owner_id":"P-2"}`), "owner_id")
	f.Fuzz(func(t *testing.T, b []byte, field string) {
		v, err := LinkValue(b, field)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			t.Fatalf("link %q found in what encoding/json refuses", v)
		}
		if s, ok := m[field].(string); !ok || s != v {
			t.Fatalf("link %q, encoding/json says %v", v, m[field])
		}
	})
}

// FuzzOpenSealed: an access entry from the ledger, however damaged, is
// refused or opened, never a panic.
func FuzzOpenSealed(f *testing.F) {
	root, err := seal.NewRootKey()
	if err != nil {
		f.Fatal(err)
	}
	keys := seal.NewKeyring("demo-republic", root)
	rec := &Recorder{Keys: keys, Site: "s"}
	good, err := rec.Entry(Principal{Kind: KindCitizen, ID: "P-1", Purpose: "p"}, Access{Kind: continuity.AccessRecord, Registry: "land", ID: "L-1", Version: 1}, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"registry":"land","sealed":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e continuity.AccessEntry
		if json.Unmarshal(b, &e) != nil || e.Registry == "" || len(e.Registry) > 64 {
			return
		}
		OpenSealed(keys, e, 1)
	})
}
