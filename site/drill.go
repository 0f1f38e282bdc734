package site

import (
	"errors"
	"io"
	"net/http"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/siteapi"
)

// mountDrill adds the drill routes of an embassy (or a standby home): the
// drilled site's status and unseal session, and, for a site that writes
// now, the route where drilled sites record their reports.
func (s *Site) mountDrill(mux *http.ServeMux) {
	mux.HandleFunc("GET /continuity/v1/guests/{guest}/drill", s.getDrill)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill/unseal", s.openSessionHandler((*guest.Guest).OpenDrillSession))
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill/unseal/{session}", s.shareHandler((*guest.Guest).AddDrillShare))
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/drill-reports", s.tenantDrillReport)
}

func (s *Site) getDrill(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, t.DrillStatus())
}

func readDrillReport(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, ledger.MaxPayloadSize+1))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, siteapi.ErrorBody{Error: "drill report: " + err.Error()})
		return nil, false
	}
	return raw, true
}

func (s *Site) answerDrillReport(w http.ResponseWriter, rc *siteapi.DrillReportReceipt, err error) {
	if err != nil {
		var re *guest.RefusedError
		if errors.As(err, &re) {
			status := http.StatusUnprocessableEntity
			if re.Conflict {
				status = http.StatusConflict
			}
			writeJSON(w, status, siteapi.ErrorBody{Error: re.Msg})
			return
		}
		s.log.Error("drill report not recorded", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rc)
}

// tenantDrillReport records a report at the site that writes the guest's
// ledger now, home or embassy. The report's signature is its authority:
// the request itself needs none.
func (s *Site) tenantDrillReport(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	raw, ok := readDrillReport(w, r)
	if !ok {
		return
	}
	rc, err := t.RecordDrillReport(r.Context(), raw)
	if errors.Is(err, guest.ErrNotWriter) {
		writeJSON(w, http.StatusConflict, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	s.answerDrillReport(w, rc, err)
}
