package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// gcmCrypto is the op.Crypto that seals the provider's authorization codes
// and opaque access tokens: AES-256-GCM under the per-process key, a
// random 96-bit nonce, base64url(nonce || ciphertext || tag).
//
// zitadel/oidc's own (op.NewAES256GCMCrypto behind a composite) wraps a
// fresh content key with A256GCMKW in a compact JWE: two GCM operations
// and a JSON header to build and parse per code and per token, which was a
// tenth of a record read's CPU; and it falls back to AES-CFB, which
// authenticates nothing, when GCM fails. This one checks the same kind of
// tag under the same kind of key, once, with no unauthenticated fallback.
// Codes and tokens never leave the process that issued them (the key is
// random per process), so no other party parses the format.
type gcmCrypto struct{ aead cipher.AEAD }

// tokenAD binds the sealed values to their use here, so that nothing else
// sealed with an AES-GCM key by accident could be passed off as one.
var tokenAD = []byte("chancery identity code or access token v1")

func newGCMCrypto(key [32]byte) (*gcmCrypto, error) {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("identity: token key: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("identity: token key: %w", err)
	}
	return &gcmCrypto{aead: g}, nil
}

// Encrypt seals s.
func (c *gcmCrypto) Encrypt(s string) (string, error) {
	ns := c.aead.NonceSize()
	buf := make([]byte, ns, ns+len(s)+c.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("identity: token nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(buf, buf, []byte(s), tokenAD)), nil
}

// errNotSealed: a code or token this process did not seal, or altered.
var errNotSealed = errors.New("identity: not a code or token this site issued")

// Decrypt opens what Encrypt sealed, checking its tag.
func (c *gcmCrypto) Decrypt(s string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	ns := c.aead.NonceSize()
	if err != nil || len(raw) < ns+c.aead.Overhead() {
		return "", errNotSealed
	}
	plain, err := c.aead.Open(raw[ns:ns], raw[:ns], raw[ns:], tokenAD)
	if err != nil {
		return "", errNotSealed
	}
	return string(plain), nil
}
