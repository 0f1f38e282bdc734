package guest

import (
	"bytes"
	"context"
	"fmt"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
)

// Supersession is the answer of the online check of a certified extract
// (docs/extracts.md): whether a later version of the certified record is
// in the ledger, as of a checkpoint. It says nothing of any record's
// contents: only versions and ledger indexes, which the ledger a host
// holds already shows.
type Supersession struct {
	Registry    string `json:"registry"`
	RecordIndex uint64 `json:"record_index"` // the certified version's entry
	Version     uint64 `json:"version"`      // the certified version
	Superseded  bool   `json:"superseded"`
	// Deleted: the latest version is a deletion.
	Deleted bool `json:"deleted,omitempty"`
	// Latest and LatestIndex are the newest version of the record in the
	// ledger and its entry's index.
	Latest      uint64 `json:"latest_version"`
	LatestIndex uint64 `json:"latest_index"`
	// AsOf is the size of the checkpoint the answer holds for; Checkpoint
	// that checkpoint as the writer signed it.
	AsOf       uint64 `json:"as_of"`
	Checkpoint string `json:"checkpoint"`
	Site       string `json:"site"`
}

// Supersession answers the online check of an extract of version of a
// record of registry, whose entry is at ledger index recordIndex: it reads
// that entry's blind id from the ledger this site holds and looks for
// later entries of the same record, up to its newest checkpoint. It needs
// no key, so every site answers it, standby included; a site that holds
// the registry's entries only as withheld stubs says so. A refusal is a
// *RefusedError.
func (t *Guest) Supersession(ctx context.Context, reg string, recordIndex, version uint64) (*Supersession, error) {
	l := t.ledger()
	signed, cp := l.Checkpoint()
	if recordIndex >= cp.Size {
		return nil, &RefusedError{Msg: fmt.Sprintf("record_index %d: the ledger of %s at site %s has %d entries", recordIndex, t.id, t.site, cp.Size)}
	}
	f := ledger.DirFetcher(l.Dir())
	// The entry is read from the bundles of the checkpoint's tree: a
	// tree of recordIndex+1 entries may have no tiles of its own left.
	raw, err := ledger.ReadEntry(ctx, f, recordIndex, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("online check of %s entry %d: %w", reg, recordIndex, err)
	}
	e, err := ledger.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("online check of %s entry %d: %w", reg, recordIndex, err)
	}
	switch e.Type {
	case ledger.TypeWithheld:
		return nil, &RefusedError{Msg: fmt.Sprintf("record_index %d: site %s holds no entry of registry %s (the charter does not place it here): ask a site that holds it", recordIndex, t.site, reg)}
	case ledger.TypeRecord:
	default:
		return nil, &RefusedError{Msg: fmt.Sprintf("record_index %d: the entry is a %s entry, not a record version", recordIndex, e.Type)}
	}
	first, err := registry.UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("online check of %s entry %d: %w", reg, recordIndex, err)
	}
	if first.Registry != reg || first.Version != version {
		return nil, &RefusedError{Msg: fmt.Sprintf("record_index %d: the entry is version %d of a record of registry %s, the extract says version %d of %s", recordIndex, first.Version, first.Registry, version, reg)}
	}
	out := &Supersession{Registry: reg, RecordIndex: recordIndex, Version: version, Latest: version, LatestIndex: recordIndex, AsOf: cp.Size, Checkpoint: string(signed), Site: t.site, Deleted: first.Kind == registry.KindTombstone}
	// A cheap filter before decoding: the registry's name and the blind
	// id, as the entry encoding lays them out.
	marker := append([]byte(reg), first.BlindID[:]...)
	err = ledger.Scan(ctx, f, recordIndex+1, cp.Size, func(idx uint64, raw []byte) error {
		if !bytes.Contains(raw, marker) {
			return nil
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil || e.Type != ledger.TypeRecord {
			return err
		}
		re, err := registry.UnmarshalRecordEntry(e.Payload)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		if re.Registry == reg && re.BlindID == first.BlindID && re.Version > out.Latest {
			out.Latest, out.LatestIndex, out.Deleted = re.Version, idx, re.Kind == registry.KindTombstone
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("online check of %s entry %d: %w", reg, recordIndex, err)
	}
	out.Superseded = out.Latest > version || out.Deleted
	return out, nil
}
