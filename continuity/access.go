package continuity

// The access entry: the ledger's record of a read at an activated site.
// The site appends it; an auditor decodes it alone, so the format lives
// here rather than in the daemon.

// Kinds of read an access entry records (AccessEntry.Kind).
const (
	AccessRecord     = "record"     // GET …/records/{id}: one record version
	AccessHistory    = "history"    // GET …/records/{id}/history: a record's versions
	AccessFind       = "find"       // GET …/records?field=F&value=V: a search
	AccessAttachment = "attachment" // GET …/records/{id}/attachments/{name}
	AccessVerify     = "verify"     // an identity verification (match / no-match) by a relying party
)

// Readers an access entry names (AccessEntry.Reader). Entries without one
// are officials' reads.
const (
	ReaderOfficial = "official"
	ReaderCitizen  = "citizen"
	ReaderClient   = "client"
)

// AccessEntry is the payload of a ledger access entry: who read what at
// which site, appended before the read is served. Nothing in it is
// plaintext content: record ids, attachment names and searched values
// are blinded with the registry's keys exactly as the record entries
// blind them, so an auditor holding the keys can tie an access entry to
// the record entries it read, and a host can tie it to nothing.
type AccessEntry struct {
	// Kind is the kind of read (AccessRecord, AccessHistory, AccessFind,
	// AccessAttachment). Entries written before reads had kinds have
	// none: they are record reads (see ReadKind).
	Kind     string `json:"kind,omitempty"`
	Official string `json:"official"`
	Site     string `json:"site"`
	Registry string `json:"registry"`
	// BlindID is the record read (record, history, attachment):
	// BlindID(record id), as in its record entries.
	BlindID []byte `json:"blind_id,omitempty"`
	// Version is the version served (record, attachment), or the newest
	// version a history listed.
	Version uint64 `json:"version,omitempty"`
	// Attachment is the attachment served, by its blinded name
	// (BlindIndex("\x00attachment", name); record entries no longer carry
	// it, the name is sealed in the body); Digest is the hash of its store
	// reference (store.Ref.Hash), which names the exact bytes served,
	// blinded with the registry's keys (guest.AttachmentDigest), so a host
	// cannot search the attachment's size out of it.
	Attachment []byte `json:"attachment,omitempty"`
	Digest     []byte `json:"digest,omitempty"`
	// Field is the index field a find searched (a name from the charter,
	// in clear); Value the value searched, blinded as the record entries'
	// index is: BlindIndex(field, value).
	Field string `json:"field,omitempty"`
	Value []byte `json:"blind_value,omitempty"`
	// Results are the records a find returned, possibly none.
	Results []AccessResult `json:"results,omitempty"`
	// Part and Parts number the entries of a find whose results do not
	// fit one entry: they are appended together, Part 1 to Parts, each
	// with the same query. Absent when the find fits one entry.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
	// Reader is who read: ReaderOfficial (also when absent), ReaderCitizen
	// or ReaderClient. A citizen's identity is never in clear: it is in
	// Sealed.
	Reader string `json:"reader,omitempty"`
	// Client is the relying party's client id, in clear (relying parties
	// are institutions the charter names).
	Client string `json:"client,omitempty"`
	// Sealed holds what would tie the entry to a citizen or say why they
	// were read: the reading citizen's person id, the purpose, a
	// verification's answer. It is sealed with the registry's data key
	// (services/access.SealedPart), additional data binding the blinded id
	// read, the epoch and the entry's clear fields, so a host learns
	// nothing and nobody can move it to another entry.
	Sealed []byte `json:"sealed,omitempty"`
}

// AccessResult is one record a find returned: its blinded id and the
// version served.
type AccessResult struct {
	BlindID []byte `json:"blind_id"`
	Version uint64 `json:"version"`
}

// ReadKind is the entry's kind of read; an entry without one, written
// before reads had kinds, is a record read.
func (e *AccessEntry) ReadKind() string {
	if e.Kind == "" {
		return AccessRecord
	}
	return e.Kind
}
