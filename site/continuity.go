package site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/siteapi"
)

func (s *Site) mountContinuity(mux *http.ServeMux) {
	mux.HandleFunc("GET /continuity/v1/guests/{guest}/status", s.continuityStatus)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/orders", s.submitOrder)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/unseal", s.openSessionHandler((*guest.Guest).OpenSession))
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/unseal/{session}", s.shareHandler((*guest.Guest).AddShare))
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/unseal/{session}/site-keys/{site}", s.submitSiteKey)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/seal", s.sealGuest)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/fence", s.fenceGuest)
}

func (s *Site) tenantOf(w http.ResponseWriter, r *http.Request) (*tenant, bool) {
	t, ok := s.tenants[r.PathValue("guest")]
	if !ok {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: fmt.Sprintf("guest %q is not held at this site", r.PathValue("guest"))})
	}
	return t, ok
}

func (s *Site) continuityStatus(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, t.Status())
}

// submitOrder takes a signed order. Its signatures are its authority: the
// request itself needs none.
func (s *Site) submitOrder(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	so, ok := readSignedOrder(w, r)
	if !ok {
		return
	}
	o, idx, err := t.Submit(r.Context(), so, r.URL.Query().Get("accept_unfenced") == "true")
	if err != nil {
		s.log.Warn("order refused", "guest", t.ID(), "err", err)
		writeJSON(w, orderStatus(err), siteapi.ErrorBody{Error: err.Error()})
		return
	}
	s.log.Warn("order accepted", "guest", t.ID(), "order", o.ID, "action", o.Action, "site_named", o.Site, "epoch", o.Epoch, "ledger_index", idx)
	writeJSON(w, http.StatusOK, struct {
		Order  string                   `json:"order"`
		Index  uint64                   `json:"ledger_index"`
		Status siteapi.ContinuityStatus `json:"status"`
		Parsed *continuity.Order        `json:"parsed"`
	}{o.ID, idx, t.Status(), o})
}

// readSignedOrder reads a request body that is a signed order's file
// bytes; on failure it has answered.
func readSignedOrder(w http.ResponseWriter, r *http.Request) (*continuity.SignedOrder, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, continuity.MaxSignedOrderSize+1))
	if err != nil {
		status := http.StatusRequestEntityTooLarge
		if errors.Is(err, errSlowBody) {
			status = http.StatusRequestTimeout
		}
		writeJSON(w, status, siteapi.ErrorBody{Error: "order: " + err.Error()})
		return nil, false
	}
	so, err := continuity.ParseSignedOrder(raw)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: err.Error()})
		return nil, false
	}
	return so, true
}

// orderStatus is the HTTP status of a refused order: 409 when it went to
// the wrong site (or one behind another), 422 when it does not verify.
func orderStatus(err error) int {
	if errors.Is(err, guest.ErrNotWriter) || errors.Is(err, guest.ErrBehind) || errors.Is(err, guest.ErrUnfenced) {
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

// officialTenant finds the request's guest and checks that an official of
// its charter signed the request, whose body is empty; on failure it has
// answered.
func (s *Site) officialTenant(w http.ResponseWriter, r *http.Request) (*tenant, bool) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return nil, false
	}
	if _, err := t.auth.authenticate(r); err != nil {
		writeJSON(w, http.StatusUnauthorized, siteapi.ErrorBody{Error: err.Error()})
		return nil, false
	}
	_, _ = io.Copy(io.Discard, r.Body)
	return t, true
}

// openSessionHandler answers a request to open an unseal session (of an
// activation, or of a drill): an official of the guest's charter signs it.
func (s *Site) openSessionHandler(open func(*guest.Guest) (*siteapi.UnsealResponse, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, ok := s.officialTenant(w, r)
		if !ok {
			return
		}
		resp, err := open(t.Guest)
		if err != nil {
			writeJSON(w, http.StatusConflict, siteapi.ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// shareHandler takes one custodian's share sealed to a session. The share
// authenticates itself against the custody package.
func (s *Site) shareHandler(add func(g *guest.Guest, ctx context.Context, session string, sealed []byte) (*siteapi.UnsealResponse, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, ok := s.tenantOf(w, r)
		if !ok {
			return
		}
		sealed, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, siteapi.ErrorBody{Error: "share: " + err.Error()})
			return
		}
		resp, err := add(t.Guest, r.Context(), r.PathValue("session"), sealed)
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// sealGuest wipes the keys at an active site and stops serving the
// registries; the ledger stays as it is. An official signs the request.
func (s *Site) sealGuest(w http.ResponseWriter, r *http.Request) {
	t, ok := s.officialTenant(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, t.Seal())
}

// sinkFor is how this site reaches another site of a charter: the URL
// Config.Peers gives or the charter's, over TLS pinned to the charter's
// key for that site, or plain HTTP with insecure_loopback.
func (s *Site) sinkFor(c *charter.Charter, def charter.Site) (*replica.Remote, error) {
	u := def.URL
	if p, ok := s.cfg.Peers[def.ID]; ok {
		u = p
	}
	var client *http.Client
	switch {
	case len(u) > 8 && u[:8] == "https://":
		if s.tlsKey == nil {
			return nil, fmt.Errorf("site %s over https needs tls_key, to pin both ends to the charter", def.ID)
		}
		pub, err := def.TLSPublicKey()
		if err != nil {
			return nil, fmt.Errorf("tls key of site %s: %w", def.ID, err)
		}
		cfg, err := pintls.ClientConfig(s.tlsKey, pub)
		if err != nil {
			return nil, err
		}
		client = &http.Client{Transport: pintls.Transport(cfg)}
	case len(u) > 7 && u[:7] == "http://" && s.cfg.InsecureLoopback:
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	default:
		return nil, fmt.Errorf("site %s at %q: want https:// (or http:// with insecure_loopback)", def.ID, u)
	}
	return &replica.Remote{Base: u, Guest: c.Guest.ID, Client: client}, nil
}

// submitSiteKey takes a site's wrapped outer key from the guest's escrow,
// handed over with the shares: an official signs the request (no one else
// may replace a key), and the key comes sealed to the session's recipient
// (continuity.SealSiteKey), so that a copy captured on the way is of no
// use even to someone who later holds the root. At the threshold it is
// unwrapped with the rebuilt root, in memory only.
func (s *Site) submitSiteKey(w http.ResponseWriter, r *http.Request) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	if _, err := t.auth.authenticate(r); err != nil {
		writeJSON(w, http.StatusUnauthorized, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	// Read to the end: the signed digest is checked at EOF.
	sealed, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<10))
	if err != nil {
		status := http.StatusRequestEntityTooLarge
		if errors.Is(err, errAuth) {
			status = http.StatusUnauthorized
		}
		writeJSON(w, status, siteapi.ErrorBody{Error: "site key: " + err.Error()})
		return
	}
	site := r.PathValue("site")
	if _, ok := t.Charter().Site(site); !ok {
		writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: fmt.Sprintf("site %q is not in the charter", site)})
		return
	}
	resp, err := t.SubmitSiteKey(r.PathValue("session"), site, sealed)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
