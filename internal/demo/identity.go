package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/services/identity/softauthn"
	"github.com/chancery-gov/chancery/siteapi"
)

// The identity part of the story: a citizen signs in to relying parties
// through the state's OpenID Connect provider, at home before the
// disaster and at embassy-north after its activation, with one relying
// party configuration. The relying parties are github.com/coreos/go-oidc
// and golang.org/x/oauth2, not Chancery code; the citizen's eID card and
// passkey are software here (an ECDSA key with its certificate, and a
// small WebAuthn authenticator).

// demoCitizen is the person who signs in; demoParcel their land parcel.
const demoParcel = "DR-PARCEL-CIT-0001"

// issuerDNS stands for the DNS record of the issuer's name: the address of
// the site where the guest is active. After a failover only it changes.
type issuerDNS struct {
	mu   sync.Mutex
	addr string
}

func (d *issuerDNS) point(siteURL string) error {
	u, err := url.Parse(siteURL)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.addr = u.Host
	d.mu.Unlock()
	return nil
}

func (d *issuerDNS) lookup() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// client is an HTTP client that reaches the issuer's name at the active
// site. The demo's sites listen on plain HTTP on loopback
// (insecure_loopback), so the transport's TLS dial is a plain TCP dial to
// the site's address: in a deployment, DNS gives that address and the
// site presents the issuer name's certificate. Nothing else is reached.
func (d *issuerDNS) client(follow bool) *http.Client {
	host := issuerHost()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, _, err := net.SplitHostPort(addr)
		if err != nil || h != host {
			return nil, fmt.Errorf("demo: the relying party reaches only the issuer %s, not %s", host, addr)
		}
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, d.lookup())
	}
	c := &http.Client{Transport: &http.Transport{DialContext: dial, DialTLSContext: dial}, Timeout: 30 * time.Second}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

func issuerHost() string {
	u, _ := url.Parse(found.DemoIssuer)
	return u.Hostname()
}

// relyingParty is a go-oidc / x/oauth2 relying party with a
// private_key_jwt key, configured once against the state's issuer.
type relyingParty struct {
	id       string
	key      *ecdsa.PrivateKey
	kid      string
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
	ctx      context.Context
	http     *http.Client
}

func newRelyingParty(ctx context.Context, dns *issuerDNS, key *ecdsa.PrivateKey, kid, id, redirect string, scopes ...string) (*relyingParty, error) {
	hc := dns.client(true)
	ctx = context.WithValue(oidc.ClientContext(ctx, hc), oauth2.HTTPClient, hc)
	p, err := oidc.NewProvider(ctx, found.DemoIssuer)
	if err != nil {
		return nil, fmt.Errorf("demo: relying party %s: discovery: %w", id, err)
	}
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	return &relyingParty{id: id, key: key, kid: kid, ctx: ctx, http: hc,
		conf:     oauth2.Config{ClientID: id, Endpoint: ep, RedirectURL: redirect, Scopes: append([]string{oidc.ScopeOpenID}, scopes...)},
		verifier: p.Verifier(&oidc.Config{ClientID: id})}, nil
}

// assertion is a private_key_jwt client assertion (RFC 7523).
func (rp *relyingParty) assertion() (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: rp.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", rp.kid))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(sig).Claims(jwt.Claims{Issuer: rp.id, Subject: rp.id, Audience: jwt.Audience{found.DemoIssuer},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: rand.Text()}).Serialize()
}

// signIn runs one sign-in: the relying party's authorization URL (PKCE
// S256, nonce), the citizen's browser through the provider with the
// authenticator given, the code exchanged with private_key_jwt and the ID
// token verified by go-oidc.
func (rp *relyingParty) signIn(browser *http.Client, auth func(*identity.LoginChallenge) (*http.Response, error)) (*oauth2.Token, *oidc.IDToken, error) {
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	authURL := rp.conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	resp, err := browser.Get(authURL)
	if err != nil {
		return nil, nil, err
	}
	loc, err := redirected(resp, http.StatusFound)
	if err != nil {
		return nil, nil, fmt.Errorf("authorize: %w", err)
	}
	if resp, err = browser.Get(loc.String()); err != nil {
		return nil, nil, err
	}
	var lc identity.LoginChallenge
	if err := decode(resp, &lc); err != nil {
		return nil, nil, fmt.Errorf("login: %w", err)
	}
	if resp, err = auth(&lc); err != nil {
		return nil, nil, err
	}
	if loc, err = redirected(resp, http.StatusSeeOther); err != nil {
		return nil, nil, fmt.Errorf("sign-in: %w", err)
	}
	if resp, err = browser.Get(loc.String()); err != nil {
		return nil, nil, err
	}
	if loc, err = redirected(resp, http.StatusFound); err != nil {
		return nil, nil, fmt.Errorf("callback: %w", err)
	}
	q := loc.Query()
	if q.Get("state") != state || q.Get("code") == "" || q.Get("iss") != found.DemoIssuer {
		return nil, nil, fmt.Errorf("redirect back to the relying party: %s", loc)
	}
	a, err := rp.assertion()
	if err != nil {
		return nil, nil, err
	}
	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
		oauth2.SetAuthURLParam("client_assertion", a))
	if err != nil {
		return nil, nil, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(rp.ctx, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("ID token: %w", err)
	}
	if idt.Nonce != nonce {
		return nil, nil, fmt.Errorf("ID token nonce %q, want %q", idt.Nonce, nonce)
	}
	return tok, idt, nil
}

// get calls a resource under the issuer with the token.
func (rp *relyingParty) get(path string, tok *oauth2.Token, out any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, found.DemoIssuer+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := rp.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s (%s)", path, resp.StatusCode, bytes.TrimSpace(b), resp.Header.Get("WWW-Authenticate"))
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

// redirected reads a redirect's Location, resolved against the issuer.
func redirected(resp *http.Response, status int) (*url.URL, error) {
	defer resp.Body.Close()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("status %d, want %d: %s", resp.StatusCode, status, bytes.TrimSpace(b))
	}
	base, _ := url.Parse(found.DemoIssuer + "/")
	return base.Parse(resp.Header.Get("Location"))
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

func postJSON(c *http.Client, u, bearer string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return c.Do(req)
}

// eidCard is the citizen's eID: a certificate of the charter's eID CA and
// its key, as the ID-card software holds them.
type eidCard struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// answer signs the provider's challenge and posts the answer.
func (e *eidCard) answer(browser *http.Client) func(*identity.LoginChallenge) (*http.Response, error) {
	return func(lc *identity.LoginChallenge) (*http.Response, error) {
		ch, err := base64.RawURLEncoding.DecodeString(lc.Challenge)
		if err != nil {
			return nil, fmt.Errorf("eID challenge: %w", err)
		}
		h := sha256.Sum256(identity.EIDMessage(found.DemoIssuer, ch))
		sig, err := ecdsa.SignASN1(rand.Reader, e.key, h[:])
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(identity.EIDResponse{Challenge: lc.Challenge, Chain: []string{base64.StdEncoding.EncodeToString(e.cert.Raw)}, Signature: base64.StdEncoding.EncodeToString(sig)})
		if err != nil {
			return nil, err
		}
		return postJSON(browser, lc.EID, "", b)
	}
}

// authenticator is the citizen's passkey: a software authenticator
// (services/identity/softauthn) bound to the portal's RP id and origin.
type authenticator struct{ *softauthn.Authenticator }

func newAuthenticator(person string) (*authenticator, error) {
	a, err := softauthn.New(found.DemoPortalRPID, found.DemoPortalOrigin, []byte(person))
	return &authenticator{a}, err
}

// get answers navigator.credentials.get, counting one more use.
func (a *authenticator) get(options json.RawMessage) ([]byte, error) {
	a.Count++
	return a.Get(options)
}

// ceremony is the begin/finish exchange of a WebAuthn ceremony.
type ceremony struct {
	Session string          `json:"session"`
	Options json.RawMessage `json:"options"`
}

// login runs the passkey sign-in ceremony for the authorization request.
func (a *authenticator) login(browser *http.Client) func(*identity.LoginChallenge) (*http.Response, error) {
	return func(lc *identity.LoginChallenge) (*http.Response, error) {
		if lc.Passkey == "" {
			return nil, errors.New("the provider offers no passkey sign-in")
		}
		resp, err := postJSON(browser, lc.Passkey, "", nil)
		if err != nil {
			return nil, err
		}
		var c ceremony
		if err := decode(resp, &c); err != nil {
			return nil, fmt.Errorf("passkey login begin: %w", err)
		}
		body, err := a.get(c.Options)
		if err != nil {
			return nil, err
		}
		return postJSON(browser, strings.Replace(lc.Passkey, "/begin?", "/finish?", 1), "", body)
	}
}

// register runs the registration ceremony with a portal token.
func (a *authenticator) register(browser *http.Client, portalToken string) error {
	resp, err := postJSON(browser, found.DemoIssuer+"/passkey/register/begin", portalToken, nil)
	if err != nil {
		return err
	}
	var c ceremony
	if err := decode(resp, &c); err != nil {
		return fmt.Errorf("passkey register begin: %w", err)
	}
	body, err := a.Create(c.Options)
	if err != nil {
		return err
	}
	if resp, err = postJSON(browser, found.DemoIssuer+"/passkey/register/finish?session="+url.QueryEscape(c.Session), portalToken, body); err != nil {
		return err
	}
	var out json.RawMessage
	if err := decode(resp, &out); err != nil {
		return fmt.Errorf("passkey register finish: %w", err)
	}
	return nil
}

// identityStory carries the citizen, their authenticators and the relying
// parties from the home to the embassy.
type identityStory struct {
	person  string
	dns     *issuerDNS
	browser *http.Client
	tax     *relyingParty
	portal  *relyingParty
	card    *eidCard
	passkey *authenticator
	homeTok *oauth2.Token
	homeKid string
}

// kid is the key id of the one key the issuer's JWKS publishes.
func (st *identityStory) kid() (string, error) {
	resp, err := st.tax.http.Get(found.DemoIssuer + "/keys")
	if err != nil {
		return "", err
	}
	var set jose.JSONWebKeySet
	if err := decode(resp, &set); err != nil || len(set.Keys) != 1 {
		return "", fmt.Errorf("demo: the issuer's JWKS: %d keys (%v)", len(set.Keys), err)
	}
	return set.Keys[0].KeyID, nil
}

// identityAtHome registers the demo citizen at home before the disaster:
// their person record and land parcel, the eID CA's CRL, a passkey
// registered through the portal; then the tax office, a go-oidc relying
// party, signs them in with the eID and reads their record.
func identityAtHome(ctx context.Context, dir string, pass []byte, guestID, homeURL string, api *siteapi.Client, say func(string, ...any)) (*identityStory, error) {
	files := found.IdentityFiles{Dir: dir}
	person := found.DemoCitizens[0]
	say("== A citizen signs in through the state's OpenID Connect provider, %s, served by the home", found.DemoIssuer)
	caKey, err := found.ReadKey(files.CAKey())
	if err != nil {
		return nil, err
	}
	ca, err := found.ReadCert(files.CACert())
	if err != nil {
		return nil, err
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().AddDate(0, 0, 30)}, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("demo: eID CRL: %w", err)
	}
	crlRec, _ := json.Marshal(map[string]any{"ca": found.DemoEIDCA, "crl": crl})
	for _, r := range []struct{ reg, id, data string }{
		{"population", person, fmt.Sprintf(`{"national_id":%q,"first_name":"Iris","last_name":"Lindqvist","birth_date":"1988-04-12","address":{"city":"Capital"}}`, person)},
		{"land", demoParcel, fmt.Sprintf(`{"parcel_id":%q,"owner_id":%q,"area_m2":640}`, demoParcel, person)},
		{found.DemoCRLRegistry, found.DemoEIDCA, string(crlRec)},
	} {
		if _, err := api.Put(ctx, r.reg, r.id, json.RawMessage(r.data)); err != nil {
			return nil, fmt.Errorf("demo: identity: write %s/%s at home: %w", r.reg, r.id, err)
		}
	}
	cert, err := found.ReadCert(files.CitizenCert(person))
	if err != nil {
		return nil, err
	}
	key, err := found.ReadKey(files.CitizenKey(person))
	if err != nil {
		return nil, err
	}
	st := &identityStory{person: person, dns: &issuerDNS{}, card: &eidCard{cert: cert, key: key}}
	if err := st.dns.point(homeURL); err != nil {
		return nil, err
	}
	say("   the relying parties' HTTP clients dial %s for %s, as DNS would send them to the active site (the demo's sites serve plain HTTP on loopback; a deployment serves the issuer's name with its TLS certificate)", st.dns.lookup(), issuerHost())
	st.browser = st.dns.client(false)
	taxKey, err := found.ReadKey(files.ClientKey(found.DemoTaxClient))
	if err != nil {
		return nil, fmt.Errorf("demo: relying party %s: %w", found.DemoTaxClient, err)
	}
	if st.tax, err = newRelyingParty(ctx, st.dns, taxKey, found.DemoTaxClient+"-1", found.DemoTaxClient, found.DemoTaxRedirect, oidc.ScopeProfile, identity.ScopeRecords); err != nil {
		return nil, err
	}
	// The story acts as the citizen portal every site serves at
	// <issuer>/portal/ (site/portal.go): the same client, with the same
	// key, derived from the root the demo holds.
	portalKey, portalKid, err := rootPortalKey(state.Layout{Dir: dir}, pass, guestID)
	if err != nil {
		return nil, err
	}
	if st.portal, err = newRelyingParty(ctx, st.dns, portalKey, portalKid, found.DemoPortalClient, found.DemoPortalReturn, identity.ScopeRecords); err != nil {
		return nil, err
	}
	say("   person %s (Iris Lindqvist), her parcel %s and the eID CA's CRL written at home; her eID certificate %q chains to the charter's CA %s",
		person, demoParcel, cert.Subject.SerialNumber, found.DemoEIDCA)

	// The citizen signs in to the portal with her eID and registers a passkey.
	ptok, _, err := st.portal.signIn(st.browser, st.card.answer(st.browser))
	if err != nil {
		return nil, fmt.Errorf("demo: portal sign-in at home: %w", err)
	}
	if st.passkey, err = newAuthenticator(person); err != nil {
		return nil, err
	}
	if err := st.passkey.register(st.browser, ptok.AccessToken); err != nil {
		return nil, fmt.Errorf("demo: passkey registration at home: %w", err)
	}
	say("   signed in to the portal (%s) with her eID, she registers a passkey (a software authenticator: P-256, RP id %s, the issuer's host): a record of registry %s, replicated sealed",
		found.DemoPortalURL, found.DemoPortalRPID, found.DemoPasskeyRegist)

	t0 := time.Now()
	tok, idt, err := st.tax.signIn(st.browser, st.card.answer(st.browser))
	if err != nil {
		return nil, fmt.Errorf("demo: tax office sign-in at home: %w", err)
	}
	took := time.Since(t0)
	var rec identity.RecordResponse
	if _, err := st.tax.get("/records/population/"+person+"?purpose="+url.QueryEscape("income tax assessment 2026"), tok, &rec); err != nil {
		return nil, fmt.Errorf("demo: tax office read at home: %w", err)
	}
	st.homeTok = tok
	if st.homeKid, err = st.kid(); err != nil {
		return nil, err
	}
	say("   the tax office (go-oidc + x/oauth2, private_key_jwt, PKCE S256) signs her in with the eID at home in %v: ID token sub %s, iss %s, verified against the JWKS; it reads her record v%d with the token",
		took.Round(time.Millisecond), idt.Subject, idt.Issuer, rec.Version)
	return st, nil
}

// rootPortalKey derives the portal's client key from the state's root key
// file.
func rootPortalKey(layout state.Layout, pass []byte, guestID string) (*ecdsa.PrivateKey, string, error) {
	root, err := seal.ReadRootKeyFile(layout.RootKey(), pass)
	if err != nil {
		return nil, "", fmt.Errorf("demo: the portal's client key: %w", err)
	}
	defer root.Wipe()
	kr := seal.NewKeyring(guestID, root)
	defer kr.Wipe()
	return state.PortalKey(kr)
}

// atEmbassy repeats the sign-ins at the activated embassy with the same
// relying-party configuration: the issuer's name now leads to the embassy.
func (st *identityStory) atEmbassy(ctx context.Context, layout state.Layout, pass []byte, guestID, embassyURL string, say func(string, ...any)) error {
	say("== The citizen signs in at embassy-north: the issuer's name now leads there; the relying parties keep their configuration")
	if err := st.dns.point(embassyURL); err != nil {
		return err
	}
	say("   the relying parties' HTTP clients now dial %s (embassy-north) for %s: only the address behind the issuer's name moved", st.dns.lookup(), issuerHost())
	kid, err := st.kid()
	if err != nil {
		return err
	}
	if kid != st.homeKid {
		return fmt.Errorf("demo: embassy-north publishes key %s, the home published %s", kid, st.homeKid)
	}
	var rec identity.RecordResponse
	if status, err := st.tax.get("/records/population/"+st.person+"?purpose=x", st.homeTok, &rec); status != http.StatusUnauthorized {
		return fmt.Errorf("demo: a token from home at embassy-north: status %d (%v), want 401 invalid_token", status, err)
	}
	say("   the token the home issued is refused there: 401 invalid_token (tokens do not survive a failover; the citizen signs in again)")

	t0 := time.Now()
	tok, idt, err := st.tax.signIn(st.browser, st.card.answer(st.browser))
	if err != nil {
		return fmt.Errorf("demo: tax office eID sign-in at embassy-north: %w", err)
	}
	eidTook := time.Since(t0)
	if _, err := st.tax.get("/records/population/"+st.person+"?purpose="+url.QueryEscape("tax refund after the disaster"), tok, &rec); err != nil {
		return fmt.Errorf("demo: tax office read at embassy-north: %w", err)
	}
	say("   eID sign-in at embassy-north in %v: ID token sub %s, same issuer and key id (%s…) as at home; the tax office reads her record v%d",
		eidTook.Round(time.Millisecond), idt.Subject, kid[:12], rec.Version)

	t0 = time.Now()
	ptok, pidt, err := st.tax.signIn(st.browser, st.passkey.login(st.browser))
	if err != nil {
		return fmt.Errorf("demo: tax office passkey sign-in at embassy-north: %w", err)
	}
	pkTook := time.Since(t0)
	var amr struct {
		AMR []string `json:"amr"`
	}
	pidt.Claims(&amr)
	if _, err := st.tax.get("/records/land/"+demoParcel+"?purpose="+url.QueryEscape("property tax 2026"), ptok, &rec); err != nil {
		return fmt.Errorf("demo: tax office read of the parcel at embassy-north: %w", err)
	}
	say("   passkey sign-in at embassy-north in %v (registered at home, its sign count %d written back): amr %v; the tax office reads her parcel %s",
		pkTook.Round(time.Millisecond), st.passkey.Count, amr.AMR, demoParcel)

	// An auditor the charter names reads her tracker over the officials'
	// signed API: that read is an access entry too.
	key, err := keyfile.ReadEd25519(layout.Key("official", found.DemoAuditor), keyfile.Protector{Passphrase: pass})
	if err != nil {
		return err
	}
	auditor := &siteapi.Client{BaseURL: embassyURL + "/guests/" + guestID, Signer: siteapi.Signer{Guest: guestID, Site: "embassy-north", Official: found.DemoAuditor, Key: key}}
	const auditPurpose = "ombudsman complaint 2026/17"
	tr, err := auditor.Tracker(ctx, st.person, auditPurpose)
	if err != nil {
		return fmt.Errorf("demo: the auditor's read of the data tracker at embassy-north: %w", err)
	}
	say("   auditor %s (services.access.auditors) reads her tracker over the signed API: %d reads listed; that read is itself an access entry", found.DemoAuditor, len(tr.Reads))

	// The citizen looks at her data tracker through the portal.
	ctok, _, err := st.portal.signIn(st.browser, st.card.answer(st.browser))
	if err != nil {
		return fmt.Errorf("demo: portal sign-in at embassy-north: %w", err)
	}
	var seen []access.Seen
	if _, err := st.portal.get("/tracker", ctok, &seen); err != nil {
		return fmt.Errorf("demo: data tracker at embassy-north: %w", err)
	}
	say("   her data tracker at embassy-north lists %d reads of her records:", len(seen))
	var sawNorth, sawParcel, sawAuditor bool
	for _, s := range seen {
		say("     %s  %-13s %-10s %-7s %-10s %q", s.Time.Format(time.TimeOnly), s.Site, s.Registry, s.Reader, s.Who, s.Purpose)
		if s.Site == "embassy-north" && s.Who == found.DemoTaxClient && s.Purpose == "tax refund after the disaster" {
			sawNorth = true
		}
		if s.Site == "embassy-north" && s.Registry == "land" && s.Purpose == "property tax 2026" {
			sawParcel = true
		}
		if s.Reader == "official" && s.Who == found.DemoAuditor && s.Purpose == auditPurpose {
			sawAuditor = true
		}
	}
	if !sawNorth || !sawParcel || !sawAuditor {
		return fmt.Errorf("demo: the data tracker lacks a read at embassy-north (tax office's record %v, parcel %v; auditor's %v)", sawNorth, sawParcel, sawAuditor)
	}
	say("   the tax office's reads and the auditor's at embassy-north are there, with their purposes; the access entries are sealed, so the hosts learn nothing of them")
	return nil
}
