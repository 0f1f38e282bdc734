package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/registry"
)

// eID sign-in: the site hands out a fresh random challenge bound to one
// authorization request; the citizen's eID card (or its software stand-in)
// signs eidMessage(issuer, challenge) with the key of its certificate; the
// site checks the chain to a charter CA, validity, the CA's CRL from the
// CRL registry, and the signature, then maps the subject serial number to
// a person record.

// Refusals of an eID sign-in. Each is wrapped with the detail.
var (
	ErrChallenge = errors.New("unknown, expired or already used challenge")
	ErrChain     = errors.New("certificate does not chain to an eID CA of the charter")
	ErrExpired   = errors.New("certificate expired or not yet valid")
	ErrRevoked   = errors.New("certificate revoked")
	ErrSignature = errors.New("signature does not verify")
	ErrPerson    = errors.New("no person record for the certificate's subject")
)

// maxEIDResponse bounds a sign-in response: a chain of a few certificates.
const maxEIDResponse = 32 << 10

// EIDResponse is what the citizen's eID software posts.
type EIDResponse struct {
	// Challenge is the challenge as handed out (base64url, no padding).
	Challenge string `json:"challenge"`
	// Chain is the citizen's certificate first, then any intermediates,
	// each DER in standard base64.
	Chain []string `json:"chain"`
	// Signature is over EIDMessage(issuer, challenge), standard base64:
	// ECDSA (ASN.1, SHA-256), Ed25519, or RSA-PSS with SHA-256.
	Signature string `json:"signature"`
}

// ParseEIDResponse decodes a sign-in response strictly.
func ParseEIDResponse(b []byte) (*EIDResponse, [][]byte, []byte, error) {
	if len(b) > maxEIDResponse {
		return nil, nil, nil, fmt.Errorf("eid response: %d bytes, more than %d", len(b), maxEIDResponse)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r EIDResponse
	if err := dec.Decode(&r); err != nil {
		return nil, nil, nil, fmt.Errorf("eid response: %w", err)
	}
	if dec.More() {
		return nil, nil, nil, errors.New("eid response: data after the object")
	}
	if len(r.Chain) == 0 || len(r.Chain) > 4 {
		return nil, nil, nil, fmt.Errorf("eid response: chain: %d certificates, want 1 to 4", len(r.Chain))
	}
	ders := make([][]byte, len(r.Chain))
	for i, c := range r.Chain {
		d, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("eid response: chain[%d]: %w", i, err)
		}
		ders[i] = d
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || len(sig) == 0 {
		return nil, nil, nil, fmt.Errorf("eid response: signature: not standard base64 (%v)", err)
	}
	return &r, ders, sig, nil
}

// EIDMessage is what a citizen signs: a domain separator, the state's
// issuer (so a challenge cannot be relayed from another service) and the
// challenge bytes.
func EIDMessage(issuer string, challenge []byte) []byte {
	m := []byte("chancery eid sign-in v1\x00" + issuer + "\x00")
	return append(m, challenge...)
}

// challenges are single-use and expire; they live in memory at the site
// that issued them (a sign-in begins and ends at the same site).
type challenges struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]pending
}

type pending struct {
	authReq string
	expires time.Time
}

// maxChallenges bounds outstanding challenges; past it expired ones are
// swept, and if none are, new ones are refused.
const maxChallenges = 1 << 20

func (c *challenges) issue(authReq string) (string, time.Time, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, err
	}
	ch := base64.RawURLEncoding.EncodeToString(b[:])
	now := c.now()
	exp := now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxChallenges {
		for k, p := range c.m {
			if !now.Before(p.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxChallenges {
			return "", time.Time{}, errors.New("too many sign-ins in progress")
		}
	}
	c.m[ch] = pending{authReq: authReq, expires: exp}
	return ch, exp, nil
}

// take consumes a challenge: whatever follows, it cannot be used again.
func (c *challenges) take(ch string) (string, error) {
	c.mu.Lock()
	p, ok := c.m[ch]
	delete(c.m, ch)
	c.mu.Unlock()
	if !ok {
		return "", ErrChallenge
	}
	if !c.now().Before(p.expires) {
		return "", fmt.Errorf("%w: expired at %s", ErrChallenge, p.expires.UTC().Format(time.RFC3339))
	}
	return p.authReq, nil
}

// crlCache keeps each CA's parsed CRL by the version of its record.
type crlCache struct {
	mu sync.Mutex
	m  map[string]cachedCRL
}

type cachedCRL struct {
	version uint64
	revoked map[string]bool // serial numbers, decimal
}

// verifyEID checks a response for the authorization request it names and
// returns the person id.
// eidChain parses the presented certificates and verifies them to a
// charter CA at now, or takes the chain verified before for exactly these
// bytes (chainCache.lookup), whose certificates are all valid at now.
func (s *Service) eidChain(ders [][]byte, now time.Time) (chain []*x509.Certificate, leaf *x509.Certificate, err error) {
	if chain, ok := s.chains.lookup(ders, now); ok {
		return chain, chain[0], nil
	}
	leaf, err = x509.ParseCertificate(ders[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: certificate: %v", ErrChain, err)
	}
	inter := x509.NewCertPool()
	for i, d := range ders[1:] {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: chain[%d]: %v", ErrChain, i+1, err)
		}
		inter.AddCert(c)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("%w: valid %s to %s", ErrExpired, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	chain, err = s.chains.verify(ders, leaf, x509.VerifyOptions{Roots: s.cfg.cas, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, nil, fmt.Errorf("%w: %v", ErrExpired, err)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrChain, err)
	}
	return chain, leaf, nil
}

func (s *Service) verifyEID(ctx context.Context, body []byte) (authReq, person string, err error) {
	r, ders, sig, err := ParseEIDResponse(body)
	if err != nil {
		return "", "", err
	}
	if authReq, err = s.challenges.take(r.Challenge); err != nil {
		return "", "", err
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.Challenge)
	if err != nil {
		return "", "", fmt.Errorf("%w: not base64url", ErrChallenge)
	}
	now := s.now()
	chain, leaf, err := s.eidChain(ders, now)
	if err != nil {
		return "", "", err
	}
	if err := s.checkRevoked(ctx, chain); err != nil {
		return "", "", err
	}
	msg := EIDMessage(s.cfg.Issuer, raw)
	var alg x509.SignatureAlgorithm
	switch leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		alg = x509.ECDSAWithSHA256
	case ed25519.PublicKey:
		alg = x509.PureEd25519
	case *rsa.PublicKey:
		alg = x509.SHA256WithRSAPSS
	default:
		return "", "", fmt.Errorf("%w: a %T key", ErrSignature, leaf.PublicKey)
	}
	if err := leaf.CheckSignature(alg, msg, sig); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrSignature, err)
	}
	person, ok := strings.CutPrefix(leaf.Subject.SerialNumber, s.cfg.EID.SerialPrefix)
	if !ok || person == "" {
		return "", "", fmt.Errorf("%w: subject serial number %q lacks the prefix %q", ErrPerson, leaf.Subject.SerialNumber, s.cfg.EID.SerialPrefix)
	}
	// The index says whether the person's latest version exists and is
	// not deleted; nothing of the record needs opening to sign them in.
	vs, err := s.opts.Registries.History(ctx, s.cfg.PersonRegistry, person)
	if err != nil || len(vs) == 0 || vs[len(vs)-1].Deleted {
		return "", "", fmt.Errorf("%w: %s", ErrPerson, leaf.Subject.SerialNumber)
	}
	return authReq, person, nil
}

// checkRevoked looks the citizen's certificate up in the CRL of the CA
// that issued it, from the CRL registry. A CA with no CRL record refuses
// every sign-in (fail closed). A CRL past its next update is still used:
// the CA may have been lost with home, and the last list is the best
// knowledge the state has (docs/identity.md).
func (s *Service) checkRevoked(ctx context.Context, chain []*x509.Certificate) error {
	if len(chain) < 2 {
		return fmt.Errorf("%w: a self-signed certificate", ErrChain)
	}
	leaf, issuer := chain[0], chain[1]
	name := ""
	for n, ca := range s.cfg.caByName {
		if ca.Equal(issuer) {
			name = n
		}
	}
	if name == "" {
		// Issued by an intermediate: its CRL is published under the root's name.
		for n, ca := range s.cfg.caByName {
			if ca.Equal(chain[len(chain)-1]) {
				name = n
			}
		}
	}
	// The index gives the CRL record's latest version; the record is
	// opened and the CRL parsed only when that version is not the cached one.
	vs, err := s.opts.Registries.History(ctx, s.cfg.EID.CRLRegistry, name)
	if err != nil || len(vs) == 0 || vs[len(vs)-1].Deleted {
		return fmt.Errorf("%w: no CRL for CA %s in registry %s (%v)", ErrRevoked, name, s.cfg.EID.CRLRegistry, err)
	}
	s.crls.mu.Lock()
	c, ok := s.crls.m[name]
	s.crls.mu.Unlock()
	if !ok || c.version != vs[len(vs)-1].Version {
		rec, err := s.opts.Registries.Get(ctx, s.cfg.EID.CRLRegistry, name, registry.AsOf{})
		if err != nil {
			return fmt.Errorf("%w: CRL record %s in registry %s: %v", ErrRevoked, name, s.cfg.EID.CRLRegistry, err)
		}
		var body struct {
			CRL []byte `json:"crl"`
		}
		if err := json.Unmarshal(rec.Data, &body); err != nil {
			return fmt.Errorf("%w: CRL record %s in registry %s: %v", ErrRevoked, name, s.cfg.EID.CRLRegistry, err)
		}
		crl, err := x509.ParseRevocationList(body.CRL)
		if err != nil {
			return fmt.Errorf("%w: CRL of CA %s: %v", ErrRevoked, name, err)
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%w: CRL of CA %s is not signed by it: %v", ErrRevoked, name, err)
		}
		c = cachedCRL{version: rec.Version, revoked: map[string]bool{}}
		for _, e := range crl.RevokedCertificateEntries {
			c.revoked[e.SerialNumber.String()] = true
		}
		s.crls.mu.Lock()
		s.crls.m[name] = c
		s.crls.mu.Unlock()
	}
	if c.revoked[leaf.SerialNumber.String()] {
		return fmt.Errorf("%w: serial %s by CA %s", ErrRevoked, leaf.SerialNumber, name)
	}
	return nil
}
