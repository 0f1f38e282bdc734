// Package identity is the identity service of an active site: citizens
// authenticate with the eID certificates and passkeys registered at home,
// and the site is an OpenID Connect provider whose issuer and signing key
// belong to the state, so a relying party configured once keeps working
// after an activation moves the service to an embassy.
//
// Its configuration is the charter's signed section services.identity
// (Config); the access rules it applies are services.access
// (services/access). docs/identity.md describes the flows, the tokens and
// claims, what of FAPI 2.0 is covered and what happens at failover.
package identity

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/access"
)

// Section is the name of the charter section.
const Section = "identity"

// Scopes the provider knows beyond openid and profile.
const (
	ScopeRecords = "records" // read the citizen's own records with the token
	ScopeVerify  = "verify"  // call the identity verification API
)

// Config is the charter section services.identity.
type Config struct {
	// Issuer is the state's issuer URL (https://id.<state>), not a site's:
	// whichever site is active answers behind it.
	Issuer string `yaml:"issuer"`
	// PersonRegistry is the registry of person records; a person's record
	// id is their person id (the eID certificate's subject serial number
	// and the token's sub).
	PersonRegistry string `yaml:"person_registry"`
	// Claims maps OIDC claims (given_name, family_name, birthdate) to
	// fields of the person record; name is given_name and family_name.
	Claims map[string]string `yaml:"claims"`
	// EID configures eID certificate sign-in.
	EID EIDConfig `yaml:"eid"`
	// Portal is the state's citizen portal: the WebAuthn relying party
	// passkeys are bound to, and the client whose tokens act as the
	// citizen themself (data tracker, own records).
	Portal Portal `yaml:"portal"`
	// Clients are the relying parties, registered by the quorum that
	// amends the charter.
	Clients []Client `yaml:"clients"`
	// VerifyPerMinute and VerifyBurst rate-limit each client's calls to
	// the verification API. Defaults 60 and 10.
	VerifyPerMinute int `yaml:"verify_per_minute,omitempty"`
	VerifyBurst     int `yaml:"verify_burst,omitempty"`
	// FAPI2 requires what the FAPI 2.0 Security Profile requires and is
	// otherwise only offered: pushed authorization requests (RFC 9126)
	// and DPoP-bound access tokens (RFC 9449), for every client.
	FAPI2 bool `yaml:"fapi2,omitempty"`
	// DPoPNonce requires every DPoP proof to carry a nonce this site
	// provided (RFC 9449 § 8 and § 9).
	DPoPNonce bool `yaml:"dpop_nonce,omitempty"`
}

// EIDConfig names the eID certificate authorities.
type EIDConfig struct {
	// CAs are the eID certification authorities a citizen's certificate
	// must chain to, by name; a CA's CRL is the record of that name in the
	// CRL registry.
	CAs []EIDCA `yaml:"cas"`
	// CRLRegistry holds one record per CA: {"crl": base64 DER CRL}.
	CRLRegistry string `yaml:"crl_registry"`
	// SerialPrefix is stripped from the subject serial number to give the
	// person id (for example "PNODR-" for an ETSI EN 319 412-1 semantics
	// identifier).
	SerialPrefix string `yaml:"serial_prefix,omitempty"`
	// ChallengeTTL is how long a sign-in challenge lives (Go duration).
	// Default 2m.
	ChallengeTTL string `yaml:"challenge_ttl,omitempty"`
}

// EIDCA is one eID certification authority.
type EIDCA struct {
	Name string `yaml:"name"`
	// Certificate is the CA certificate, PEM.
	Certificate string `yaml:"certificate"`
}

// Portal is the citizen portal.
type Portal struct {
	// ClientID is the portal's client (one of Clients).
	ClientID string `yaml:"client_id"`
	// RPID is the WebAuthn relying party id (a registrable domain) and
	// Origins the origins passkey ceremonies may come from.
	RPID    string   `yaml:"rp_id"`
	RPName  string   `yaml:"rp_name,omitempty"`
	Origins []string `yaml:"origins"`
	// PasskeyRegistry holds one record per passkey (PasskeyRecord), by
	// credential id, indexed by person_id.
	PasskeyRegistry string `yaml:"passkey_registry,omitempty"`
}

// Client is one relying party.
type Client struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name,omitempty"`
	// JWKS is the client's public JSON Web Key Set (JSON), whose keys sign
	// its private_key_jwt client assertions.
	JWKS                   string   `yaml:"jwks"`
	RedirectURIs           []string `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris,omitempty"`
	// Scopes it may ask for: openid, profile, records, verify.
	Scopes []string `yaml:"scopes"`
}

// config is Config checked and parsed.
type config struct {
	Config
	cas          *x509.CertPool
	caByName     map[string]*x509.Certificate
	challengeTTL time.Duration
	clients      map[string]*client
	rules        *access.Rules
	// clientAlgs are the algorithms of the clients' registered keys: what
	// their assertions may be signed with.
	clientAlgs []string
}

// load reads services.identity and services.access from c and checks them
// together.
func load(c *charter.Charter) (*config, error) {
	var cfg Config
	ok, err := c.Service(Section, &cfg)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("charter v%d has no services.%s section", c.Version, Section)
	}
	rules, err := access.FromCharter(c)
	if err != nil {
		return nil, err
	}
	return check(c, cfg, rules)
}

func check(c *charter.Charter, cfg Config, rules *access.Rules) (*config, error) {
	var errs []error
	bad := func(field, f string, a ...any) {
		errs = append(errs, fmt.Errorf("services.identity.%s: %s", field, fmt.Sprintf(f, a...)))
	}
	out := &config{Config: cfg, cas: x509.NewCertPool(), caByName: map[string]*x509.Certificate{}, clients: map[string]*client{}, rules: rules, challengeTTL: 2 * time.Minute}
	if u, err := url.Parse(cfg.Issuer); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(cfg.Issuer, "/") {
		bad("issuer", "%q: want an https URL without query, fragment or trailing slash", cfg.Issuer)
	}
	regs := map[string]bool{}
	for _, r := range c.Registries {
		regs[r.Name] = true
	}
	if !regs[cfg.PersonRegistry] {
		bad("person_registry", "%q is not a registry of the charter", cfg.PersonRegistry)
	}
	for claim := range cfg.Claims {
		if !slices.Contains([]string{"given_name", "family_name", "birthdate"}, claim) {
			bad("claims."+claim, "want given_name, family_name or birthdate")
		}
	}
	if len(cfg.EID.CAs) == 0 {
		bad("eid.cas", "no eID certification authority")
	}
	for i, ca := range cfg.EID.CAs {
		blk, _ := pem.Decode([]byte(ca.Certificate))
		if blk == nil || blk.Type != "CERTIFICATE" {
			bad(fmt.Sprintf("eid.cas[%d].certificate", i), "not a PEM certificate")
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			bad(fmt.Sprintf("eid.cas[%d].certificate", i), "%v", err)
			continue
		}
		if !cert.IsCA {
			bad(fmt.Sprintf("eid.cas[%d].certificate", i), "%s is not a CA certificate", cert.Subject)
		}
		if ca.Name == "" || out.caByName[ca.Name] != nil {
			bad(fmt.Sprintf("eid.cas[%d].name", i), "%q: want a unique name", ca.Name)
		}
		out.caByName[ca.Name] = cert
		out.cas.AddCert(cert)
	}
	if !regs[cfg.EID.CRLRegistry] {
		bad("eid.crl_registry", "%q is not a registry of the charter", cfg.EID.CRLRegistry)
	}
	if cfg.EID.ChallengeTTL != "" {
		d, err := time.ParseDuration(cfg.EID.ChallengeTTL)
		if err != nil || d <= 0 {
			bad("eid.challenge_ttl", "%q: want a positive Go duration", cfg.EID.ChallengeTTL)
		}
		out.challengeTTL = d
	}
	for i, cl := range cfg.Clients {
		path := fmt.Sprintf("clients[%d]", i)
		if cl.ID == "" || out.clients[cl.ID] != nil {
			bad(path+".id", "%q: want a unique client id", cl.ID)
			continue
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(cl.JWKS), &set); err != nil || len(set.Keys) == 0 {
			bad(path+".jwks", "want a JSON Web Key Set with at least one key (%v)", err)
			continue
		}
		for j, k := range set.Keys {
			if !k.IsPublic() || k.KeyID == "" {
				bad(fmt.Sprintf("%s.jwks.keys[%d]", path, j), "want a public key with a kid")
			}
			if _, ok := k.Key.(crypto.PublicKey); !ok {
				bad(fmt.Sprintf("%s.jwks.keys[%d]", path, j), "not a public key")
			}
		}
		if len(cl.RedirectURIs) == 0 {
			bad(path+".redirect_uris", "no redirect URI")
		}
		for j, u := range cl.RedirectURIs {
			pu, err := url.Parse(u)
			if err != nil || pu.Scheme != "https" && !(pu.Scheme == "http" && isLoopback(pu.Hostname())) || pu.Fragment != "" {
				bad(fmt.Sprintf("%s.redirect_uris[%d]", path, j), "%q: want an https URL (http only on loopback) without fragment", u)
			}
		}
		if !slices.Contains(cl.Scopes, "openid") {
			bad(path+".scopes", "must include openid")
		}
		for _, s := range cl.Scopes {
			if !slices.Contains([]string{"openid", "profile", ScopeRecords, ScopeVerify}, s) {
				bad(path+".scopes", "%q: want openid, profile, %s or %s", s, ScopeRecords, ScopeVerify)
			}
		}
		if slices.Contains(cl.Scopes, ScopeVerify) && !rules.MayVerify(cl.ID) {
			bad(path+".scopes", "verify needs services.access.clients.%s.verify: true", cl.ID)
		}
		out.clients[cl.ID] = &client{cfg: cl, keys: set}
		for _, k := range set.Keys {
			if k.Algorithm != "" && !slices.Contains(out.clientAlgs, k.Algorithm) {
				out.clientAlgs = append(out.clientAlgs, k.Algorithm)
			}
		}
	}
	if cfg.Portal.ClientID != "" && out.clients[cfg.Portal.ClientID] == nil {
		bad("portal.client_id", "%q is not one of clients", cfg.Portal.ClientID)
	}
	if cfg.Portal.RPID != "" {
		if len(cfg.Portal.Origins) == 0 {
			bad("portal.origins", "a WebAuthn relying party needs its origins")
		}
		idx := false
		for _, r := range c.Registries {
			if r.Name == cfg.Portal.PasskeyRegistry {
				idx = slices.Contains(r.Index, "person_id")
			}
		}
		if !idx {
			bad("portal.passkey_registry", "%q: want a registry of the charter indexed by person_id", cfg.Portal.PasskeyRegistry)
		}
	}
	slices.Sort(out.clientAlgs)
	if out.VerifyPerMinute == 0 {
		out.VerifyPerMinute = 60
	}
	if out.VerifyBurst == 0 {
		out.VerifyBurst = 10
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
