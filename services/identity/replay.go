package identity

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Client assertions are single use: the library checks their signature,
// audience and times but not their jti (RFC 7523 § 3 lets a server refuse
// a jti it has seen; OpenID Connect Core § 9 makes jti required). This
// guard, in front of every endpoint that takes one, refuses an assertion
// without jti or whose (iss, jti) it has seen before its expiry. It runs
// before the library's signature check, so it only reads the claims; a
// forged assertion that burns a jti burns one the real client will never
// reuse anyway.

// maxAssertionLife caps how long a jti is remembered, whatever exp says.
const maxAssertionLife = time.Hour

// asymmetricAlgs are the algorithms a client assertion's or DPoP proof's
// header may name: none and HMAC never.
func asymmetricAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}
}

type jtiCache struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]time.Time // iss NUL jti → when it may be forgotten
}

// AssertionID reads the issuer, jti and expiry of a client assertion
// without verifying it.
func AssertionID(assertion string) (iss, jti string, exp time.Time, err error) {
	tok, err := jwt.ParseSigned(assertion, asymmetricAlgs())
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("client assertion: %w", err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return "", "", time.Time{}, fmt.Errorf("client assertion: %w", err)
	}
	if c.ID == "" {
		return "", "", time.Time{}, errors.New("client assertion: no jti")
	}
	if c.Expiry != nil {
		exp = c.Expiry.Time()
	}
	return c.Issuer, c.ID, exp, nil
}

// seen records an assertion and reports whether it was used before.
func (j *jtiCache) seen(assertion string) error {
	iss, jti, exp, err := AssertionID(assertion)
	if err != nil {
		return err
	}
	now := j.now()
	if exp.IsZero() || exp.After(now.Add(maxAssertionLife)) {
		exp = now.Add(maxAssertionLife)
	}
	if err := j.remember(iss+"\x00"+jti, exp); err != nil {
		return fmt.Errorf("client assertion jti %q of %s: %w", jti, iss, err)
	}
	return nil
}

// remember records key until the given time, refusing a key already held.
func (j *jtiCache) remember(key string, until time.Time) error {
	now := j.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if u, ok := j.m[key]; ok && now.Before(u) {
		return errors.New("already used")
	}
	if len(j.m) >= maxChallenges {
		for k, u := range j.m {
			if !now.Before(u) {
				delete(j.m, k)
			}
		}
		if len(j.m) >= maxChallenges {
			return errors.New("too many in flight")
		}
	}
	j.m[key] = until
	return nil
}

// guardAssertion refuses a replayed client assertion before h sees it.
func (s *Service) guardAssertion(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "form: "+err.Error())
			return
		}
		if r.PostForm.Get("client_assertion_type") == oidc.ClientAssertionTypeJWTAssertion {
			if err := s.jtis.seen(r.PostForm.Get("client_assertion")); err != nil {
				oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
