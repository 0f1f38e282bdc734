package registry

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// TestSealedBodyBindsClearFields: a host that edits what a record entry
// says in clear — turns a put into a tombstone, changes an index value,
// swaps, drops or adds a chunk id — leaves the sealed body intact, and
// opening it fails with seal.ErrAuth. An attachment whose size differs
// from its chunks' is refused before it is sealed.
func TestSealedBodyBindsClearFields(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	deed := bytes.Repeat([]byte("deed "), 3000)
	ref, err := fx.reg.PutBlob(ctx, "land", bytes.NewReader(deed))
	if err != nil {
		t.Fatal(err)
	}
	other, err := fx.reg.PutBlob(ctx, "land", bytes.NewReader([]byte("another deed entirely")))
	if err != nil {
		t.Fatal(err)
	}
	g := fx.reg.regs["land"]
	guest := fx.c.Guest.ID
	data := []byte(`{"parcel_id":"P-1","owner_id":"DR-1"}`)
	p, err := g.prepare(guest, "P-1", 1, 1, KindPut, data, []Attachment{{Name: "deed.pdf", Size: int64(len(deed)), Ref: ref}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(e *RecordEntry) error {
		payload, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := (ledger.Entry{Type: ledger.TypeRecord, Epoch: 1, Time: time.UnixMilli(1e12), Payload: payload}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = OpenEntry(fx.keys, guest, raw)
		return err
	}
	if err := open(p.entry); err != nil {
		t.Fatalf("untouched entry: %v", err)
	}
	for name, edit := range map[string]func(e *RecordEntry){
		"kind":          func(e *RecordEntry) { e.Kind = KindTombstone },
		"index value":   func(e *RecordEntry) { e.Index[0][0] ^= 1 },
		"index dropped": func(e *RecordEntry) { e.Index = e.Index[:1] },
		"chunk swapped": func(e *RecordEntry) { e.Chunks[0] = other.Chunks[0] },
		"chunk dropped": func(e *RecordEntry) { e.Chunks = e.Chunks[1:] },
		"chunk added":   func(e *RecordEntry) { e.Chunks = ChunkSet([]store.Ref{ref, other}) },
	} {
		e := *p.entry
		e.Index = append([][32]byte(nil), p.entry.Index...)
		e.Chunks = append([]store.ID(nil), p.entry.Chunks...)
		edit(&e)
		err := open(&e)
		if e.Kind == KindTombstone {
			// A tombstone is not opened by OpenEntry: check the AD directly.
			_, err = g.keys.Open(e.AD(guest, 1), e.Sealed)
		}
		if !errors.Is(err, seal.ErrAuth) {
			t.Errorf("%s edited: %v, want ErrAuth", name, err)
		}
	}
	// A size that disagrees with the chunks' is refused before sealing.
	_, err = g.prepare(guest, "P-2", 1, 1, KindPut, []byte(`{"parcel_id":"P-2","owner_id":"DR-1"}`),
		[]Attachment{{Name: "deed.pdf", Size: int64(len(deed)) - 1, Ref: ref}})
	if err == nil || !strings.Contains(err.Error(), "its chunks hold") {
		t.Errorf("attachment of the wrong size: %v", err)
	}
}

// TestOldEntryFormatRefused: a record entry of format 1, which carried the
// attachment references in clear, is refused by name, not misread.
func TestOldEntryFormatRefused(t *testing.T) {
	e := &RecordEntry{Kind: KindPut, Registry: "land", Version: 1, Sealed: []byte("sealed")}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 1
	if _, err := UnmarshalRecordEntry(b); !errors.Is(err, ErrOldEntryFormat) {
		t.Fatalf("format 1 entry: %v, want ErrOldEntryFormat", err)
	}
	b[0] = 3
	if _, err := UnmarshalRecordEntry(b); err == nil || errors.Is(err, ErrOldEntryFormat) {
		t.Fatalf("format 3 entry: %v", err)
	}
}
