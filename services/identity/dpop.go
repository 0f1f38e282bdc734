package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DPoP (RFC 9449) sender-constrains access tokens: zitadel/oidc does not
// implement it, so it is done here around the library. A client that
// sends a DPoP proof to the token endpoint gets a token of type DPoP
// bound to the proof's key (its RFC 7638 thumbprint, jkt); that token is
// honoured only with "Authorization: DPoP <token>" and a fresh proof by
// the same key for that request (method, URL, the token's hash). Bearer
// tokens are still issued to clients that send no proof.

// dpopSkew is how far a proof's iat may be from the site's clock.
const dpopSkew = 60 * time.Second

// maxDPoPProof bounds a proof: a header with a public key and a few claims.
const maxDPoPProof = 8 << 10

// DPoPProof is a verified proof's content.
type DPoPProof struct {
	JKT   string // RFC 7638 thumbprint of the proof's key
	JTI   string
	HTM   string
	HTU   string
	IAT   time.Time
	ATH   string
	Nonce string // the server-provided nonce (RFC 9449 § 8), if any
}

type dpopClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   *int64 `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// ParseDPoPProof verifies a proof's form and signature with the key it
// embeds (RFC 9449 § 4.3 checks 1–6); the caller checks htm, htu, iat, ath
// and the jti's novelty.
func ParseDPoPProof(proof string) (*DPoPProof, error) {
	if len(proof) > maxDPoPProof {
		return nil, fmt.Errorf("DPoP proof: more than %d bytes", maxDPoPProof)
	}
	jws, err := jose.ParseSigned(proof, asymmetricAlgs())
	if err != nil {
		return nil, fmt.Errorf("DPoP proof: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("DPoP proof: want one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, fmt.Errorf("DPoP proof: typ %q, want dpop+jwt", typ)
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() || !h.JSONWebKey.Valid() {
		return nil, errors.New("DPoP proof: no public jwk in the header")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return nil, fmt.Errorf("DPoP proof: signature: %w", err)
	}
	var c dpopClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("DPoP proof: claims: %w", err)
	}
	if c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == nil {
		return nil, errors.New("DPoP proof: jti, htm, htu and iat are required")
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("DPoP proof: jwk thumbprint: %w", err)
	}
	return &DPoPProof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: c.JTI, HTM: c.HTM, HTU: c.HTU, IAT: time.Unix(*c.IAT, 0), ATH: c.ATH, Nonce: c.Nonce}, nil
}

// AccessTokenHash is a proof's ath for a token: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// checkDPoP verifies the request's DPoP header for method and path of this
// issuer, and for token when it is not "" (ath); it returns the key's
// thumbprint.
func (s *Service) checkDPoP(r *http.Request, token string) (string, error) {
	vals := r.Header.Values("DPoP")
	if len(vals) != 1 {
		return "", fmt.Errorf("want exactly one DPoP header, got %d", len(vals))
	}
	p, err := ParseDPoPProof(vals[0])
	if err != nil {
		return "", err
	}
	if p.HTM != r.Method {
		return "", fmt.Errorf("DPoP proof: htm %q for a %s request", p.HTM, r.Method)
	}
	if want := s.cfg.Issuer + r.URL.Path; p.HTU != want {
		return "", fmt.Errorf("DPoP proof: htu %q, want %q", p.HTU, want)
	}
	now := s.now()
	if p.IAT.Before(now.Add(-dpopSkew)) || p.IAT.After(now.Add(dpopSkew)) {
		return "", fmt.Errorf("DPoP proof: iat %s is more than %s from now", p.IAT.UTC().Format(time.RFC3339), dpopSkew)
	}
	if token != "" && p.ATH != AccessTokenHash(token) {
		return "", errors.New("DPoP proof: ath is not the hash of the access token")
	}
	if err := s.checkNonce(p.Nonce); err != nil {
		return "", err
	}
	if err := s.jtis.remember("dpop\x00"+p.JKT+"\x00"+p.JTI, p.IAT.Add(2*dpopSkew)); err != nil {
		return "", fmt.Errorf("DPoP proof: %w", err)
	}
	return p.JKT, nil
}

type jktKey struct{}

// tokenWithDPoP wraps the library's token endpoint: a request with a DPoP
// proof gets its token bound to the proof's key and typed DPoP.
func (s *Service) tokenWithDPoP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.fapiToken(w, r) {
			return
		}
		if r.Header.Get("DPoP") == "" {
			h.ServeHTTP(w, r)
			return
		}
		jkt, err := s.checkDPoP(r, "")
		if errors.Is(err, errUseNonce) {
			s.useNonce(w, false)
			return
		}
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", err.Error())
			return
		}
		rec := &captureWriter{header: http.Header{}}
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), jktKey{}, jkt)))
		body := rec.body.Bytes()
		if rec.status == 0 || rec.status == http.StatusOK {
			var resp map[string]any
			if json.Unmarshal(body, &resp) == nil && resp["access_token"] != nil {
				resp["token_type"] = "DPoP"
				body, _ = json.Marshal(resp)
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		if s.cfg.DPoPNonce {
			w.Header().Set("DPoP-Nonce", s.dpopNonce())
		}
		if rec.status != 0 {
			w.WriteHeader(rec.status)
		}
		w.Write(body)
	})
}

// userinfoWithDPoP lets the library's userinfo endpoint serve DPoP tokens:
// the proof is checked here, the scheme handed on as Bearer, and the key's
// thumbprint put in the context, where the storage compares it with the
// token's binding.
func (s *Service) userinfoWithDPoP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		jkt, err := s.checkDPoP(r, tok)
		if errors.Is(err, errUseNonce) {
			s.useNonce(w, true)
			return
		}
		if err != nil {
			bearerError(w, http.StatusUnauthorized, "invalid_dpop_proof", err.Error())
			return
		}
		r = r.Clone(context.WithValue(r.Context(), jktKey{}, jkt))
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
	})
}
