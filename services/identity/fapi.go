package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The FAPI 2.0 switches of services.identity (docs/identity.md):
//
//   - fapi2: every authorization request must be pushed (RFC 9126) and
//     every access token DPoP-bound (RFC 9449); a plain /authorize is
//     refused with invalid_request, a token request without a DPoP proof
//     with invalid_dpop_proof, so no bearer token is ever issued;
//   - dpop_nonce: every DPoP proof must carry a nonce this site provided
//     (RFC 9449 § 8 at the token endpoint, § 9 at the resources), so a
//     proof made ahead of time by a stolen key is useless.
//
// Nonces are stateless: the time they were made and an HMAC of it under a
// key random per process, valid for dpopNonceTTL. A site that takes over
// after a failover does not know the old site's key, so a client's first
// proof there is answered use_dpop_nonce with a fresh nonce, and the
// client retries once, as RFC 9449 § 8 has it.

// dpopNonceTTL is how long a provided nonce is accepted.
const dpopNonceTTL = 5 * time.Minute

// errUseNonce is a DPoP proof without a current nonce of this site.
var errUseNonce = errors.New("DPoP proof: a nonce this site provided is required (use the DPoP-Nonce header's value)")

// dpopNonce makes a nonce valid from now.
func (s *Service) dpopNonce() string {
	b := binary.BigEndian.AppendUint64(nil, uint64(s.now().Unix()))
	m := hmac.New(sha256.New, s.nonceKey[:])
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(b)[:8+16])
}

// checkNonce accepts a proof's nonce if nonces are required and it is one
// of this site's, made within dpopNonceTTL.
func (s *Service) checkNonce(nonce string) error {
	if !s.cfg.DPoPNonce {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 8+16 {
		return errUseNonce
	}
	m := hmac.New(sha256.New, s.nonceKey[:])
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return errUseNonce
	}
	made := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	if now := s.now(); now.Sub(made) > dpopNonceTTL || made.After(now.Add(dpopSkew)) {
		return errUseNonce
	}
	return nil
}

// useNonce answers a proof without a current nonce: at the token endpoint
// 400 use_dpop_nonce (RFC 9449 § 8), at a resource 401 with a DPoP
// challenge (§ 9); both with a fresh nonce in DPoP-Nonce.
func (s *Service) useNonce(w http.ResponseWriter, resource bool) {
	w.Header().Set("DPoP-Nonce", s.dpopNonce())
	if resource {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP error="use_dpop_nonce", error_description=%q`, errUseNonce.Error()))
		oauthError(w, http.StatusUnauthorized, "use_dpop_nonce", errUseNonce.Error())
		return
	}
	oauthError(w, http.StatusBadRequest, "use_dpop_nonce", errUseNonce.Error())
}

// fapiAuthorize refuses an authorization request that was not pushed when
// the charter requires PAR. It answers itself and returns false then.
func (s *Service) fapiAuthorize(w http.ResponseWriter, r *http.Request) bool {
	if !s.cfg.FAPI2 || r.URL.Query().Get("request_uri") != "" {
		return true
	}
	// Not a redirect: an unpushed request's redirect_uri is not
	// authenticated, so the error goes to the browser (RFC 9126 § 4).
	oauthError(w, http.StatusBadRequest, "invalid_request", "this issuer requires pushed authorization requests (FAPI 2.0, services.identity.fapi2): POST the request to /par and send request_uri")
	return false
}

// fapiToken refuses a token request without a DPoP proof when the charter
// requires DPoP-bound tokens. It answers itself and returns false then.
func (s *Service) fapiToken(w http.ResponseWriter, r *http.Request) bool {
	if !s.cfg.FAPI2 || r.Header.Get("DPoP") != "" {
		return true
	}
	oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "this issuer issues only DPoP-bound access tokens (FAPI 2.0, services.identity.fapi2): send a DPoP proof with the token request")
	return false
}
