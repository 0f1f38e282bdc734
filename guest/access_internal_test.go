package guest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
)

// TestAccessFindParts: a find whose results do not fit one ledger entry
// is recorded in parts, each one fitting, that together list every
// result in order.
func TestAccessFindParts(t *testing.T) {
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring("demo-republic", root)
	root.Wipe()
	rk := keys.Registry("population")
	for _, n := range []int{0, 1, 700, 3000} {
		recs := make([]*registry.Record, n)
		for i := range recs {
			recs[i] = &registry.Record{ID: fmt.Sprintf("DR-%07d", i), VersionInfo: registry.VersionInfo{Version: 1<<64 - 1 - uint64(i)}}
		}
		ps, err := accessPayloads(rk, continuity.AccessEntry{Official: "registrar", Site: "embassy-north", Registry: "population"},
			&Read{Kind: continuity.AccessFind, Registry: "population", Records: recs, Field: "last_name", Value: "Romero"})
		if err != nil {
			t.Fatal(err)
		}
		if n > 1000 && len(ps) < 2 {
			t.Fatalf("%d results in %d entry", n, len(ps))
		}
		var all []continuity.AccessResult
		for i, p := range ps {
			if len(p) > ledger.MaxPayloadSize {
				t.Fatalf("%d results: part %d is %d bytes, more than an entry holds", n, i+1, len(p))
			}
			var e continuity.AccessEntry
			if err := json.Unmarshal(p, &e); err != nil {
				t.Fatal(err)
			}
			if len(ps) > 1 && (e.Part != i+1 || e.Parts != len(ps)) || len(ps) == 1 && (e.Part != 0 || e.Parts != 0) {
				t.Fatalf("%d results: entry %d numbered %d of %d", n, i, e.Part, e.Parts)
			}
			if e.Kind != continuity.AccessFind || e.Field != "last_name" || len(e.Value) != 32 {
				t.Fatalf("%d results: part %d is %+v", n, i+1, e)
			}
			all = append(all, e.Results...)
		}
		if len(all) != n {
			t.Fatalf("%d results recorded as %d", n, len(all))
		}
		for i, r := range all {
			if b := rk.BlindID(recs[i].ID); !bytes.Equal(r.BlindID, b[:]) || r.Version != recs[i].Version {
				t.Fatalf("%d results: result %d out of place", n, i)
			}
		}
	}
}
