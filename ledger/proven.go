package ledger

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotInTree reports that the entry read from storage is not the one a
// signed tree holds at that index: the storage was altered, or serves
// another log.
var ErrNotInTree = errors.New("the stored entry is not the one in the signed tree")

// ReadProven reads entry index from the prover's fetcher and proves that
// it is the entry the tree signed by cp holds at index: the read, the
// inclusion proof and its verification that every reader of untrusted
// storage (the registries, drills, the demo, an auditor) needs, in one
// place. The entry returned is the encoded entry (DecodeEntry reads it).
// An entry that does not match the tree fails with ErrNotInTree.
func (p *Prover) ReadProven(ctx context.Context, cp Checkpoint, index uint64) ([]byte, error) {
	raw, err := ReadEntry(ctx, p.f, index, cp.Size)
	if err != nil {
		return nil, err
	}
	prf, err := p.Inclusion(ctx, index, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("entry %d: inclusion proof in the tree of size %d: %w", index, cp.Size, err)
	}
	if err := VerifyInclusion(index, cp.Size, LeafHash(raw), prf, cp.Root); err != nil {
		return nil, fmt.Errorf("entry %d: %w of size %d (its inclusion proof fails: %v)", index, ErrNotInTree, cp.Size, err)
	}
	return raw, nil
}
