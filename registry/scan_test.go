package registry

import (
	"context"
	"encoding/json"
	"testing"
)

func TestScanAsOfSeesVersionsAtTheIndex(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	for _, id := range []string{"DR-1", "DR-2", "DR-3"} {
		if _, err := fx.reg.Put(ctx, "population", id, person(id, "Old"), nil); err != nil {
			t.Fatal(err)
		}
	}
	at := fx.log.Size() - 1
	// After the index: one changes, one is deleted, one is added.
	if _, err := fx.reg.Put(ctx, "population", "DR-1", person("DR-1", "New"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Delete(ctx, "population", "DR-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Put(ctx, "population", "DR-4", person("DR-4", "New"), nil); err != nil {
		t.Fatal(err)
	}
	scan := func(a AsOf) map[string]string {
		got := map[string]string{}
		if err := fx.reg.ScanAsOf(ctx, "population", a, func(r *Record) error {
			var m map[string]any
			if err := json.Unmarshal(r.Data, &m); err != nil {
				return err
			}
			got[r.ID] = m["last_name"].(string)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := scan(AsOf{Index: &at}); len(got) != 3 || got["DR-1"] != "Old" || got["DR-2"] != "Old" {
		t.Fatalf("as of %d: %v", at, got)
	}
	if got := scan(AsOf{}); len(got) != 3 || got["DR-1"] != "New" || got["DR-4"] != "New" || got["DR-2"] != "" {
		t.Fatalf("latest: %v", got)
	}
}
