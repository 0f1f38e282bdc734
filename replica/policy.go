package replica

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/store"
)

// Writers says which key may sign the guest's checkpoints in each epoch.
// The writer of an epoch is named by the order that opened it (continuity);
// until an activation, that is the home.
type Writers interface {
	// Verifiers returns the verifiers of the key that writes epoch.
	Verifiers(epoch uint64) (note.Verifiers, error)
}

// Learner is Writers that learns from the entries a site receives: the
// governance orders in a batch (continuity) may open a new epoch and name
// its writer. Learn checks the orders among entries and returns Writers
// that know them, leaving the Learner as it was; Commit folds them in once
// the batch is durable.
type Learner interface {
	Writers
	Learn(first uint64, entries [][]byte) (Writers, error)
	// Commit is given the batch's checkpoint too: its epoch is the newest
	// the sender knew of, which tells an order still in force from one
	// that later orders have overtaken.
	Commit(first uint64, entries [][]byte, cp ledger.Checkpoint)
}

// HomeWriter is Writers for a guest that has never activated a site: the
// charter's home site writes every epoch.
type HomeWriter struct{ Charter *charter.Charter }

// Verifiers implements Writers.
func (h HomeWriter) Verifiers(epoch uint64) (note.Verifiers, error) {
	home, ok := h.Charter.Home()
	if !ok {
		return nil, fmt.Errorf("charter of %s names no home site", h.Charter.Guest.ID)
	}
	v, err := ledger.ParseVerifierKey(home.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key of home site %s: %w", home.ID, err)
	}
	return note.VerifierList(v), nil
}

// ReceiptName is the cosigner name under which a site signs its receipts
// for a guest: distinct from the guest's origin, so that a receipt can never
// be mistaken for the site writing the log itself.
func ReceiptName(origin, site string) string { return origin + "/sites/" + site }

// ReceiptVerifier returns the verifier of a site's receipts. A site
// cosigns with the same Ed25519 key the charter pins as its checkpoint key,
// under ReceiptName: one key for the site to guard, two roles kept apart
// by name and signature type.
func ReceiptVerifier(c *charter.Charter, site string) (*ledger.CosignatureVerifier, error) {
	s, ok := c.Site(site)
	if !ok {
		return nil, fmt.Errorf("site %q is not in the charter of %s", site, c.Guest.ID)
	}
	_, _, pub, err := ledger.SplitVerifierKey(s.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key of site %s: %w", site, err)
	}
	return ledger.NewCosignatureVerifier(ReceiptName(c.Guest.Origin, site), pub)
}

// NewReceiptCosigner returns the cosigner a site signs receipts with.
func NewReceiptCosigner(c *charter.Charter, site string, key ed25519.PrivateKey) (*ledger.Cosigner, error) {
	v, err := ReceiptVerifier(c, site)
	if err != nil {
		return nil, err
	}
	cs, err := ledger.NewCosigner(v.Name(), key, nil)
	if err != nil {
		return nil, err
	}
	if cs.KeyHash() != v.KeyHash() {
		return nil, fmt.Errorf("site %s: the checkpoint key given is not the one the charter of %s pins", site, c.Guest.ID)
	}
	return cs, nil
}

// OpenReceipt verifies a site's receipt: the writer's signature for the
// checkpoint's epoch and the site's cosignature.
func OpenReceipt(c *charter.Charter, w Writers, site string, signed []byte) (ledger.Checkpoint, time.Time, error) {
	cp, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return ledger.Checkpoint{}, time.Time{}, fmt.Errorf("receipt of site %s: %w", site, err)
	}
	vs, err := w.Verifiers(cp.Epoch)
	if err != nil {
		return ledger.Checkpoint{}, time.Time{}, err
	}
	cv, err := ReceiptVerifier(c, site)
	if err != nil {
		return ledger.Checkpoint{}, time.Time{}, err
	}
	_, n, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, withCosigner{vs, cv})
	if err != nil {
		return ledger.Checkpoint{}, time.Time{}, fmt.Errorf("receipt of site %s: %w", site, err)
	}
	t, err := ledger.CosignatureTime(n, cv)
	if err != nil {
		return ledger.Checkpoint{}, time.Time{}, fmt.Errorf("receipt of site %s: %w", site, err)
	}
	return cp, t, nil
}

// OpenWriterCheckpoint verifies a checkpoint note with the writer key of
// its epoch, as w says, and returns the checkpoint.
func OpenWriterCheckpoint(c *charter.Charter, w Writers, signed []byte) (ledger.Checkpoint, error) {
	cp, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	vs, err := w.Verifiers(cp.Epoch)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	if _, _, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, vs); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("size %d, epoch %d: %w", cp.Size, cp.Epoch, err)
	}
	return cp, nil
}

// withCosigner adds one cosignature verifier to a set of log verifiers.
type withCosigner struct {
	note.Verifiers
	cv *ledger.CosignatureVerifier
}

func (w withCosigner) Verifier(name string, hash uint32) (note.Verifier, error) {
	if name == w.cv.Name() && hash == w.cv.KeyHash() {
		return w.cv, nil
	}
	return w.Verifiers.Verifier(name, hash)
}

// Placement says what of a guest's ledger and blobs a site may hold: the
// charter places each registry at some sites only.
type Placement struct {
	Charter *charter.Charter
	Site    string
}

// ErrNotPlaced is returned for content of a registry the charter does not
// place at the site.
var ErrNotPlaced = errors.New("registry not placed at this site by the charter")

// Registry reports whether the site may hold the registry's records.
func (p Placement) Registry(name string) bool {
	r, ok := p.Charter.Registry(name)
	if !ok {
		return false
	}
	for _, s := range r.Sites {
		if s == p.Site {
			return true
		}
	}
	return false
}

// Entry decides an encoded entry: the registry it belongs to ("" for
// governance entries, which every site holds), whether the site may hold
// it, and the record entry when it is one.
func (p Placement) Entry(entry []byte) (reg string, ok bool, rec *registry.RecordEntry, err error) {
	e, err := ledger.DecodeEntry(entry)
	if err != nil {
		return "", false, nil, err
	}
	if e.Type != ledger.TypeRecord {
		return "", true, nil, nil
	}
	rec, err = registry.UnmarshalRecordEntry(e.Payload)
	if err != nil {
		return "", false, nil, err
	}
	return rec.Registry, p.Registry(rec.Registry), rec, nil
}

// Chunks lists the blob chunks a record entry needs: the set of chunk ids
// it carries in clear (ascending, each once). The attachments' references
// — sizes, chunk order — are sealed in the body, so a keyless site ships
// and checks packs by this set alone.
func Chunks(rec *registry.RecordEntry) ([]store.ID, error) { return rec.Chunks, nil }

// CanCatchUpFrom reports whether site may catch up from peer: only if the
// charter places at peer every registry it places at site. A peer holds
// only withheld stubs for the registries it may not hold, and a stub
// carries nothing to rebuild the entry from, so catching up from it would
// leave a permanent hole where site should hold records.
func CanCatchUpFrom(c *charter.Charter, site, peer string) error {
	mine, theirs := Placement{c, site}, Placement{c, peer}
	for _, r := range c.Registries {
		if mine.Registry(r.Name) && !theirs.Registry(r.Name) {
			return fmt.Errorf("site %s cannot catch up from %s: the charter places registry %s at %s but not at %s", site, peer, r.Name, site, peer)
		}
	}
	return nil
}
