package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// chainCache remembers the eID chains already verified to a charter CA, by
// the hash of the certificates presented, so a citizen's next sign-in
// skips the CA's signature check (one ECDSA verification, about a tenth
// of the server's CPU per sign-in). The charter's CAs are fixed for the
// service's life, so a chain that verified once verifies again while all
// its certificates are valid; expiry is checked at every use, revocation
// (checkRevoked) and the citizen's signature are never cached.
type chainCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedChain
}

type cachedChain struct {
	chain     []*x509.Certificate
	notBefore time.Time // the latest NotBefore of the chain
	notAfter  time.Time // the earliest NotAfter of the chain
}

// maxCachedChains bounds the cache; when full it starts again empty.
const maxCachedChains = 1 << 16

// chainKey hashes the presented certificates, each length-prefixed.
func chainKey(ders [][]byte) [32]byte {
	h := sha256.New()
	for _, d := range ders {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(d))))
		h.Write(d)
	}
	return [32]byte(h.Sum(nil))
}

// lookup returns the chain verified before for exactly these certificates,
// if all of them are valid at now. Its first certificate is the leaf as
// parsed from ders[0]: the key is the hash of every DER byte, so a caller
// may take it instead of parsing the same bytes again.
func (c *chainCache) lookup(ders [][]byte, now time.Time) ([]*x509.Certificate, bool) {
	k := chainKey(ders)
	c.mu.Lock()
	cc, ok := c.m[k]
	c.mu.Unlock()
	if ok && !now.Before(cc.notBefore) && !now.After(cc.notAfter) {
		return cc.chain, true
	}
	return nil, false
}

// verify is leaf.Verify(opts), answered from the cache when the same
// certificates verified before and are all valid at opts.CurrentTime.
func (c *chainCache) verify(ders [][]byte, leaf *x509.Certificate, opts x509.VerifyOptions) ([]*x509.Certificate, error) {
	if chain, ok := c.lookup(ders, opts.CurrentTime); ok {
		return chain, nil
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return nil, err
	}
	k := chainKey(ders)
	cc := cachedChain{chain: chains[0], notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
	for _, ce := range chains[0] {
		if ce.NotBefore.After(cc.notBefore) {
			cc.notBefore = ce.NotBefore
		}
		if ce.NotAfter.Before(cc.notAfter) {
			cc.notAfter = ce.NotAfter
		}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedChains {
		c.m = map[[32]byte]cachedChain{}
	}
	c.m[k] = cc
	c.mu.Unlock()
	return chains[0], nil
}
