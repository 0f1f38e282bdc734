package guest

import (
	"fmt"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
)

// BlobRefs is audit.RefsFunc for a guest's record entries: the chunks a
// record version's attachments use, as the entry names them (one sorted
// set; the attachments themselves are inside the sealed body). audit does
// not import registry, so the site and `chancery verify --blobs` pass it.
func BlobRefs(index uint64, e ledger.Entry) ([]audit.BlobRef, error) {
	if e.Type != ledger.TypeRecord {
		return nil, nil
	}
	re, err := registry.UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return nil, err
	}
	if len(re.Chunks) == 0 {
		return nil, nil
	}
	return []audit.BlobRef{{Registry: re.Registry, Record: fmt.Sprintf("%x… version %d", re.BlindID[:8], re.Version), Chunks: re.Chunks}}, nil
}
