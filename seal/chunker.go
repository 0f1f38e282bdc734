package seal

// labelChunker derives the seed of the blob store's chunker polynomial.
const labelChunker = "chunker-polynomial"

// ChunkerSeed returns the secret seed from which every site of the guest
// derives the same secret content-defined chunking (store.ChunkingFromSeed):
// the same boundaries everywhere keep deduplication exact across sites, and
// a secret polynomial keeps a host from fingerprinting a known document by
// its chunk sizes. The caller clears the seed when done.
func (k *Keyring) ChunkerSeed() ([]byte, error) {
	var out [keySize]byte
	if err := k.derive(&out, labelChunker, "", 0); err != nil {
		return nil, err
	}
	b := append([]byte(nil), out[:]...)
	clear(out[:])
	return b, nil
}
