package identity

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

// TestChainCacheKeepsExpiry: a chain served from the cache is still
// checked for validity at every use: once the CA that signed it expires,
// the cached chain is not used and the verification fails.
func TestChainCacheKeepsExpiry(t *testing.T) {
	now := time.Now()
	caKey := newKey(t)
	ca := mkCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "short-lived CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &caKey.PublicKey, caKey)
	k := newKey(t)
	leaf := mkCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "citizen"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}, ca, &k.PublicKey, caKey)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := func(at time.Time) x509.VerifyOptions {
		return x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	}
	var c chainCache
	ders := [][]byte{leaf.Raw}
	if _, err := c.verify(ders, leaf, opts(now)); err != nil {
		t.Fatal(err)
	}
	if len(c.m) != 1 {
		t.Fatalf("%d chains cached after one verification", len(c.m))
	}
	if _, err := c.verify(ders, leaf, opts(now.Add(time.Minute))); err != nil {
		t.Fatalf("cached chain: %v", err)
	}
	if _, err := c.verify(ders, leaf, opts(now.Add(2*time.Hour))); err == nil {
		t.Fatal("a chain whose CA expired was served from the cache")
	}
	// A certificate of another CA is not cached, and is refused each time.
	otherKey := newKey(t)
	other := mkCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "citizen"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}, nil, &otherKey.PublicKey, otherKey)
	for range 2 {
		if _, err := c.verify([][]byte{other.Raw}, other, opts(now)); err == nil {
			t.Fatal("a self-signed certificate verified")
		}
	}
}
