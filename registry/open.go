package registry

import (
	"encoding/json"
	"fmt"

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
	rec := &Record{Registry: re.Registry, VersionInfo: VersionInfo{Version: re.Version, Time: e.Time, Epoch: e.Epoch, Deleted: re.Kind == KindTombstone}}
	if re.Kind == KindTombstone {
		return rec, re, nil
	}
	plain, err := keys.Registry(re.Registry).Open(re.AD(guest, e.Epoch), re.Sealed)
	if err != nil {
		return nil, re, fmt.Errorf("%s version %d: %w", re.Registry, re.Version, err)
	}
	defer clear(plain)
	var b body
	if err := json.Unmarshal(plain, &b); err != nil {
		return nil, re, fmt.Errorf("%s version %d: sealed body: %w", re.Registry, re.Version, err)
	}
	rec.ID, rec.Data = b.ID, append(json.RawMessage(nil), b.Data...)
	if len(b.Attachments) != len(re.Attachments) {
		return nil, re, fmt.Errorf("%s version %d: %d attachments sealed, %d referenced", re.Registry, re.Version, len(b.Attachments), len(re.Attachments))
	}
	for i, a := range b.Attachments {
		var ref store.Ref
		if err := ref.UnmarshalBinary(re.Attachments[i].Ref); err != nil {
			return nil, re, fmt.Errorf("%s version %d attachment %s: %w", re.Registry, re.Version, a.Name, err)
		}
		if ref.Size != a.Size {
			return nil, re, fmt.Errorf("%s version %d attachment %s: sealed size %d, its chunks hold %d", re.Registry, re.Version, a.Name, a.Size, ref.Size)
		}
		rec.Attachments = append(rec.Attachments, Attachment{Name: a.Name, Size: a.Size, Ref: ref})
	}
	return rec, re, nil
}

// Exclusive runs fn while no write is in progress and none can start: what
// a writer site needs to end its epoch (a failback order) with nothing of
// its own appended after it.
func (r *Registries) Exclusive(fn func() error) error {
	r.bulk.Lock()
	defer r.bulk.Unlock()
	return fn()
}
