package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/chancery-gov/chancery/ledger"
)

// TestDataReaderAgreesWithOpenRecordEntry: for every record entry of a
// ledger — plain bodies (the one-pass path), an id with escapes, a record
// with an attachment (the full decoding), a tombstone, in two registries —
// one DataReader, reused from entry to entry, decodes the entry
// UnmarshalRecordEntry decodes and gives the id and data OpenRecordEntry
// gives, and a sealed body with one byte changed is refused by both.
func TestDataReaderAgreesWithOpenRecordEntry(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	put := map[string]json.RawMessage{"P-77": json.RawMessage(`{"parcel_id":"P-77","owner_id":"DR-1"}`)}
	for _, id := range []string{"DR-1", "DR-2", `DR-"3"\x`} {
		put[id] = person(id, "Ivanova")
		if _, err := fx.reg.Put(ctx, "population", id, put[id], nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fx.reg.Delete(ctx, "population", "DR-2"); err != nil {
		t.Fatal(err)
	}
	ref, err := fx.reg.PutBlob(ctx, "land", bytes.NewReader([]byte("deed")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.reg.Put(ctx, "land", "P-77", json.RawMessage(`{"parcel_id":"P-77","owner_id":"DR-1"}`), []Attachment{{Name: "deed.pdf", Size: ref.Size, Ref: ref}}); err != nil {
		t.Fatal(err)
	}
	size := fx.log.Size()
	if _, _, err := fx.log.WaitPublished(ctx, size); err != nil {
		t.Fatal(err)
	}
	seen := 0
	dr := NewDataReader(fx.keys, fx.c.Guest.ID)
	err = ledger.Scan(ctx, ledger.DirFetcher(fx.log.Dir()), 0, size, func(idx uint64, raw []byte) error {
		e, err := ledger.DecodeEntry(raw)
		if err != nil || e.Type != ledger.TypeRecord {
			return err
		}
		re, err := UnmarshalRecordEntry(e.Payload)
		if err != nil {
			return err
		}
		want, err := OpenRecordEntry(fx.keys, fx.c.Guest.ID, &e, re)
		if err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		got, err := dr.Decode(e.Payload)
		if err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		if got.Kind != re.Kind || got.Registry != re.Registry || got.Version != re.Version || got.Commitment != re.Commitment ||
			!bytes.Equal(got.Sealed, re.Sealed) || got.AD(fx.c.Guest.ID, e.Epoch) != re.AD(fx.c.Guest.ID, e.Epoch) {
			t.Fatalf("entry %d: the reader decoded %+v, UnmarshalRecordEntry %+v", idx, got, re)
		}
		// The columns a restore takes out: one present in each registry,
		// one nested (taken whole), one absent.
		names := []string{"last_name", "owner_id", "address", "absent"}
		fields := make([][]byte, len(names))
		err = dr.OpenFields(&e, got, names, fields, func(id, data []byte) error {
			if want.Deleted {
				if !slices.EqualFunc(fields, make([][]byte, len(names)), func(a, b []byte) bool { return a == nil && b == nil }) {
					t.Errorf("entry %d, a tombstone: fields %q", idx, fields)
				}
				if id != nil || data != nil {
					t.Errorf("entry %d, a tombstone: id %q, data %s", idx, id, data)
				}
				return nil
			}
			if string(id) != want.ID || !bytes.Equal(data, want.Data) {
				t.Errorf("entry %d: id %q data %s, OpenRecordEntry: id %q data %s", idx, id, data, want.ID, want.Data)
			}
			if w, ok := put[string(id)]; !ok || !sameJSONText(data, w) {
				t.Errorf("entry %d: id %q data %s, not what was put", idx, id, data)
			}
			if wf, ok := FieldsOfValid(want.Data, names); !ok || !slices.EqualFunc(fields, wf, bytes.Equal) {
				t.Errorf("entry %d: fields %q, FieldsOfValid %q", idx, fields, wf)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		seen++
		if !want.Deleted {
			re.Sealed = bytes.Clone(re.Sealed)
			re.Sealed[len(re.Sealed)/2] ^= 1
			if err := dr.Open(&e, re, func(id, data []byte) error { return nil }); err == nil {
				t.Errorf("entry %d: opened with a byte of its sealed body changed", idx)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != 5 {
		t.Fatalf("%d record entries, want 5", seen)
	}
}

func sameJSONText(a, b []byte) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}
