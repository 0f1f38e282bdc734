package seal

import "fmt"

// labelChunker derives the seed of the blob store's chunker polynomial.
const labelChunker = "chunker-polynomial"

// ChunkerSeed returns the guest-wide chunker seed (scope ""). The
// registries no longer chunk with it — each chunks with its own,
// RegistryKeys.ChunkerSeed — so one file in two registries does not give
// the same chunk lengths twice. It remains for callers that only need a
// store to read (the seed matters only to writers). The caller clears it.
func (k *Keyring) ChunkerSeed() ([]byte, error) {
	return k.chunkerSeed("")
}

// ChunkerSeed returns the secret seed from which every site derives this
// registry's content-defined chunking (store.ChunkingFromSeed): the same
// boundaries at every site keep deduplication exact, a secret gear table
// keeps a host from fingerprinting a known document by its chunk sizes,
// and a seed per registry keeps one file stored in two registries from
// showing the same sequence of chunk lengths in both. Deduplication never
// crossed registries anyway (chunk ids are keyed per registry). The
// caller clears the seed when done.
func (rk *RegistryKeys) ChunkerSeed() ([]byte, error) {
	rk.mu.RLock()
	err := rk.err
	rk.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("seal: chunker seed of registry %q: %w", rk.name, err)
	}
	return rk.k.chunkerSeed(rk.name)
}

func (k *Keyring) chunkerSeed(scope string) ([]byte, error) {
	var out [keySize]byte
	if err := k.derive(&out, labelChunker, scope, 0); err != nil {
		return nil, err
	}
	b := append([]byte(nil), out[:]...)
	clear(out[:])
	return b, nil
}
