package ledger

import "crypto/sha256"

// Hash is a SHA-256 Merkle tree node hash.
type Hash = [32]byte

// RFC 6962 hashing without allocation: the hot paths (integration, whole-log
// verification) hash millions of nodes. Tests check these against
// transparency-dev/merkle's rfc6962 hasher.

func leafHash(entry []byte) Hash {
	// A pooled digest would avoid the copy, but sha256.Sum256 on a stack
	// buffer is allocation-free for the common small entry.
	var buf [1 + 512]byte
	if len(entry) <= 512 {
		buf[0] = 0
		n := copy(buf[1:], entry)
		return sha256.Sum256(buf[:1+n])
	}
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out Hash
	h.Sum(out[:0])
	return out
}

func nodeHash(left, right *Hash) Hash {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:33], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// emptyRoot is the RFC 6962 root of the empty tree: SHA-256 of nothing.
var emptyRoot = sha256.Sum256(nil)

// LeafHash is the RFC 6962 leaf hash of an encoded entry.
func LeafHash(entry []byte) Hash { return leafHash(entry) }
