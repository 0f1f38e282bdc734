package site

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/site/ui"
)

// The citizen portal (site/ui's portal pages) is served on the state's
// issuer name, under /portal/: https://id.<state>/portal/. That origin is
// the state's, not a site's, so it moves with the issuer when an embassy
// takes over, and it is the origin the charter's passkey configuration
// (services.identity.portal.rp_id and origins) names: a passkey registered
// at home works at whichever site is active. The passkey ceremony's calls
// to the identity service are then same-origin, under the strict CSP.
//
// The portal is a relying party of the state's own OpenID Connect
// provider, registered in the charter like any other (the client
// services.identity.portal.client_id, with its redirect URI
// <issuer>/portal/callback), so its tokens are what the provider calls a
// citizen's own. Its client key is a state key derived from the root
// (PortalKeyPurpose), so every active site authenticates as the same
// client with private_key_jwt; the charter's JWKS for the client holds
// its public half (PortalJWKS). It runs authorization code with PKCE
// (S256) and a nonce: the authorization request is made by the portal
// itself, in process, because the provider's login step answers JSON and
// the portal draws the sign-in page; the code comes back through the
// browser to /portal/callback, bound to the browser by a flow cookie, and
// is redeemed at the token endpoint with the PKCE verifier and a client
// assertion. The ID token is checked against the charter's oidc key.
//
// Every page's data then comes from the provider's bearer-token API with
// the citizen's access token — the same access rules and the same access
// entries as any citizen read. A portal session lives as long as its
// access token (the provider issues no refresh token), and dies with the
// process, like the officials' page sessions.

// PortalKeyPurpose is the state key the portal authenticates to the
// provider with (ES256, generation 0): internal/state's, which founding
// derives the charter's JWKS from.
const PortalKeyPurpose = state.PortalKeyPurpose

const (
	portalFlowTTL     = 10 * time.Minute
	portalMaxFlows    = 4096
	portalMaxExtracts = 8 // kept per session, newest first
	uiCitizen         = uiKind("citizen")
)

// PortalJWKS is the public JSON Web Key Set of the portal's client key,
// derived from the root in kr: what the charter registers for the portal
// client.
func PortalJWKS(kr *seal.Keyring) (string, error) { return state.PortalJWKS(kr) }

type portalCtxKey struct{}

// portal is the portal's state at this site: sign-ins in progress and the
// extracts issued to each session.
type portal struct {
	s *Site

	mu       sync.Mutex
	flows    map[string]portalFlow
	extracts map[string][]*ui.IssuedExtract // by session id
	issuers  map[*guest.Local]*extract.Issuer
	clients  map[*guest.Local]*portalClient // the relying party over each unsealed state
}

type portalFlow struct {
	guest, state, nonce, verifier string
	expires                       time.Time
}

// portalClient is the portal as a relying party of one guest's provider,
// over one unsealed state.
type portalClient struct {
	t   *tenant
	cfg identity.Config
	// citizenRegistries hold records linked to a citizen (services.access).
	citizenRegistries []string
	key               *ecdsa.PrivateKey
	kid               string
	oauth             oauth2.Config
	http              *http.Client // in process, to the provider (no redirects followed)
	verify            *oidc.IDTokenVerifier
	passkey           bool
}

// inProcess serves a client's requests with a handler, in this process:
// the portal calls the provider as a relying party does, without a
// network hop to itself.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}

func newPortal(s *Site) *portal {
	return &portal{s: s, flows: map[string]portalFlow{}, extracts: map[string][]*ui.IssuedExtract{}, issuers: map[*guest.Local]*extract.Issuer{}, clients: map[*guest.Local]*portalClient{}}
}

// options are the portal's functions for site/ui.
func (p *portal) options() *ui.Portal {
	return &ui.Portal{Begin: p.begin, EID: p.eid, Finish: p.finish, SignOut: p.signOut,
		Records: p.records, Tracker: p.tracker, Extract: p.extract, Issued: p.issued, Passkey: p.passkey, Acts: p.acts()}
}

// servePortal serves the portal's paths on a guest's issuer name.
func (s *Site) servePortal(w http.ResponseWriter, r *http.Request, t *tenant) {
	s.pages.ui.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), portalCtxKey{}, t)))
}

// isPortalPath reports whether an issuer's request is the portal's. The
// portal is served on an issuer without a path only: its pages link to
// /portal/.
func isPortalPath(rt issuerRoute, path string) bool {
	return rt.prefix == "" && (path == "/portal" || strings.HasPrefix(path, "/portal/"))
}

// client builds the portal's relying party for the tenant of ctx over its
// unsealed state.
func (p *portal) client(ctx context.Context) (*portalClient, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := p.s.identityOf(t); err != nil {
		return nil, err
	}
	sv := t.Served()
	if sv == nil {
		return nil, fmt.Errorf("guest %s is not served at site %s", t.ID(), t.Site())
	}
	p.mu.Lock()
	c := p.clients[sv.Local]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if c, err = p.newClient(t, sv); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.clients) > 8 {
		clear(p.clients) // states of earlier unsealings
	}
	p.clients[sv.Local] = c
	return c, nil
}

// newClient builds the portal's relying party over one unsealed state:
// its charter's configuration, its client key, its provider.
func (p *portal) newClient(t *tenant, sv *guest.Served) (*portalClient, error) {
	var err error
	c := &portalClient{t: t}
	if _, err := sv.Local.Charter.Service(identity.Section, &c.cfg); err != nil {
		return nil, err
	}
	rules, err := access.FromCharter(sv.Local.Charter)
	if err != nil {
		return nil, err
	}
	c.citizenRegistries = rules.CitizenRegistries()
	if c.cfg.Portal.ClientID == "" {
		return nil, fmt.Errorf("the charter of %s names no portal client (services.identity.portal.client_id)", t.ID())
	}
	if c.key, c.kid, err = state.PortalKey(sv.Local.Keys); err != nil {
		return nil, err
	}
	registered := false
	for _, cl := range c.cfg.Clients {
		if cl.ID == c.cfg.Portal.ClientID {
			var set jose.JSONWebKeySet
			registered = json.Unmarshal([]byte(cl.JWKS), &set) == nil && len(set.Key(c.kid)) > 0 &&
				slices.Contains(cl.RedirectURIs, c.cfg.Issuer+"/portal/callback")
		}
	}
	if !registered {
		return nil, fmt.Errorf("the charter's client %s is not the portal: its JWKS must hold the state's portal key (kid %s, `site.PortalJWKS`) and its redirect URIs %s/portal/callback",
			c.cfg.Portal.ClientID, c.kid, c.cfg.Issuer)
	}
	c.passkey = c.cfg.Portal.RPID != "" && slices.Contains(c.cfg.Portal.Origins, c.cfg.Issuer)
	c.http = &http.Client{Transport: inProcess{h: p.s.routeIssuers(http.NotFoundHandler())},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.oauth = oauth2.Config{ClientID: c.cfg.Portal.ClientID, RedirectURL: c.cfg.Issuer + "/portal/callback",
		Endpoint: oauth2.Endpoint{AuthURL: c.cfg.Issuer + "/authorize", TokenURL: c.cfg.Issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{oidc.ScopeOpenID, identity.ScopeRecords}}
	_, pub, err := sv.Local.Charter.StateKeyFor("oidc")
	if err != nil {
		return nil, err
	}
	c.verify = oidc.NewVerifier(c.cfg.Issuer, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{pub}}, &oidc.Config{ClientID: c.cfg.Portal.ClientID, SupportedSigningAlgs: []string{oidc.ES256}, Now: p.s.opts.Now})
	return c, nil
}

// call sends a request to the provider and decodes a 2xx JSON answer
// into out; anything else is an error with the provider's description.
func (c *portalClient) call(ctx context.Context, method, path, token string, body io.Reader, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.Issuer+path, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		return res, nil
	}
	if res.StatusCode >= 300 {
		var e struct {
			Code string `json:"error"`
			Desc string `json:"error_description"`
		}
		if json.Unmarshal(b, &e) == nil && e.Desc != "" {
			return res, fmt.Errorf("%s", e.Desc)
		}
		return res, fmt.Errorf("%s %s: status %d", method, path, res.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return res, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res, nil
}

func (p *portal) begin(ctx context.Context) (*ui.SignIn, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	f := portalFlow{guest: c.t.ID(), verifier: oauth2.GenerateVerifier(), expires: p.s.opts.Now().Add(portalFlowTTL)}
	flow, err := randomID()
	if err != nil {
		return nil, err
	}
	if f.state, err = randomID(); err != nil {
		return nil, err
	}
	if f.nonce, err = randomID(); err != nil {
		return nil, err
	}
	u, err := url.Parse(c.oauth.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("nonce", f.nonce)))
	if err != nil {
		return nil, err
	}
	res, err := c.call(ctx, http.MethodGet, "/authorize?"+u.RawQuery, "", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("authorization request: %w", err)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || loc.Query().Get("authRequestID") == "" {
		return nil, fmt.Errorf("authorization request: the provider answered %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var lc identity.LoginChallenge
	if _, err := c.call(ctx, http.MethodGet, "/login?authRequestID="+url.QueryEscape(loc.Query().Get("authRequestID")), "", nil, &lc); err != nil {
		return nil, fmt.Errorf("eID challenge: %w", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(lc.Challenge)
	if err != nil {
		return nil, fmt.Errorf("eID challenge: %w", err)
	}
	now := p.s.opts.Now()
	p.mu.Lock()
	for k, v := range p.flows {
		if now.After(v.expires) {
			delete(p.flows, k)
		}
	}
	if len(p.flows) >= portalMaxFlows {
		// Anyone may begin a sign-in: when too many are open, the oldest
		// gives way, so a flood delays sign-ins rather than stopping them.
		oldest := ""
		for k, v := range p.flows {
			if oldest == "" || v.expires.Before(p.flows[oldest].expires) {
				oldest = k
			}
		}
		delete(p.flows, oldest)
	}
	p.flows[flow] = f
	p.mu.Unlock()
	return &ui.SignIn{Flow: flow, Issuer: c.cfg.Issuer, AuthRequest: lc.AuthRequest, Challenge: lc.Challenge, Message: identity.EIDMessage(c.cfg.Issuer, raw),
		Expires: lc.Expires, Passkey: c.passkey}, nil
}

// eid posts the citizen's answer to the provider's eID sign-in and
// returns where the browser goes next: the provider's callback.
func (p *portal) eid(ctx context.Context, flow string, a ui.EIDAnswer) (string, error) {
	c, err := p.client(ctx)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	_, ok := p.flows[flow]
	p.mu.Unlock()
	if !ok {
		return "", errors.New("this sign-in is unknown or older than 10 minutes")
	}
	der, err := certificateDER(a.Certificate)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(identity.EIDResponse{Challenge: a.Challenge, Chain: []string{base64.StdEncoding.EncodeToString(der)}, Signature: a.Signature})
	res, err := c.call(ctx, http.MethodPost, "/eid/login", "", strings.NewReader(string(body)), nil)
	if err != nil {
		return "", err
	}
	next := res.Header.Get("Location")
	if !strings.HasPrefix(next, c.cfg.Issuer+"/") {
		return "", fmt.Errorf("the provider answered %d", res.StatusCode)
	}
	return next, nil
}

// certificateDER reads a certificate pasted as PEM or as base64 DER.
func certificateDER(s string) ([]byte, error) {
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate: a PEM %s, want CERTIFICATE", blk.Type)
		}
		return blk.Bytes, nil
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, errors.New("certificate: neither PEM nor base64")
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return der, nil
}

// finish redeems the code for the flow the browser began, checks the ID
// token, and opens the citizen's session.
func (p *portal) finish(ctx context.Context, flow string, q url.Values) (string, time.Duration, error) {
	c, err := p.client(ctx)
	if err != nil {
		return "", 0, err
	}
	p.mu.Lock()
	f, ok := p.flows[flow]
	delete(p.flows, flow)
	p.mu.Unlock()
	switch {
	case !ok || p.s.opts.Now().After(f.expires) || f.guest != c.t.ID():
		return "", 0, errors.New("this browser began no sign-in here, or it is older than 10 minutes")
	case q.Get("state") != f.state:
		return "", 0, errors.New("the answer is for another sign-in (state)")
	case q.Get("error") != "":
		return "", 0, fmt.Errorf("the provider refused: %s %s", q.Get("error"), q.Get("error_description"))
	case q.Get("iss") != c.cfg.Issuer:
		return "", 0, fmt.Errorf("the answer names issuer %q, not %s", q.Get("iss"), c.cfg.Issuer)
	}
	assertion, err := c.assertion()
	if err != nil {
		return "", 0, err
	}
	tok, err := c.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.http), q.Get("code"), oauth2.VerifierOption(f.verifier),
		oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
		oauth2.SetAuthURLParam("client_assertion", assertion))
	if err != nil {
		return "", 0, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := c.verify.Verify(ctx, raw)
	if err != nil {
		return "", 0, fmt.Errorf("ID token: %w", err)
	}
	if idt.Nonce != f.nonce {
		return "", 0, errors.New("ID token: nonce is not this sign-in's")
	}
	ttl := tok.Expiry.Sub(p.s.opts.Now())
	if ttl <= 0 {
		return "", 0, errors.New("the access token expired at once")
	}
	id, err := p.s.pages.open(uiSession{guest: c.t.ID(), who: idt.Subject, kind: uiCitizen, token: tok.AccessToken, expires: tok.Expiry})
	if err != nil {
		return "", 0, err
	}
	p.s.log.Info("citizen signed in to the portal", "guest", c.t.ID())
	return id, ttl, nil
}

// assertion is the portal's private_key_jwt client assertion (RFC 7523).
func (c *portalClient) assertion() (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: c.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", c.kid))
	if err != nil {
		return "", err
	}
	jti, err := randomID()
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(sig).Claims(jwt.Claims{Issuer: c.oauth.ClientID, Subject: c.oauth.ClientID, Audience: jwt.Audience{c.cfg.Issuer},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: jti}).Serialize()
}

func (p *portal) signOut(session string) {
	p.s.pages.close(session)
	p.mu.Lock()
	delete(p.extracts, session)
	p.mu.Unlock()
}

// token is the access token of the viewer's citizen session.
func (p *portal) token(v ui.Viewer) (string, error) {
	p.s.pages.mu.Lock()
	defer p.s.pages.mu.Unlock()
	s, ok := p.s.pages.sessions[v.Session]
	if !ok || s.kind != uiCitizen {
		return "", errors.New("your sign-in has ended")
	}
	return s.token, nil
}

// asCitizen calls the provider's bearer-token API with the citizen's own
// access token (the citizen's access rules; an access entry where the
// API records one), decoding the answer into out.
func (p *portal) asCitizen(ctx context.Context, v ui.Viewer, method, path string, body io.Reader, out any) (*portalClient, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := p.token(v)
	if err != nil {
		return nil, err
	}
	_, err = c.call(ctx, method, path, tok, body, out)
	return c, err
}

const (
	purposeRecords = "the citizen reads their records in the portal"
	purposeExtract = "the citizen asks for a certified extract in the portal"
)

func (p *portal) records(ctx context.Context, v ui.Viewer) (*ui.MyRecords, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	// One find per registry, at once: each is an access entry made
	// durable before it answers, and appended together they share the
	// ledger's sync instead of waiting for one another's.
	found := make([][]identity.RecordResponse, len(c.citizenRegistries))
	errs := make([]error, len(c.citizenRegistries))
	var wg sync.WaitGroup
	for i, reg := range c.citizenRegistries {
		wg.Go(func() {
			if _, err := p.asCitizen(ctx, v, http.MethodGet, "/records/"+url.PathEscape(reg)+"?purpose="+url.QueryEscape(purposeRecords), nil, &found[i]); err != nil {
				errs[i] = fmt.Errorf("registry %s: %w", reg, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &ui.MyRecords{Person: v.ID}
	for i, reg := range c.citizenRegistries {
		for _, rr := range found[i] {
			rv := ui.RecordView{Registry: reg, ID: rr.ID, Version: rr.Version, Fields: fields(rr.Record)}
			if reg == c.cfg.PersonRegistry && rr.ID == v.ID {
				var given, family string
				for _, f := range rv.Fields {
					given = cond(f.Name == c.cfg.Claims["given_name"], f.Value, given)
					family = cond(f.Name == c.cfg.Claims["family_name"], f.Value, family)
				}
				m.Name = strings.TrimSpace(given + " " + family)
			}
			m.Records = append(m.Records, rv)
		}
	}
	return m, nil
}

func cond(ok bool, a, b string) string {
	if ok {
		return a
	}
	return b
}

func (p *portal) tracker(ctx context.Context, v ui.Viewer) ([]ui.TrackRow, error) {
	var seen []access.Seen
	if _, err := p.asCitizen(ctx, v, http.MethodGet, "/tracker", nil, &seen); err != nil {
		return nil, err
	}
	rows := make([]ui.TrackRow, 0, len(seen))
	for i := len(seen) - 1; i >= 0; i-- {
		s := seen[i]
		rows = append(rows, ui.TrackRow{When: s.Time, Site: s.Site, Registry: s.Registry, Kind: s.Kind, Reader: s.Reader, Who: s.Who, Purpose: s.Purpose})
	}
	return rows, nil
}

// extract reads the record through the provider as the citizen (the
// citizen's access rule decides, and the read is an access entry with
// the purpose), then issues the extract of that version as the officials'
// API does.
func (p *portal) extract(ctx context.Context, v ui.Viewer, reg, id string, names []string) (string, error) {
	var rr identity.RecordResponse
	c, err := p.asCitizen(ctx, v, http.MethodGet, "/records/"+url.PathEscape(reg)+"/"+url.PathEscape(id)+"?purpose="+url.QueryEscape(purposeExtract), nil, &rr)
	if err != nil {
		return "", err
	}
	sv := c.t.Served()
	if sv == nil {
		return "", fmt.Errorf("guest %s is not served here any more", c.t.ID())
	}
	if err := servingNow(c.t.Guest, sv); err != nil {
		return "", fmt.Errorf("extracts are issued where the guest is active and writable: %w", err)
	}
	rec, err := sv.Local.Registries.Get(ctx, reg, id, registry.AsOf{})
	if err != nil {
		return "", err
	}
	if rec.Version != rr.Version {
		return "", fmt.Errorf("%s record %s changed while you asked (version %d, now %d): ask again", reg, id, rr.Version, rec.Version)
	}
	picked, err := pickFields(reg, id, rec, names)
	if err != nil {
		return "", err
	}
	is, err := p.issuer(c.t, sv)
	if err != nil {
		return "", err
	}
	out, err := certify(ctx, is, reg, id, rec, picked)
	if err != nil {
		return "", err
	}
	xid, err := randomID()
	if err != nil {
		return "", err
	}
	x := &ui.IssuedExtract{ID: xid[:16], Registry: reg, Record: id, Version: rec.Version, Fields: slices.Sorted(func(yield func(string) bool) {
		for k := range picked {
			if !yield(k) {
				return
			}
		}
	}), Issued: p.s.opts.Now(), QRText: out.QRText, QRPNG: out.QRPNG, PDF: out.PDF}
	p.mu.Lock()
	l := append([]*ui.IssuedExtract{x}, p.extracts[v.Session]...)
	p.extracts[v.Session] = l[:min(len(l), portalMaxExtracts)]
	// Extracts of sessions that ended go with them.
	for sid := range p.extracts {
		if !p.s.pages.live(sid) {
			delete(p.extracts, sid)
		}
	}
	p.mu.Unlock()
	return x.ID, nil
}

func (p *portal) issuer(t *tenant, sv *guest.Served) (*extract.Issuer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if is := p.issuers[sv.Local]; is != nil {
		return is, nil
	}
	is, err := newExtractIssuer(t, sv, p.s.opts.Now)
	if err != nil {
		return nil, fmt.Errorf("extracts: %w", err)
	}
	clear(p.issuers) // an issuer of an earlier unsealing is of no use
	p.issuers[sv.Local] = is
	return is, nil
}

func (p *portal) issued(_ context.Context, v ui.Viewer, id string) (*ui.IssuedExtract, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.extracts[v.Session] {
		if x.ID == id {
			return x, nil
		}
	}
	return nil, errors.New("no extract of that id was issued in this sign-in; extracts are kept only while you are signed in")
}

// open starts a session directly (the portal's sign-in has its own proof).
func (p *pages) open(s uiSession) (string, error) {
	id, err := randomID()
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(p.now())
	if len(p.sessions) >= uiMaxLive {
		return "", fmt.Errorf("%d sessions are open at this site; try again later", len(p.sessions))
	}
	p.sessions[id] = s
	return id, nil
}

func (p *pages) close(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sessions, id)
}

func (p *pages) live(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[id]
	return ok && !p.now().After(s.expires)
}

// authorizePortal admits a citizen's session to the portal of the guest
// whose issuer name the request came to, and nobody else.
func authorizePortal(r *http.Request, id string, sess uiSession, ok bool) (ui.Viewer, error) {
	t, _ := r.Context().Value(portalCtxKey{}).(*tenant)
	switch {
	case !ok:
		return ui.Viewer{}, errors.New("you are not signed in, or your sign-in has ended")
	case sess.kind != uiCitizen:
		return ui.Viewer{}, fmt.Errorf("the citizen portal is for citizens; this is the session of %s %s", sess.kind, sess.who)
	case t == nil || t.ID() != sess.guest:
		return ui.Viewer{}, errors.New("your sign-in is for another state's portal")
	}
	return ui.Viewer{Name: "person " + sess.who, Session: id, Guest: sess.guest, ID: sess.who}, nil
}

// passkey relays a step of the passkey registration ceremony to the
// provider with the citizen's token: a citizen registers passkeys at home,
// signed in (with their eID the first time).
func (p *portal) passkey(ctx context.Context, v ui.Viewer, step, ceremony string, body io.Reader) ([]byte, error) {
	path := "/passkey/register/begin"
	if step == "finish" {
		path = "/passkey/register/finish?session=" + url.QueryEscape(ceremony)
	} else {
		body = nil
	}
	var out json.RawMessage
	if _, err := p.asCitizen(ctx, v, http.MethodPost, path, body, &out); err != nil {
		return nil, fmt.Errorf("passkey registration: %w", err)
	}
	return out, nil
}
