package store

import (
	"context"
	"fmt"
	iofs "io/fs"
)

// CheckChunk reads chunk id from the durable pack that holds it and checks
// it as Get does, without keeping the content: it must open under sl (the
// AEAD tag binds the sealed chunk to its id, so this is the chunk's MAC),
// decompress, and hash back to id. It returns the pack it read and how
// many sealed bytes that took, so that a scrub can pace its reads. A chunk
// that is only in a pack not yet uploaded is not checked: it is not
// durable (Locate).
func (s *Store) CheckChunk(ctx context.Context, sl Sealer, id ID) (PackID, int64, error) {
	pack, l, pend, ok := s.idx.lookup(id)
	if !ok || pend != nil {
		return PackID{}, 0, fmt.Errorf("store: blob %x: in no durable pack: %w", id, iofs.ErrNotExist)
	}
	_, err := s.readChunk(ctx, sl, id)
	return pack, int64(l.length), err
}
