package site

import (
	"net/http"

	"github.com/chancery-gov/chancery/siteapi"
)

// fenceGuest is POST /continuity/v1/guests/{guest}/fence: the body is a
// signed activation order of another site, its own authority.
func (s *Site) fenceGuest(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	so, ok := readSignedOrder(w, r)
	if !ok {
		return
	}
	st, err := t.AcceptFence(r.Context(), so)
	if err != nil {
		writeJSON(w, orderStatus(err), siteapi.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}
