package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// OpenEntry decrypts one encoded record entry with the guest's keys,
// outside any index: for entries that are not in the tree a site serves,
// such as those a fenced home wrote past the fork, which reconciliation
// shows to officials. It returns the record as it was written, with the
// version and epoch the entry carries (its ledger index is the caller's).
func OpenEntry(keys *seal.Keyring, guest string, raw []byte) (*Record, *RecordEntry, error) {
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		return nil, nil, err
	}
	if e.Type != ledger.TypeRecord {
		return nil, nil, fmt.Errorf("entry of type %s is not a record", e.Type)
	}
	re, err := UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return nil, nil, err
	}
	rec, err := OpenRecordEntry(keys, guest, &e, re)
	return rec, re, err
}

// OpenRecordEntry is OpenEntry for an entry already decoded, with its
// record entry: a reader that decodes every entry to choose which to open
// (a restore) does not decode them twice.
func OpenRecordEntry(keys *seal.Keyring, guest string, e *ledger.Entry, re *RecordEntry) (*Record, error) {
	rec := &Record{Registry: re.Registry, VersionInfo: VersionInfo{Version: re.Version, Time: e.Time, Epoch: e.Epoch, Deleted: re.Kind == KindTombstone}}
	if re.Kind == KindTombstone {
		return rec, nil
	}
	plain, err := keys.Registry(re.Registry).Open(re.AD(guest, e.Epoch), re.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%s version %d: %w", re.Registry, re.Version, err)
	}
	defer clear(plain)
	// Most bodies are an id without escapes and data, no attachments:
	// those are taken apart in one pass, without decoding the data (a
	// restore opens a million of them).
	if id, data, ok := simpleBody(plain, re); ok {
		rec.ID, rec.Data = string(id), bytes.Clone(data)
		return rec, nil
	}
	var b body
	if err := json.Unmarshal(plain, &b); err != nil {
		return nil, fmt.Errorf("%s version %d: sealed body: %w", re.Registry, re.Version, err)
	}
	rec.ID, rec.Data = b.ID, append(json.RawMessage(nil), b.Data...)
	if rec.Attachments, err = b.attachments(re); err != nil {
		return nil, fmt.Errorf("%s version %d: %w", re.Registry, re.Version, err)
	}
	return rec, nil
}

// simpleBody takes apart a sealed body that is an id without escapes and
// data, no attachments, in one pass: its id's text and its data, aliasing
// plain. Not ok: the body is another shape (or not JSON), for the full
// decoding to take apart or refuse.
func simpleBody(plain []byte, re *RecordEntry) (id, data []byte, ok bool) {
	return simpleBodyFields(plain, re, fieldsOf{})
}

// simpleBodyFields is simpleBody that takes the members sub names out of
// the data into sub.out in the same pass.
func simpleBodyFields(plain []byte, re *RecordEntry, sub fieldsOf) (id, data []byte, ok bool) {
	if len(re.Chunks) != 0 {
		return nil, nil, false
	}
	var f [3][]byte
	if !validObjectNested(fieldsOf{[]string{"id", "data", "attachments"}, f[:]}, plain, 1, sub) || f[2] != nil || len(f[0]) < 2 || f[0][0] != '"' || bytes.IndexByte(f[0], '\\') >= 0 || (f[1] != nil && f[1][0] != '{') {
		return nil, nil, false
	}
	return f[0][1 : len(f[0])-1], f[1], true
}

// A DataReader decodes and opens record entries one after another, for a
// reader of millions of records that turns each into something else at
// once (a restore into a database): the decoded entry and the opened body
// live in buffers it reuses, so reading a record allocates nothing. Not
// safe for concurrent use: one per goroutine.
type DataReader struct {
	keys  *seal.Keyring
	guest string
	re    RecordEntry
	reg   string // the registry open belongs to
	open  *seal.RecordOpener
}

// NewDataReader returns a DataReader of the guest's records.
func NewDataReader(keys *seal.Keyring, guest string) *DataReader {
	return &DataReader{keys: keys, guest: guest}
}

// Decode is UnmarshalRecordEntry into the reader's own entry, which the
// next Decode overwrites; it aliases payload.
func (r *DataReader) Decode(payload []byte) (*RecordEntry, error) {
	if err := r.re.unmarshal(payload); err != nil {
		return nil, err
	}
	return &r.re, nil
}

// Open opens a record entry already decoded as OpenRecordEntry does (the
// same AEAD open under the same additional data, the same checks of the
// sealed body), and calls fn with the record's id and data: valid JSON,
// nil for a tombstone. Both alias the opened body, which is cleared when
// fn returns: fn must not keep them.
func (r *DataReader) Open(e *ledger.Entry, re *RecordEntry, fn func(id, data []byte) error) error {
	return r.OpenFields(e, re, nil, nil, fn)
}

// OpenFields is Open that also takes the raw values of the data's
// top-level members names into out (len(names) long, nil where absent)
// before it calls fn, in the same walk as the body's check where the body
// allows (FieldsOfValid's values): a restore's columns, without a second
// pass over every record.
func (r *DataReader) OpenFields(e *ledger.Entry, re *RecordEntry, names []string, out [][]byte, fn func(id, data []byte) error) error {
	clear(out)
	if re.Kind == KindTombstone {
		return fn(nil, nil)
	}
	if r.open == nil || r.reg != re.Registry {
		r.open, r.reg = r.keys.Registry(re.Registry).Opener(), re.Registry
	}
	ad := re.AD(r.guest, e.Epoch)
	plain, err := r.open.Open(&ad, re.Sealed)
	if err != nil {
		return fmt.Errorf("%s version %d: %w", re.Registry, re.Version, err)
	}
	defer clear(plain)
	if id, data, ok := simpleBodyFields(plain, re, fieldsOf{names, out}); ok {
		return fn(id, data)
	}
	rec, err := OpenRecordEntry(r.keys, r.guest, e, re)
	if err != nil {
		return err
	}
	if len(names) > 0 && !FieldsOfValidInto(out, rec.Data, names) { // it clears out first
		return fmt.Errorf("%s version %d: the record's data is not a JSON object", re.Registry, re.Version)
	}
	return fn([]byte(rec.ID), rec.Data)
}

// attachments decodes the store references the sealed body lists and
// checks that the chunks they use are exactly the set the entry carries
// in clear, which is what sites ship and check for the version: a body
// sealed with one set and an entry naming another is refused, though the
// AD binding makes that reachable only by a writer holding the keys.
func (b *body) attachments(re *RecordEntry) ([]Attachment, error) {
	if len(b.Attachments) == 0 && len(re.Chunks) == 0 {
		return nil, nil
	}
	out := make([]Attachment, 0, len(b.Attachments))
	refs := make([]store.Ref, 0, len(b.Attachments))
	for _, a := range b.Attachments {
		var ref store.Ref
		if err := ref.UnmarshalBinary(a.Ref); err != nil {
			return nil, fmt.Errorf("attachment %s: %w", a.Name, err)
		}
		out = append(out, Attachment{Name: a.Name, Size: ref.Size, Ref: ref})
		refs = append(refs, ref)
	}
	if got := ChunkSet(refs); !slices.Equal(got, re.Chunks) {
		return nil, fmt.Errorf("the %d distinct chunks the sealed attachments use are not the set of %d the entry lists", len(got), len(re.Chunks))
	}
	return out, nil
}

// Exclusive runs fn while no write is in progress and none can start: what
// a writer site needs to end its epoch (a failback order) with nothing of
// its own appended after it.
func (r *Registries) Exclusive(fn func() error) error {
	r.bulk.Lock()
	defer r.bulk.Unlock()
	return fn()
}

// Fence makes every write from now on fail with ErrFenced (on) or lets
// writes through again (off, a refused failback order). A write already
// waiting behind an Exclusive sees the fence set inside it, so nothing
// is appended after the order that ended the epoch: the API refuses
// writes by the site's mode, but a writer in the same process (the
// PostgreSQL connector) only learns it here.
func (r *Registries) Fence(on bool) { r.fenced.Store(on) }
