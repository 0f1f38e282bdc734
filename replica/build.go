package replica

import (
	"context"
	"errors"
	"fmt"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/store"
)

// MaxBatchEntryBytes is the most entry bytes (each with its 2-byte length)
// a batch may carry so that, with its checkpoint and a full consistency
// proof, it still fits MaxBatchBytes.
const MaxBatchEntryBytes = MaxBatchBytes - maxCheckpoint - maxProof*32 - 64

// BatchBuilder cuts a source's ledger into batches as one site must
// receive them: entries of registries the charter does not place there
// become withheld stubs (ledger.Withhold), and each batch says which
// chunks its records reference, so that their packs go first. The Shipper
// builds what it sends with it, and an offline bundle (package bundle)
// what it writes, so both carry exactly the same batches.
type BatchBuilder struct {
	Fetcher ledger.Fetcher // the source's ledger
	Prover  *ledger.Prover // over Fetcher: the consistency proofs
	Place   Placement      // the receiving site
	// MaxEntries and MaxBytes bound one batch: its entry count, and its
	// entries' encoded size (2 bytes of length each).
	MaxEntries, MaxBytes int
}

// BuiltBatch is one batch and what it needs at the site.
type BuiltBatch struct {
	*Batch
	// Bytes is the encoded size of the entries.
	Bytes int
	// Need lists, per registry, the chunks the batch's records reference:
	// the site must hold their packs before it takes the batch.
	Need map[string][]store.ID
	// Withheld counts the entries that travel as withheld stubs: not
	// placed at the site, or stubs already at the source.
	Withheld int
}

// Build reads the batch that starts at entry from toward the checkpoint
// cp (signed is its note) and ends at cp.Size or at a limit, whichever
// comes first. A batch that ends short of cp.Size carries the consistency
// proof from its end to cp.
func (bb *BatchBuilder) Build(ctx context.Context, from uint64, signed []byte, cp ledger.Checkpoint) (*BuiltBatch, error) {
	out := &BuiltBatch{Batch: &Batch{First: from, Checkpoint: signed}, Need: map[string][]store.ID{}}
	b := out.Batch
	errFull := errors.New("batch full")
	err := ledger.Scan(ctx, bb.Fetcher, from, cp.Size, func(idx uint64, e []byte) error {
		if len(b.Entries) >= bb.MaxEntries || out.Bytes+2+len(e) > bb.MaxBytes {
			return errFull
		}
		reg, ok, rec, err := bb.Place.Entry(e)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		if !ok {
			if e, err = ledger.Withhold(e); err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
		} else if rec != nil && len(rec.Chunks) > 0 {
			// The entry's chunk set: the host learns which chunks a
			// version needs, never their order or the attachments' sizes.
			out.Need[reg] = append(out.Need[reg], rec.Chunks...)
		}
		if e[1] == byte(ledger.TypeWithheld) {
			out.Withheld++
		}
		// Scan's slices alias a bundle it reuses: keep a copy.
		b.Entries = append(b.Entries, append([]byte(nil), e...))
		out.Bytes += 2 + len(e)
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, fmt.Errorf("read entries from %d: %w", from, err)
	}
	if len(b.Entries) == 0 {
		return nil, fmt.Errorf("entry %d alone exceeds the batch limit", from)
	}
	if b.End() < cp.Size {
		prf, err := bb.Prover.Consistency(ctx, b.End(), cp.Size)
		if err != nil {
			return nil, fmt.Errorf("consistency proof %d→%d: %w", b.End(), cp.Size, err)
		}
		b.Proof = prf
	}
	return out, nil
}

// FetchPack reads a pack from a source and checks that its bytes hash to
// its name and parse as a pack: a source is not trusted, so a bad pack is
// blamed on where it came from, before it is forwarded or written.
func FetchPack(ctx context.Context, src Source, reg, name string) ([]byte, error) {
	data, err := src.Object(ctx, reg, name)
	if err != nil {
		return nil, fmt.Errorf("registry %s: read %s: %w", reg, name, err)
	}
	if err := store.CheckObject(name, data); err != nil {
		return nil, fmt.Errorf("%w: registry %s from the source: %v", ErrRefused, reg, err)
	}
	return data, nil
}
