package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/time/rate"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
)

// Options are what an active site gives the identity service.
type Options struct {
	Charter    *charter.Charter
	Keys       *seal.Keyring // the guest's keys, rebuilt from the root at this site
	Registries *registry.Registries
	Log        *ledger.Log
	Site       string
	// Epoch is the epoch this site serves in; tokens of another epoch are
	// refused. Default: the ledger's, at least 1.
	Epoch func() uint64
	// Active returns nil while the site may serve the guest, and why not
	// otherwise (fenced, sealed): then every endpoint but discovery and
	// the keys answers 503 and no token is honoured.
	Active func() error
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the identity service of one guest at one active site. It is
// an http.Handler serving the issuer's paths. It starts no goroutine.
type Service struct {
	opts       Options
	cfg        *config
	store      *storage
	provider   *op.Provider
	challenges *challenges
	crls       crlCache
	chains     chainCache // eID chains verified to a charter CA (chains.go)
	recorder   *access.Recorder
	tracked    *access.Index // the data tracker's index of access entries
	nonceKey   [32]byte      // authenticates DPoP nonces (fapi.go); random per process
	passkeys   *passkeys
	mux        *http.ServeMux

	parMu sync.Mutex
	par   map[string]pushed

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	jtis jtiCache
}

type pushed struct {
	client  string
	params  url.Values
	expires time.Time
}

const parTTL = 60 * time.Second

// New builds the service from the charter's services.identity and
// services.access sections. The ID-token key is the state key "oidc"
// derived from the root; it must match the public half the charter
// publishes, or the site would sign as someone else.
func New(opts Options) (*Service, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := load(opts.Charter)
	if err != nil {
		return nil, err
	}
	s := &Service{opts: opts, cfg: cfg, crls: crlCache{m: map[string]cachedCRL{}}, par: map[string]pushed{}, limiters: map[string]*rate.Limiter{}}
	s.challenges = &challenges{ttl: cfg.challengeTTL, now: s.now, m: map[string]pending{}}
	s.jtis = jtiCache{now: s.now, m: map[string]time.Time{}}
	s.recorder = &access.Recorder{Log: opts.Log, Keys: opts.Keys, Site: opts.Site, Epoch: s.epoch, Now: opts.Now}
	s.tracked = access.NewIndex(opts.Log)
	rand.Read(s.nonceKey[:])

	sk, pub, err := opts.Charter.StateKeyFor("oidc")
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if sk.Alg != seal.StateAlgES256 {
		return nil, fmt.Errorf("identity: charter state key oidc is %s, want ES256", sk.Alg)
	}
	signer, err := opts.Keys.StateSigner("oidc", seal.StateAlgES256, sk.Generation)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	priv, ok := signer.(*ecdsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(pub.(crypto.PublicKey)) {
		return nil, fmt.Errorf("identity: the oidc key derived from this site's root key is not the one charter v%d publishes (state_keys oidc generation %d)", opts.Charter.Version, sk.Generation)
	}
	kid, err := Thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	s.store = &storage{s: s, requests: map[string]*authRequest{}, codes: map[string]string{}, used: map[string]usedCode{}, tokens: map[string]*token{},
		signing: signingKey{kid: kid, priv: priv}}

	// The code and opaque access token key is random per process: codes
	// and tokens are meaningful only where they were issued.
	var ck [32]byte
	if _, err := rand.Read(ck[:]); err != nil {
		return nil, err
	}
	tc, err := newGCMCrypto(ck)
	clear(ck[:])
	if err != nil {
		return nil, err
	}
	ocfg := &op.Config{CodeMethodS256: true, AuthMethodPrivateKeyJWT: true,
		SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile, ScopeRecords, ScopeVerify},
		SupportedClaims: []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "name", "given_name", "family_name", "birthdate"}}
	s.provider, err = op.NewProvider(ocfg, s.store, op.StaticIssuer(cfg.Issuer), op.WithLogger(opts.Logger), op.WithCrypto(tc))
	if err != nil {
		return nil, fmt.Errorf("identity: provider: %w", err)
	}
	if cfg.Portal.RPID != "" {
		if s.passkeys, err = newPasskeys(s); err != nil {
			return nil, err
		}
	}
	s.routes()
	return s, nil
}

// Thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of a
// public key: the kid of the state's ID-token key, the same at every site.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("identity: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func (s *Service) now() time.Time { return s.opts.Now() }

func (s *Service) epoch() uint64 {
	if s.opts.Epoch != nil {
		return s.opts.Epoch()
	}
	return max(s.opts.Log.Epoch(), 1)
}

func (s *Service) active() error {
	if s.opts.Active != nil {
		return s.opts.Active()
	}
	return nil
}

// Issuer is the state's issuer URL.
func (s *Service) Issuer() string { return s.cfg.Issuer }

// Rules are the access rules the service applies.
func (s *Service) Rules() *access.Rules { return s.cfg.rules }

func (s *Service) routes() {
	m := http.NewServeMux()
	m.Handle("/", s.provider)
	m.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	m.Handle("GET /authorize", s.withIss(http.HandlerFunc(s.authorize)))
	m.Handle("GET /authorize/callback", s.withIss(s.provider))
	m.Handle("POST /par", s.guardAssertion(http.HandlerFunc(s.pushAuthorization)))
	m.Handle("POST /oauth/token", s.guardAssertion(s.tokenWithDPoP(s.provider)))
	m.Handle("/userinfo", s.userinfoWithDPoP(s.provider))
	m.Handle("POST /revoke", s.guardAssertion(s.provider))
	m.HandleFunc("GET /login", s.login)
	m.HandleFunc("POST /eid/login", s.eidLogin)
	m.HandleFunc("GET /records/{registry}/{id}", s.readRecord)
	m.HandleFunc("GET /records/{registry}", s.findOwn)
	m.Handle("POST /verify", s.guardAssertion(http.HandlerFunc(s.verify)))
	m.HandleFunc("GET /tracker", s.tracker)
	if s.passkeys != nil {
		s.passkeys.routes(m)
	}
	s.mux = m
}

// ServeHTTP serves the issuer's paths.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.active(); err != nil && r.URL.Path != "/.well-known/openid-configuration" && r.URL.Path != "/keys" {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "this site does not serve the guest now: "+err.Error())
		return
	}
	s.mux.ServeHTTP(w, r)
}

// oauthError writes an OAuth 2.0 error body (RFC 6749 § 5.2).
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// bearerError writes an RFC 6750 refusal.
func bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q, error_description=%q`, code, desc))
	oauthError(w, status, code, desc)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// discovery adds what the provider serves beside the library's endpoints
// (pushed authorization requests) to its metadata.
func (s *Service) discovery(w http.ResponseWriter, r *http.Request) {
	rec := &captureWriter{header: http.Header{}}
	s.provider.ServeHTTP(rec, r)
	var meta map[string]any
	if rec.status != 0 && rec.status != http.StatusOK || json.Unmarshal(rec.body.Bytes(), &meta) != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "discovery document")
		return
	}
	meta["pushed_authorization_request_endpoint"] = s.cfg.Issuer + "/par"
	meta["authorization_response_iss_parameter_supported"] = true
	meta["require_pushed_authorization_requests"] = s.cfg.FAPI2
	dpopAlgs := asymmetricAlgs()
	algs := make([]string, len(dpopAlgs))
	for i, a := range dpopAlgs {
		algs[i] = string(a)
	}
	meta["dpop_signing_alg_values_supported"] = algs
	// The library advertises every flow it can run; this provider runs
	// only what FAPI-minded relying parties should use (docs/identity.md).
	meta["response_types_supported"] = []string{"code"}
	meta["grant_types_supported"] = []string{"authorization_code"}
	meta["token_endpoint_auth_methods_supported"] = []string{"private_key_jwt"}
	meta["token_endpoint_auth_signing_alg_values_supported"] = s.cfg.clientAlgs
	meta["revocation_endpoint_auth_methods_supported"] = []string{"private_key_jwt"}
	meta["revocation_endpoint_auth_signing_alg_values_supported"] = s.cfg.clientAlgs
	for _, k := range []string{"device_authorization_endpoint", "introspection_endpoint", "introspection_endpoint_auth_methods_supported", "introspection_endpoint_auth_signing_alg_values_supported"} {
		delete(meta, k)
	}
	writeJSON(w, http.StatusOK, meta)
}

type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *captureWriter) WriteHeader(s int)           { c.status = s }

// withIss adds the issuer to every authorization response that redirects
// to a client (RFC 9207), so a relying party talking to several issuers
// can tell which one answered; the library does not.
func (s *Service) withIss(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&issWriter{ResponseWriter: w, s: s}, r)
	})
}

type issWriter struct {
	http.ResponseWriter
	s *Service
}

func (iw *issWriter) WriteHeader(status int) {
	if status == http.StatusFound || status == http.StatusSeeOther {
		if loc, err := url.Parse(iw.Header().Get("Location")); err == nil && iw.s.isClientRedirect(loc) {
			q := loc.Query()
			q.Set("iss", iw.s.cfg.Issuer)
			loc.RawQuery = q.Encode()
			iw.Header().Set("Location", loc.String())
		}
	}
	iw.ResponseWriter.WriteHeader(status)
}

// isClientRedirect reports whether u is one of the clients' redirect URIs
// (with its query): an authorization response, not a step of sign-in.
func (s *Service) isClientRedirect(u *url.URL) bool {
	base := *u
	base.RawQuery = ""
	for _, c := range s.cfg.clients {
		if containsString(c.cfg.RedirectURIs, base.String()) {
			return true
		}
	}
	return false
}

// authorize checks what the library lets through silently (a scope the
// client may not ask for is dropped there; here it is refused with
// invalid_scope, as RFC 6749 § 4.1.2.1 allows) and resolves a pushed
// request's request_uri, then hands over to the library.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request) {
	if !s.fapiAuthorize(w, r) {
		return
	}
	q := r.URL.Query()
	if ru := q.Get("request_uri"); ru != "" {
		s.parMu.Lock()
		p, ok := s.par[ru]
		delete(s.par, ru)
		s.parMu.Unlock()
		if !ok || s.now().After(p.expires) || p.client != q.Get("client_id") {
			oauthError(w, http.StatusBadRequest, "invalid_request_uri", "unknown, expired, used or another client's request_uri")
			return
		}
		q = p.params
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
	}
	c, ok := s.cfg.clients[q.Get("client_id")]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	}
	redirect := q.Get("redirect_uri")
	if !containsString(c.cfg.RedirectURIs, redirect) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is not one the charter registers for the client")
		return
	}
	if bad := c.scopeRefusal(q.Get("scope")); bad != "" {
		u, _ := url.Parse(redirect)
		v := u.Query()
		v.Set("error", "invalid_scope")
		v.Set("error_description", fmt.Sprintf("the client may not ask for scope %q", bad))
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	s.provider.ServeHTTP(w, r)
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// pushAuthorization is RFC 9126: the client posts its authorization
// request, authenticated with private_key_jwt, and gets a single-use
// request_uri to send the browser with.
func (s *Service) pushAuthorization(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	if c.GetID() != f.Get("client_id") {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "the client assertion is not client_id's")
		return
	}
	if f.Get("request_uri") != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "request_uri is not allowed in a pushed request")
		return
	}
	params := url.Values{}
	for k, v := range f {
		if k != "client_assertion" && k != "client_assertion_type" {
			params[k] = v
		}
	}
	ru := "urn:ietf:params:oauth:request_uri:" + newID()
	s.parMu.Lock()
	now := s.now()
	if len(s.par) > maxChallenges {
		for k, p := range s.par {
			if now.After(p.expires) {
				delete(s.par, k)
			}
		}
	}
	s.par[ru] = pushed{client: c.GetID(), params: params, expires: now.Add(parTTL)}
	s.parMu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": ru, "expires_in": int(parTTL / time.Second)})
}

// authenticateClient parses the form and checks its private_key_jwt
// client assertion (RFC 7523, aud = the issuer) with the library's
// verifier, answering invalid_client itself when it does not verify.
func (s *Service) authenticateClient(w http.ResponseWriter, r *http.Request) (op.Client, bool) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "form: "+err.Error())
		return nil, false
	}
	if r.PostForm.Get("client_assertion_type") != oidc.ClientAssertionTypeJWTAssertion {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "private_key_jwt client authentication is required")
		return nil, false
	}
	ctx := op.ContextWithIssuer(r.Context(), s.cfg.Issuer)
	c, err := op.AuthorizePrivateJWTKey(ctx, r.PostForm.Get("client_assertion"), s.provider)
	if err != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client assertion does not verify")
		return nil, false
	}
	return c, true
}

// LoginChallenge is what GET /login returns: a fresh eID challenge for
// the authorization request, and where to post the answers.
type LoginChallenge struct {
	AuthRequest string    `json:"auth_request"`
	Challenge   string    `json:"challenge"`
	Expires     time.Time `json:"expires"`
	EID         string    `json:"eid"`
	Passkey     string    `json:"passkey,omitempty"` // where the passkey ceremony begins (POST)
}

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if _, err := s.store.AuthRequestByID(r.Context(), id); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ch, exp, err := s.challenges.issue(id)
	if err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	lc := LoginChallenge{AuthRequest: id, Challenge: ch, Expires: exp, EID: s.cfg.Issuer + "/eid/login"}
	if s.passkeys != nil {
		lc.Passkey = s.cfg.Issuer + "/passkey/login/begin?authRequestID=" + url.QueryEscape(id)
	}
	writeJSON(w, http.StatusOK, lc)
}

func (s *Service) eidLogin(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEIDResponse+1))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	authReq, person, err := s.verifyEID(r.Context(), body)
	if err != nil {
		status := http.StatusUnauthorized
		if !errors.Is(err, ErrChallenge) && !errors.Is(err, ErrChain) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrPerson) {
			status = http.StatusBadRequest
		}
		oauthError(w, status, "access_denied", err.Error())
		return
	}
	s.completeSignIn(w, r, authReq, person, []string{"sc"})
}

// completeSignIn marks the request signed in and sends the browser back
// through the library's callback, which issues the code.
func (s *Service) completeSignIn(w http.ResponseWriter, r *http.Request, authReq, person string, amr []string) {
	if err := s.store.finishSignIn(authReq, person, amr); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ctx := op.ContextWithIssuer(r.Context(), s.cfg.Issuer)
	http.Redirect(w, r, op.AuthCallbackURL(s.provider)(ctx, authReq), http.StatusSeeOther)
}

// principal turns a bearer token into who reads: the portal's tokens act
// as the citizen, other clients' as the client on the citizen's behalf.
func (s *Service) principal(r *http.Request, scope string) (access.Principal, int, string, string) {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	if scheme != "Bearer" && scheme != "DPoP" || tok == "" {
		return access.Principal{}, http.StatusUnauthorized, "invalid_request", "a Bearer or DPoP token is required"
	}
	jkt := ""
	if scheme == "DPoP" {
		var err error
		if jkt, err = s.checkDPoP(r, tok); errors.Is(err, errUseNonce) {
			return access.Principal{}, http.StatusUnauthorized, "use_dpop_nonce", err.Error()
		} else if err != nil {
			return access.Principal{}, http.StatusUnauthorized, "invalid_dpop_proof", err.Error()
		}
	}
	plain, err := s.provider.Crypto().Decrypt(tok)
	if err != nil {
		return access.Principal{}, http.StatusUnauthorized, "invalid_token", "not a token this site issued (tokens do not survive a failover: sign in again)"
	}
	id, sub, ok := strings.Cut(plain, ":")
	if !ok {
		return access.Principal{}, http.StatusUnauthorized, "invalid_token", "malformed token"
	}
	t, err := s.store.lookupToken(id)
	if err != nil || t.subject != sub {
		return access.Principal{}, http.StatusUnauthorized, "invalid_token", fmt.Sprint(err)
	}
	if t.jkt != jkt {
		return access.Principal{}, http.StatusUnauthorized, "invalid_token", "the token is bound to a DPoP key: present it as DPoP with a proof by that key (and a bearer token not as DPoP)"
	}
	if scope != "" && !containsString(t.scopes, scope) {
		return access.Principal{}, http.StatusForbidden, "insufficient_scope", "the token lacks scope " + scope
	}
	p := access.Principal{Kind: access.KindClient, ID: t.clientID, Person: t.subject, Purpose: r.URL.Query().Get("purpose")}
	if t.clientID == s.cfg.Portal.ClientID {
		p = access.Principal{Kind: access.KindCitizen, ID: t.subject, Purpose: p.Purpose}
	}
	return p, 0, "", ""
}

// reader is principal answering the refusal itself; with needPurpose, a
// request without ?purpose= is refused too.
func (s *Service) reader(w http.ResponseWriter, r *http.Request, scope string, needPurpose bool) (access.Principal, bool) {
	p, status, code, desc := s.principal(r, scope)
	if code == "use_dpop_nonce" {
		s.useNonce(w, true)
		return p, false
	}
	if status != 0 {
		bearerError(w, status, code, desc)
		return p, false
	}
	if needPurpose && p.Purpose == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "a purpose is required (?purpose=...)")
		return p, false
	}
	return p, true
}

// RecordResponse is a record served to a citizen or relying party.
type RecordResponse struct {
	Registry string          `json:"registry"`
	ID       string          `json:"id"`
	Version  uint64          `json:"version"`
	Record   json.RawMessage `json:"record"`
}

func (s *Service) readRecord(w http.ResponseWriter, r *http.Request) {
	p, ok := s.reader(w, r, ScopeRecords, true)
	if !ok {
		return
	}
	reg, id := r.PathValue("registry"), r.PathValue("id")
	if err := s.cfg.rules.Allow(p, reg, access.Read); err != nil {
		oauthError(w, http.StatusForbidden, "access_denied", err.Error())
		return
	}
	rec, err := s.opts.Registries.Get(r.Context(), reg, id, registry.AsOf{})
	if err != nil || rec.Deleted {
		// Not found and not the citizen's look alike: no probing of ids.
		oauthError(w, http.StatusForbidden, "access_denied", "not the citizen's own record, or no such record")
		return
	}
	if err := s.cfg.rules.Check(r.Context(), s.recorder, p, reg, id, rec.Version, rec.Data); err != nil {
		if errors.Is(err, access.ErrDenied) {
			oauthError(w, http.StatusForbidden, "access_denied", "not the citizen's own record, or no such record")
			return
		}
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, RecordResponse{Registry: reg, ID: id, Version: rec.Version, Record: rec.Data})
}

// findOwn lists the citizen's own records in a registry.
func (s *Service) findOwn(w http.ResponseWriter, r *http.Request) {
	p, ok := s.reader(w, r, ScopeRecords, true)
	if !ok {
		return
	}
	reg := r.PathValue("registry")
	field := s.cfg.rules.LinkField(reg)
	person := p.Person
	if p.Kind == access.KindCitizen {
		person = p.ID
	}
	if err := s.cfg.rules.FindAllowed(p, reg, field, person); err != nil {
		oauthError(w, http.StatusForbidden, "access_denied", err.Error())
		return
	}
	recs, err := s.opts.Registries.Find(r.Context(), reg, field, person)
	if err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	out := make([]RecordResponse, 0, len(recs))
	res := make([]access.Result, 0, len(recs))
	for _, rec := range recs {
		out = append(out, RecordResponse{Registry: reg, ID: rec.ID, Version: rec.Version, Record: rec.Data})
		res = append(res, access.Result{ID: rec.ID, Version: rec.Version})
	}
	if err := s.recorder.Record(r.Context(), p, access.Access{Kind: continuity.AccessFind, Registry: reg, Field: field, Value: person, Results: res}); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// fillClaims reads the person record for userinfo, under an access entry,
// and gives the claims the token's scopes ask for and the client may have.
func (s *Service) fillClaims(ctx context.Context, ui *oidc.UserInfo, t token) error {
	ui.Subject = t.subject
	if !containsString(t.scopes, oidc.ScopeProfile) {
		return nil
	}
	rec, err := s.opts.Registries.Get(ctx, s.cfg.PersonRegistry, t.subject, registry.AsOf{})
	if err != nil {
		return fmt.Errorf("person record: %w", err)
	}
	claims, err := s.personClaims(rec.Data)
	if err != nil {
		return err
	}
	p := access.Principal{Kind: access.KindClient, ID: t.clientID, Person: t.subject, Purpose: "userinfo"}
	if t.clientID == s.cfg.Portal.ClientID {
		p = access.Principal{Kind: access.KindCitizen, ID: t.subject, Purpose: "userinfo"}
	}
	if err := s.recorder.Record(ctx, p, access.Access{Kind: continuity.AccessRecord, Registry: s.cfg.PersonRegistry, ID: t.subject, Version: rec.Version}); err != nil {
		return err
	}
	allowed := func(c string) bool { return p.Kind == access.KindCitizen || s.cfg.rules.ClaimAllowed(t.clientID, c) }
	if allowed("given_name") {
		ui.GivenName = claims["given_name"]
	}
	if allowed("family_name") {
		ui.FamilyName = claims["family_name"]
	}
	if allowed("name") {
		ui.Name = strings.TrimSpace(claims["given_name"] + " " + claims["family_name"])
	}
	if allowed("birthdate") {
		ui.Birthdate = claims["birthdate"]
	}
	return nil
}

// personClaims reads the configured claim fields of a person record.
func (s *Service) personClaims(data json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	for claim, field := range s.cfg.Claims {
		v, err := access.LinkValue(data, field)
		if err == nil {
			out[claim] = v
		}
	}
	return out, nil
}

// VerifyRequest is the verification API's question: does the person with
// this id have these attributes? Absent attributes are not compared.
type VerifyRequest struct {
	ID         string `json:"id"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	Birthdate  string `json:"birthdate,omitempty"`
	Purpose    string `json:"purpose"`
}

// verify answers match or no-match, nothing else, to a client with the
// verify scope, authenticated by a private_key_jwt assertion
// (client_assertion_type and client_assertion in the form, the question
// as the JSON of VerifyRequest in the form field "request").
func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	ctx := r.Context()
	cl := s.cfg.clients[c.GetID()]
	if !cl.IsScopeAllowed(ScopeVerify) || !s.cfg.rules.MayVerify(c.GetID()) {
		oauthError(w, http.StatusForbidden, "unauthorized_client", "the client may not verify identities")
		return
	}
	if !s.limiter(c.GetID()).Allow() {
		w.Header().Set("Retry-After", "1")
		oauthError(w, http.StatusTooManyRequests, "slow_down", "verification rate limit of the client reached")
		return
	}
	q, err := ParseVerifyRequest([]byte(f.Get("request")))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	answer := "no-match"
	var version uint64
	rec, err := s.opts.Registries.Get(ctx, s.cfg.PersonRegistry, q.ID, registry.AsOf{})
	if err == nil && !rec.Deleted {
		version = rec.Version
		claims, _ := s.personClaims(rec.Data)
		if match(claims["given_name"], q.GivenName) && match(claims["family_name"], q.FamilyName) && match(claims["birthdate"], q.Birthdate) {
			answer = "match"
		}
	}
	p := access.Principal{Kind: access.KindClient, ID: c.GetID(), Person: q.ID, Purpose: q.Purpose}
	if err := s.recorder.Record(ctx, p, access.Access{Kind: continuity.AccessVerify, Registry: s.cfg.PersonRegistry, ID: q.ID, Version: version, Answer: answer}); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"match": answer == "match"})
}

func match(have, claimed string) bool {
	return claimed == "" || strings.EqualFold(strings.TrimSpace(have), strings.TrimSpace(claimed))
}

// ParseVerifyRequest decodes a verification question strictly: an id, at
// least one attribute, a purpose.
func ParseVerifyRequest(b []byte) (*VerifyRequest, error) {
	if len(b) > 4096 {
		return nil, errors.New("verify request: more than 4096 bytes")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var q VerifyRequest
	if err := dec.Decode(&q); err != nil {
		return nil, fmt.Errorf("verify request: %w", err)
	}
	if dec.More() {
		return nil, errors.New("verify request: data after the object")
	}
	if q.ID == "" || q.Purpose == "" {
		return nil, errors.New("verify request: id and purpose are required")
	}
	if q.GivenName == "" && q.FamilyName == "" && q.Birthdate == "" {
		return nil, errors.New("verify request: no attribute to compare")
	}
	return &q, nil
}

func (s *Service) limiter(client string) *rate.Limiter {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	l, ok := s.limiters[client]
	if !ok {
		l = rate.NewLimiter(rate.Limit(float64(s.cfg.VerifyPerMinute)/60), s.cfg.VerifyBurst)
		s.limiters[client] = l
	}
	return l
}

// tracker serves the signed-in citizen's data tracker (portal token).
func (s *Service) tracker(w http.ResponseWriter, r *http.Request) {
	p, ok := s.reader(w, r, "", false)
	if !ok {
		return
	}
	if p.Kind != access.KindCitizen {
		oauthError(w, http.StatusForbidden, "access_denied", "the data tracker is served to the citizen (portal sign-in) and to the charter's auditors only")
		return
	}
	seen, err := s.Tracker(r.Context(), p.ID)
	if err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	if seen == nil {
		seen = []access.Seen{}
	}
	writeJSON(w, http.StatusOK, seen)
}

// Tracker lists who read a citizen's records (their person record and the
// records linked to them).
func (s *Service) Tracker(ctx context.Context, person string) ([]access.Seen, error) {
	owned, err := s.cfg.rules.Owned(ctx, s.opts.Registries, s.cfg.PersonRegistry, person)
	if err != nil {
		return nil, err
	}
	return s.tracked.Track(ctx, s.opts.Keys, person, owned)
}

// TrackerForAuditor is the data tracker of any citizen, for an official
// the charter names as an auditor (services.access.auditors). The caller
// has authenticated the official (the site's signed-request check).
func (s *Service) TrackerForAuditor(ctx context.Context, official, person string) ([]access.Seen, error) {
	if !s.cfg.rules.IsAuditor(official) {
		return nil, fmt.Errorf("%w: official %s is not an auditor of the charter", access.ErrDenied, official)
	}
	return s.Tracker(ctx, person)
}
