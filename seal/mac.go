package seal

import (
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"
	"sync"
)

// macKey is one MAC key's HMAC-SHA256 precomputation: the SHA-256 states
// after absorbing key⊕ipad and key⊕opad, in sha256's marshalled form. It
// is what crypto/hmac keeps inside its objects, kept here instead so that
// wipe can zero it: an HMAC object of the standard library cannot be
// zeroed from outside, and a pool of them would keep key-equivalent state
// alive after Wipe. hashes pools bare SHA-256 objects, which hold no key
// material between uses (reset after each).
type macKey struct {
	inner, outer []byte
	hashes       sync.Pool
}

func newMACKey(key *[keySize]byte) (*macKey, error) {
	var pad [sha256.BlockSize]byte
	defer clear(pad[:])
	state := func(x byte) ([]byte, error) {
		for i := range pad {
			pad[i] = x
		}
		for i, b := range key {
			pad[i] ^= b
		}
		h := sha256.New()
		h.Write(pad[:])
		return h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	m := &macKey{hashes: sync.Pool{New: func() any { return sha256.New() }}}
	var err error
	if m.inner, err = state(0x36); err == nil {
		m.outer, err = state(0x5c)
	}
	if err != nil {
		m.wipe()
		return nil, fmt.Errorf("seal: HMAC key state: %w", err)
	}
	return m, nil
}

// sum is HMAC-SHA256 of the concatenation of parts into out.
func (m *macKey) sum(out *[32]byte, parts ...[]byte) {
	h := m.hashes.Get().(hash.Hash)
	u := h.(encoding.BinaryUnmarshaler)
	var inner [sha256.Size]byte
	if u.UnmarshalBinary(m.inner) != nil {
		return
	}
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(inner[:0])
	if u.UnmarshalBinary(m.outer) != nil {
		return
	}
	h.Write(inner[:])
	h.Sum(out[:0])
	// Leave no key-dependent chaining state in the pooled object.
	h.Reset()
	m.hashes.Put(h)
}

// wipe zeroes both pad states; sum is not called after (the registry's
// lock orders them).
func (m *macKey) wipe() {
	clear(m.inner)
	clear(m.outer)
	m.inner, m.outer = nil, nil
}
