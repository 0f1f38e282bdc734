package identity

import (
	"net/http"

	"github.com/chancery-gov/chancery/services/access"
)

// Citizen authenticates the signed-in citizen of a request by their
// portal token (Bearer, or DPoP with its proof), for the routes a site
// serves beside the issuer's (the inbox): it returns their person id, or
// answers the refusal itself and returns false — 401 without a valid
// token, 403 for a relying party's token, which acts for the citizen but
// is not them.
func (s *Service) Citizen(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := s.active(); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "this site does not serve the guest now: "+err.Error())
		return "", false
	}
	p, ok := s.reader(w, r, "", false)
	if !ok {
		return "", false
	}
	if p.Kind != access.KindCitizen {
		oauthError(w, http.StatusForbidden, "access_denied", "the inbox is served to the citizen (portal sign-in) only")
		return "", false
	}
	return p.ID, true
}
