package store_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/chancery-gov/chancery/store"
)

// testSealer stands in for seal.BlobKeys: HMAC-SHA256 chunk ids and
// AES-256-GCM with the id as additional data and a random nonce in front.
type testSealer struct {
	macKey []byte
	aead   cipher.AEAD
}

func newTestSealer(t testing.TB, seed byte) *testSealer {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = seed + byte(i)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	mac := sha256.Sum256(append([]byte("mac"), key...))
	return &testSealer{macKey: mac[:], aead: aead}
}

func (s *testSealer) ChunkID(p []byte) [32]byte {
	h := hmac.New(sha256.New, s.macKey)
	h.Write(p)
	return [32]byte(h.Sum(nil))
}

func (s *testSealer) Seal(id [32]byte, data []byte) ([]byte, error) {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(data)+s.aead.Overhead())
	rand.Read(out)
	return s.aead.Seal(out, out, data, id[:]), nil
}

func (s *testSealer) Open(id [32]byte, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("testSealer: sealed chunk too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], id[:])
}

// plainSealer seals nothing: the control that shows the leak test can see
// a leak at all.
type plainSealer struct{ *testSealer }

func (plainSealer) Seal(_ [32]byte, data []byte) ([]byte, error) {
	return append([]byte(nil), data...), nil
}
func (plainSealer) Open(_ [32]byte, sealed []byte) ([]byte, error) {
	return append([]byte(nil), sealed...), nil
}

func testChunking(t testing.TB) *store.Chunking {
	t.Helper()
	c, err := store.ChunkingFromSeed([]byte("chancery test chunking seed, not secret"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
