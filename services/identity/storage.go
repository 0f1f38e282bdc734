package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Lifetimes.
const (
	authRequestTTL = 10 * time.Minute // from /authorize to the end of sign-in
	codeTTL        = time.Minute      // an authorization code, once issued
	accessTokenTTL = 5 * time.Minute
	idTokenTTL     = 5 * time.Minute
	usedCodeTTL    = 2 * accessTokenTTL // how long a used code is remembered to catch reuse
	sweepEvery     = 4096               // inserts between sweeps of expired state
)

// authRequest is one authorization request, from /authorize to the code
// exchange. It implements op.AuthRequest.
type authRequest struct {
	id          string
	clientID    string
	redirectURI string
	state       string
	nonce       string
	scopes      []string
	challenge   *oidc.CodeChallenge
	expires     time.Time

	// Set by sign-in.
	subject  string
	amr      []string
	authTime time.Time
	done     bool

	// Set by the code; tokens are those issued from it.
	code        string
	codeExpires time.Time
	tokens      []string
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return a.amr }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return oidc.ResponseTypeCode }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return oidc.ResponseModeQuery }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// token is an issued access token.
type token struct {
	id       string
	clientID string
	subject  string
	scopes   []string
	expires  time.Time
	epoch    uint64
	revoked  bool
	// jkt binds a DPoP token to its key's thumbprint ("" for bearer).
	jkt string
}

type usedCode struct {
	tokens  []string
	expires time.Time
}

// storage is the provider's state: in memory, at the site that issued it.
// Nothing here is replicated; docs/identity.md § Failover says why.
type storage struct {
	s *Service

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code → request id
	used     map[string]usedCode
	tokens   map[string]*token
	inserts  int

	signing signingKey
}

func newID() string {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("identity: crypto/rand: %v", err)) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sweepLocked drops expired state every sweepEvery inserts.
func (st *storage) sweepLocked() {
	st.inserts++
	if st.inserts%sweepEvery != 0 {
		return
	}
	now := st.s.now()
	for id, a := range st.requests {
		if now.After(a.expires) {
			delete(st.requests, id)
			if a.code != "" {
				delete(st.codes, a.code)
			}
		}
	}
	for c, u := range st.used {
		if now.After(u.expires) {
			delete(st.used, c)
		}
	}
	for id, t := range st.tokens {
		if now.After(t.expires) {
			delete(st.tokens, id)
		}
	}
}

// CreateAuthRequest stores a validated authorization request. PKCE with
// S256 is required of every client, and a nonce.
func (st *storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	}
	if r.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type=code")
	}
	a := &authRequest{id: newID(), clientID: r.ClientID, redirectURI: r.RedirectURI, state: r.State, nonce: r.Nonce,
		scopes: slices.Clone(r.Scopes), challenge: &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod},
		expires: st.s.now().Add(authRequestTTL)}
	st.mu.Lock()
	st.sweepLocked()
	st.requests[a.id] = a
	st.mu.Unlock()
	return a, nil
}

func (st *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.requests[id]
	if !ok || st.s.now().After(a.expires) {
		return nil, errors.New("unknown or expired authorization request")
	}
	return a, nil
}

// finishSignIn marks a request signed in by person.
func (st *storage) finishSignIn(id, person string, amr []string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.requests[id]
	if !ok || st.s.now().After(a.expires) {
		return errors.New("unknown or expired authorization request")
	}
	if a.done {
		return errors.New("authorization request already signed in")
	}
	a.subject, a.amr, a.authTime, a.done = person, amr, st.s.now(), true
	return nil
}

// AuthRequestByCode finds the request a code was issued for. A code used
// before is refused, and the tokens issued from it are revoked (RFC 6749
// § 4.1.2: an authorization code is used once).
func (st *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if u, ok := st.used[code]; ok {
		for _, id := range u.tokens {
			if t := st.tokens[id]; t != nil {
				t.revoked = true
			}
		}
		return nil, errors.New("authorization code already used: the tokens issued from it are revoked")
	}
	id, ok := st.codes[code]
	a := st.requests[id]
	if !ok || a == nil || !a.done {
		return nil, errors.New("unknown authorization code")
	}
	if st.s.now().After(a.codeExpires) {
		return nil, errors.New("authorization code expired")
	}
	return a, nil
}

func (st *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.requests[id]
	if !ok {
		return errors.New("unknown authorization request")
	}
	if a.code != "" {
		return errors.New("authorization request already has a code")
	}
	a.code, a.codeExpires = code, st.s.now().Add(codeTTL)
	st.codes[code] = id
	return nil
}

// DeleteAuthRequest ends a request once its code is exchanged; the code
// is remembered as used, with the tokens issued from it.
func (st *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.requests[id]
	if !ok {
		return nil
	}
	delete(st.requests, id)
	if a.code != "" {
		delete(st.codes, a.code)
		st.used[a.code] = usedCode{tokens: a.tokens, expires: st.s.now().Add(usedCodeTTL)}
	}
	return nil
}

func (st *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	a, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	t := &token{id: newID(), clientID: a.clientID, subject: a.subject, scopes: a.scopes, expires: st.s.now().Add(accessTokenTTL), epoch: st.s.epoch()}
	t.jkt, _ = ctx.Value(jktKey{}).(string)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked()
	st.tokens[t.id] = t
	a.tokens = append(a.tokens, t.id)
	return t.id, t.expires, nil
}

// CreateAccessAndRefreshTokens is never called: no client has the
// refresh_token grant (docs/identity.md § Failover).
func (st *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not issued")
}

func (st *storage) TokenRequestByRefreshToken(ctx context.Context, rt string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (st *storage) GetRefreshTokenInfo(ctx context.Context, clientID, rt string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// TerminateSession revokes every token of the citizen at the client: the
// provider keeps no sign-on session beyond them.
func (st *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, t := range st.tokens {
		if t.subject == userID && t.clientID == clientID {
			t.revoked = true
		}
	}
	return nil
}

func (st *storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tokens[tokenOrID]
	if !ok {
		return nil // RFC 7009: an unknown token is not an error
	}
	if t.clientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
	}
	t.revoked = true
	return nil
}

// lookupToken returns a live token by id.
func (st *storage) lookupToken(id string) (token, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tokens[id]
	switch {
	case !ok:
		return token{}, errors.New("unknown token (tokens do not survive a failover: sign in again)")
	case t.revoked:
		return token{}, errors.New("token revoked")
	case st.s.now().After(t.expires):
		return token{}, errors.New("token expired")
	case t.epoch != st.s.epoch():
		return token{}, fmt.Errorf("token issued in epoch %d, the site is in epoch %d", t.epoch, st.s.epoch())
	}
	return *t, nil
}

// signingKey is the state's ID-token key (op.SigningKey and op.Key).
type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k signingKey) Algorithm() jose.SignatureAlgorithm          { return jose.ES256 }
func (k signingKey) Use() string                                 { return "sig" }
func (k signingKey) ID() string                                  { return k.kid }

// Key is the private key when signing (op.SigningKey) — the provider asks
// SigningKey for it — and the public key when listed (op.Key via pubKey).
func (k signingKey) Key() any { return k.priv }

type pubKey struct{ signingKey }

func (k pubKey) Key() any { return &k.priv.PublicKey }

func (st *storage) SigningKey(ctx context.Context) (op.SigningKey, error) { return st.signing, nil }
func (st *storage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}
func (st *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	return []op.Key{pubKey{st.signing}}, nil
}

func (st *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, ok := st.s.cfg.clients[id]
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return c, nil
}

func (st *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	return oidc.ErrInvalidClient().WithDescription("client secrets are not accepted: use private_key_jwt")
}

// SetUserinfoFromScopes fills an ID token's claims; with an access token
// issued the library leaves them to userinfo, so this sees only openid.
func (st *storage) SetUserinfoFromScopes(ctx context.Context, ui *oidc.UserInfo, userID, clientID string, scopes []string) error {
	ui.Subject = userID
	return nil
}

// SetUserinfoFromToken answers userinfo: the claims the token's scopes
// ask for that the client's access rule allows, read from the person
// record under an access entry.
func (st *storage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	t, err := st.lookupToken(tokenID)
	if err != nil {
		return err
	}
	if t.subject != subject {
		return errors.New("token subject mismatch")
	}
	if jkt, _ := ctx.Value(jktKey{}).(string); jkt != t.jkt {
		return errors.New("a DPoP-bound token needs a DPoP proof by its key")
	}
	return st.s.fillClaims(ctx, ui, t)
}

func (st *storage) SetIntrospectionFromToken(ctx context.Context, ir *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	return errors.New("introspection is not offered")
}

func (st *storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID returns the client's key that signed its
// private_key_jwt assertion.
func (st *storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, ok := st.s.cfg.clients[clientID]
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	ks := c.keys.Key(keyID)
	if len(ks) == 0 {
		return nil, fmt.Errorf("client %s has no key %q in its charter JWKS", clientID, keyID)
	}
	return &ks[0], nil
}

func (st *storage) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

func (st *storage) Health(ctx context.Context) error { return st.s.active() }

// client is one relying party (op.Client).
type client struct {
	cfg  Client
	keys jose.JSONWebKeySet
}

func (c *client) GetID() string                       { return c.cfg.ID }
func (c *client) RedirectURIs() []string              { return c.cfg.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return c.cfg.PostLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodPrivateKeyJWT }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string            { return "/login?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenTTL }
func (c *client) DevMode() bool                        { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.cfg.Scopes, scope) }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// scopeRefusal names the first scope of a space-separated list the
// client may not ask for, or "".
func (c *client) scopeRefusal(scope string) string {
	for _, s := range strings.Fields(scope) {
		if !c.IsScopeAllowed(s) {
			return s
		}
	}
	return ""
}
