package site

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/services/identity"
	"github.com/chancery-gov/chancery/siteapi"
)

// The state's OpenID Connect provider (services/identity) answers under
// the state's issuer name (https://id.<state>), not a site's: requests
// whose Host is the issuer's go to the identity service of the guest whose
// charter names that issuer, at whichever site serves them. Only a site
// where the guest is active signs anyone in; elsewhere (a sealed mirror, a
// fenced home) the issuer's paths answer 503 with the OIDC error
// temporarily_unavailable, so a relying party that reaches a stale address
// gets a clear error, not a token from a site that no longer writes.

// issuerRoute is one guest's issuer at this site.
type issuerRoute struct {
	host   string // the issuer's host, lowercase, without a default port
	prefix string // the issuer's path, "" for the root
	t      *tenant
}

// issuerRoutes reads each guest's services.identity; a guest without one
// has no issuer here. A section that does not parse is refused at start:
// a charter that names an issuer must get one.
func (s *Site) issuerRoutes() ([]issuerRoute, error) {
	var rs []issuerRoute
	for _, id := range s.order {
		t := s.tenants[id]
		var cfg identity.Config
		ok, err := t.Charter().Service(identity.Section, &cfg)
		if err != nil {
			return nil, fmt.Errorf("guest %s: %w", id, err)
		}
		if !ok {
			continue
		}
		u, err := url.Parse(cfg.Issuer)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("guest %s: services.identity.issuer %q is not an absolute URL", id, cfg.Issuer)
		}
		rs = append(rs, issuerRoute{host: hostOnly(u.Host), prefix: strings.TrimSuffix(u.Path, "/"), t: t})
	}
	return rs, nil
}

// hostOnly lowercases a Host and drops its port: the issuer is reached on
// whatever port the site listens, behind the state's name.
func hostOnly(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// routeIssuers sends requests for a guest's issuer to its identity
// service and the rest to next.
func (s *Site) routeIssuers(next http.Handler) http.Handler {
	if len(s.issuers) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOnly(r.Host)
		for _, rt := range s.issuers {
			if host != rt.host || (rt.prefix != "" && r.URL.Path != rt.prefix && !strings.HasPrefix(r.URL.Path, rt.prefix+"/")) {
				continue
			}
			h, err := s.identityOf(rt.t)
			if err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable", "error_description": err.Error()})
				return
			}
			if rt.prefix != "" {
				http.StripPrefix(rt.prefix, h).ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// identityOf returns the guest's identity service, built over its
// unsealed state the first time it is asked after an unsealing, as the
// officials' API is; nil and why while the guest is sealed here.
func (s *Site) identityOf(t *tenant) (http.Handler, error) {
	sv := t.Served()
	if sv == nil {
		return nil, fmt.Errorf("guest %s is %s at site %s: sign-in is served by the site where it is active", t.ID(), t.Mode(), t.Site())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idLocal == sv.Local && t.id != nil {
		return t.id, nil
	}
	svc, err := identity.New(identity.Options{
		Charter: sv.Local.Charter, Keys: sv.Local.Keys, Registries: sv.Local.Registries, Log: sv.Local.Log, Site: t.Site(),
		Epoch:  func() uint64 { return t.Ledger().Epoch() },
		Active: func() error { return servingNow(t.Guest, sv) },
		Now:    s.opts.Now,
		Logger: s.log.With("guest", t.ID(), "service", "identity"),
	})
	if err != nil {
		return nil, fmt.Errorf("guest %s: identity: %w", t.ID(), err)
	}
	t.id, t.idLocal = svc.WithInbox(t), sv.Local
	return svc, nil
}

// servingNow is nil while the guest at this site may sign citizens in:
// it is active, not read-only, and its unsealed state is still the one
// the service was built over.
func servingNow(g *guest.Guest, sv *guest.Served) error {
	if m := g.Mode(); m != siteapi.ModeActive {
		return fmt.Errorf("guest %s is %s at site %s", g.ID(), m, g.Site())
	}
	if sv.ReadOnly {
		return fmt.Errorf("guest %s is served read-only at site %s", g.ID(), g.Site())
	}
	if cur := g.Served(); cur == nil || cur.Local != sv.Local {
		return fmt.Errorf("guest %s was sealed again at site %s", g.ID(), g.Site())
	}
	return nil
}
