package seal

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// blobHeaderLen is format ‖ generation ‖ nonce.
const blobHeaderLen = 1 + 4 + nonceSize

// BlobKeys seal the chunks of a registry's blobs. It satisfies the store
// package's Sealer interface structurally. Safe for concurrent use.
type BlobKeys struct{ rk *RegistryKeys }

// ChunkID is the keyed hash a chunk is stored and deduplicated under:
// HMAC-SHA256(K_blob-id, plaintext). Keyed, so a host cannot confirm a
// guess of a chunk's content; not rotated with the generation, so that
// chunks stay deduplicated across rotations.
func (b *BlobKeys) ChunkID(plaintext []byte) [32]byte {
	return b.rk.mac(&b.rk.blobIDKey, plaintext)
}

func appendBlobAD(dst []byte, rk *RegistryKeys, gen uint32, id *[32]byte) []byte {
	dst = append(dst, adBlob...)
	dst = append(dst, 0, formatBlobV1)
	dst = binary.BigEndian.AppendUint32(dst, gen)
	dst = appendLP(dst, rk.guest)
	dst = appendLP(dst, rk.name)
	return append(dst, id[:]...)
}

// Seal encrypts one chunk under the registry's current blob key:
//
//	0x01 ‖ generation u32 ‖ nonce (12, random) ‖ AES-256-GCM ciphertext ‖ tag (16)
//
// with additional data binding guest, registry, generation and id, so a
// chunk cannot be served under another id. data is whatever the store
// keeps (typically the compressed chunk); id is normally ChunkID of the
// uncompressed chunk, which the store re-checks after Open.
func (b *BlobKeys) Seal(id [32]byte, data []byte) ([]byte, error) {
	rk := b.rk
	gen := rk.gen.Load()
	g, err := rk.generation(gen)
	if err != nil {
		return nil, fmt.Errorf("seal: blob chunk %x: %w", id[:6], err)
	}
	if err := rk.counts(gen).blob.take(rk.k.sealLimit.Load()); err != nil {
		return nil, fmt.Errorf("seal: blob chunk %x: registry %q generation %d has sealed its limit of chunks: %w", id[:6], rk.name, gen, err)
	}
	out := make([]byte, blobHeaderLen, blobHeaderLen+len(data)+tagSize)
	out[0] = formatBlobV1
	binary.BigEndian.PutUint32(out[1:5], gen)
	nonce := out[5:blobHeaderLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: blob chunk %x nonce: %w", id[:6], err)
	}
	var adBuf [128]byte
	return g.blob.Seal(out, nonce, data, appendBlobAD(adBuf[:0], rk, gen, &id)), nil
}

// Open decrypts a chunk sealed by Seal; it fails with ErrAuth if the id or
// any byte differs and never panics on arbitrary input.
func (b *BlobKeys) Open(id [32]byte, sealed []byte) ([]byte, error) {
	rk := b.rk
	what := func() string { return fmt.Sprintf("blob chunk %x in registry %q of %s", id[:6], rk.name, rk.guest) }
	g, gen, err := rk.framed(sealed, formatBlobV1, "chunk", what)
	if err != nil {
		return nil, err
	}
	var adBuf [128]byte
	return openAEAD(g.blob, nil, sealed, appendBlobAD(adBuf[:0], rk, gen, &id), what, gen)
}
