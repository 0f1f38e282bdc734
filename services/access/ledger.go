package access

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// SealedPart is the plaintext of continuity.AccessEntry.Sealed: what ties
// a read to a citizen, hidden from the host.
type SealedPart struct {
	// Person is the citizen who read (a citizen's read) or on whose behalf
	// a relying party read.
	Person string `json:"person,omitempty"`
	// Purpose is the reason the request gave.
	Purpose string `json:"purpose,omitempty"`
	// Answer is a verification's answer: "match" or "no-match".
	Answer string `json:"answer,omitempty"`
}

// maxFindResults bounds the results one citizen's find may record in one
// entry; a citizen's own records are few.
const maxFindResults = 256

// Recorder appends access entries to the ledger before a read is served.
type Recorder struct {
	Log   *ledger.Log
	Keys  *seal.Keyring
	Site  string
	Epoch func() uint64    // the epoch entries are written in; default the log's, at least 1
	Now   func() time.Time // default time.Now
}

// Access describes one read to record.
type Access struct {
	Kind     string // continuity.AccessRecord, AccessFind or AccessVerify
	Registry string
	// ID and Version are the record read (record, verify).
	ID      string
	Version uint64
	// Field and Value are a find's query; Results its records (id, version).
	Field, Value string
	Results      []Result
	// Answer is a verification's answer.
	Answer string
}

// Result is one record a find returned.
type Result struct {
	ID      string
	Version uint64
}

// Entry builds the access entry of a read by p at epoch, sealing the
// citizen-linked parts. It is exported for the tests of format and the
// tracker; Record appends it.
func (r *Recorder) Entry(p Principal, rd Access, epoch uint64) ([]byte, error) {
	rk := r.Keys.Registry(rd.Registry)
	e := continuity.AccessEntry{Kind: rd.Kind, Site: r.Site, Registry: rd.Registry, Version: rd.Version}
	switch p.Kind {
	case KindOfficial:
		e.Official, e.Reader = p.ID, continuity.ReaderOfficial
	case KindCitizen:
		e.Reader = continuity.ReaderCitizen
	case KindClient:
		e.Reader, e.Client = continuity.ReaderClient, p.ID
	default:
		return nil, fmt.Errorf("access entry: unknown kind of principal %q", p.Kind)
	}
	switch rd.Kind {
	case continuity.AccessRecord, continuity.AccessVerify:
		b := rk.BlindID(rd.ID)
		e.BlindID = b[:]
	case continuity.AccessFind:
		if len(rd.Results) > maxFindResults {
			return nil, fmt.Errorf("access entry of a find in registry %s: %d results, more than the %d a principal's find records", rd.Registry, len(rd.Results), maxFindResults)
		}
		v := rk.BlindIndex(rd.Field, rd.Value)
		e.Field, e.Value = rd.Field, v[:]
		e.Results = make([]continuity.AccessResult, len(rd.Results))
		for i, res := range rd.Results {
			b := rk.BlindID(res.ID)
			e.Results[i] = continuity.AccessResult{BlindID: b[:], Version: res.Version}
		}
	default:
		return nil, fmt.Errorf("access entry: unknown kind of read %q", rd.Kind)
	}
	sp := SealedPart{Purpose: p.Purpose, Answer: rd.Answer}
	if p.Kind != KindOfficial {
		sp.Person = p.person()
	}
	if sp != (SealedPart{}) {
		plain, err := json.Marshal(sp)
		if err != nil {
			return nil, err
		}
		ad, err := sealedAD(r.Keys.Guest(), e, epoch)
		if err != nil {
			return nil, err
		}
		if e.Sealed, err = rk.Seal(ad, plain); err != nil {
			return nil, fmt.Errorf("access entry in registry %s: seal: %w", rd.Registry, err)
		}
	}
	return json.Marshal(e)
}

// sealedAD binds the sealed part to the entry's clear fields and epoch.
// A find has no single record: its blinded query stands in for the id.
func sealedAD(guest string, e continuity.AccessEntry, epoch uint64) (seal.RecordAD, error) {
	e.Sealed = nil
	clear, err := json.Marshal(e)
	if err != nil {
		return seal.RecordAD{}, err
	}
	ad := seal.RecordAD{Guest: guest, Registry: e.Registry, Version: e.Version, Epoch: epoch,
		Bound: sha256.Sum256(append([]byte("chancery/access/v1\x00"), clear...))}
	switch {
	case len(e.BlindID) == 32:
		copy(ad.BlindID[:], e.BlindID)
	case len(e.Value) == 32:
		copy(ad.BlindID[:], e.Value)
	}
	return ad, nil
}

// Record appends the access entry of a read and returns once it is
// durable; the caller serves the read only if it returns nil.
func (r *Recorder) Record(ctx context.Context, p Principal, rd Access) error {
	epoch := uint64(0)
	if r.Epoch != nil {
		epoch = r.Epoch()
	} else {
		epoch = max(r.Log.Epoch(), 1)
	}
	payload, err := r.Entry(p, rd, epoch)
	if err != nil {
		return err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if _, err := r.Log.Append(ctx, ledger.Entry{Type: ledger.TypeAccess, Epoch: epoch, Time: now(), Payload: payload}); err != nil {
		return fmt.Errorf("record the access to registry %s in the ledger: %w", rd.Registry, err)
	}
	return nil
}

// OpenSealed opens an access entry's sealed part with the guest's keys.
func OpenSealed(keys *seal.Keyring, e continuity.AccessEntry, epoch uint64) (SealedPart, error) {
	var sp SealedPart
	if len(e.Sealed) == 0 {
		return sp, nil
	}
	ad, err := sealedAD(keys.Guest(), e, epoch)
	if err != nil {
		return sp, err
	}
	plain, err := keys.Registry(e.Registry).Open(ad, e.Sealed)
	if err != nil {
		return sp, fmt.Errorf("access entry in registry %s: %w", e.Registry, err)
	}
	if err := json.Unmarshal(plain, &sp); err != nil {
		return sp, fmt.Errorf("access entry in registry %s: sealed part: %w", e.Registry, err)
	}
	return sp, nil
}

// Seen is one read of a citizen's records, as the data tracker lists it.
type Seen struct {
	Index    uint64    `json:"index"` // the access entry's ledger index
	Time     time.Time `json:"time"`
	Site     string    `json:"site"`
	Registry string    `json:"registry"`
	Kind     string    `json:"kind"`
	// Reader is official, citizen or client; Who the official's or
	// client's id, or "self" when the citizen read their own records.
	Reader  string `json:"reader"`
	Who     string `json:"who"`
	Purpose string `json:"purpose,omitempty"`
}

// Track lists the reads of a citizen's records in the ledger: every access
// entry whose record, or one of whose find results, is one of owned
// (registry → record ids), and every verification of the citizen's id.
// It reads the published tree, after waiting for what the log holds now.
func Track(ctx context.Context, log *ledger.Log, keys *seal.Keyring, person string, owned map[string][]string) ([]Seen, error) {
	blind := blindOwned(keys, owned)
	_, cp, err := log.WaitPublished(ctx, log.Size())
	if err != nil {
		return nil, fmt.Errorf("data tracker: wait for the ledger's checkpoint: %w", err)
	}
	var out []Seen
	err = ledger.Scan(ctx, ledger.DirFetcher(log.Dir()), 0, cp.Size, func(index uint64, raw []byte) error {
		s, ok, err := seenIn(keys, person, blind, index, raw)
		if ok {
			out = append(out, s)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("data tracker: %w", err)
	}
	return out, nil
}

// blindOwned blinds a citizen's record ids, registry by registry, as the
// access entries name them.
func blindOwned(keys *seal.Keyring, owned map[string][]string) map[string]map[[32]byte]bool {
	blind := map[string]map[[32]byte]bool{}
	for reg, ids := range owned {
		rk := keys.Registry(reg)
		m := map[[32]byte]bool{}
		for _, id := range ids {
			m[rk.BlindID(id)] = true
		}
		blind[reg] = m
	}
	return blind
}

// seenIn is the tracker's line for ledger entry index, if it is an access
// entry that touches one of the blinded records.
func seenIn(keys *seal.Keyring, person string, blind map[string]map[[32]byte]bool, index uint64, raw []byte) (Seen, bool, error) {
	le, err := ledger.DecodeEntry(raw)
	if err != nil {
		return Seen{}, false, fmt.Errorf("ledger entry %d: %w", index, err)
	}
	if le.Type != ledger.TypeAccess {
		return Seen{}, false, nil
	}
	var e continuity.AccessEntry
	if err := json.Unmarshal(le.Payload, &e); err != nil {
		return Seen{}, false, nil // an access entry this version cannot read is not the citizen's
	}
	m := blind[e.Registry]
	if m == nil || !touches(m, e) {
		return Seen{}, false, nil
	}
	sp, err := OpenSealed(keys, e, le.Epoch)
	if err != nil {
		return Seen{}, false, fmt.Errorf("ledger entry %d: %w", index, err)
	}
	s := Seen{Index: index, Time: le.Time, Site: e.Site, Registry: e.Registry, Kind: e.ReadKind(), Purpose: sp.Purpose}
	switch e.Reader {
	case continuity.ReaderCitizen:
		s.Reader, s.Who = e.Reader, "another citizen"
		if sp.Person == person {
			s.Who = "self"
		}
	case continuity.ReaderClient:
		s.Reader, s.Who = e.Reader, e.Client
	default:
		s.Reader, s.Who = continuity.ReaderOfficial, e.Official
	}
	return s, true, nil
}

func touches(m map[[32]byte]bool, e continuity.AccessEntry) bool {
	var b [32]byte
	if len(e.BlindID) == 32 {
		copy(b[:], e.BlindID)
		if m[b] {
			return true
		}
	}
	return slices.ContainsFunc(e.Results, func(r continuity.AccessResult) bool {
		if len(r.BlindID) != 32 {
			return false
		}
		copy(b[:], r.BlindID)
		return m[b]
	})
}

// errNoRecorder guards services built without a ledger.
var errNoRecorder = errors.New("access: no recorder")

// Check is Allow, then the record's ownership, then the access entry: the
// whole decision for one record read. The record is served only if it
// returns nil.
func (r *Rules) Check(ctx context.Context, rec *Recorder, p Principal, registry, id string, version uint64, data json.RawMessage) error {
	if err := r.Allow(p, registry, Read); err != nil {
		return err
	}
	if err := r.Owns(p, registry, data); err != nil {
		return err
	}
	if rec == nil {
		return errNoRecorder
	}
	return rec.Record(ctx, p, Access{Kind: continuity.AccessRecord, Registry: registry, ID: id, Version: version})
}
