package site

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/siteapi"
)

// The host operator's API. A host state runs the site, so it may see how
// the site is doing — health, capacity, sizes, lag — and may suspend a
// guest, but only as the guest's charter allows (Safeguards.OperatorMay)
// and only after the notice period, and the notice is recorded in the
// guest's own ledger before it takes effect. Every request is signed by the
// host's key from the guest's charter, with the scheme of the officials'
// API (the "official" parameter names the host). Nothing here reaches
// plaintext: the site holds none.

// newHostAuthenticator checks requests signed by the charter's hosts.
// Their nonces are kept durably in the journal at journal.
func newHostAuthenticator(c *charter.Charter, site string, now func() time.Time, maxNonces int, journal string) (*authenticator, error) {
	a := &authenticator{guest: c.Guest.ID, site: site, officials: map[string]authOfficial{}, now: now}
	for i := range c.Hosts {
		h := &c.Hosts[i]
		k, err := h.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.ID, err)
		}
		a.officials[h.ID] = authOfficial{def: &charter.Official{ID: h.ID, Name: h.Name}, key: k}
	}
	var err error
	if a.nonces, err = openNonceCache(journal, maxNonces, now()); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Site) mountOperator(mux *http.ServeMux) {
	mux.HandleFunc("GET /operator/v1/guests/{guest}/status", s.operatorStatus)
	mux.HandleFunc("POST /operator/v1/guests/{guest}/suspend", s.operatorSuspend)
}

// operatorAuth authenticates the host and checks that it runs this site for
// the guest and that the charter grants it power.
func (s *Site) operatorAuth(w http.ResponseWriter, r *http.Request, power string) (*tenant, string, bool) {
	t, ok := s.tenants[r.PathValue("guest")]
	if !ok {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: fmt.Sprintf("guest %q is not held at this site", r.PathValue("guest"))})
		return nil, "", false
	}
	h, err := t.ops.authenticate(r)
	if err != nil {
		// 401, or 503 when the nonce could not be made durable.
		e := toHTTP(err, "", "")
		writeJSON(w, e.status, e.body)
		return nil, "", false
	}
	if h.ID != t.Host() {
		writeJSON(w, http.StatusForbidden, siteapi.ErrorBody{Error: fmt.Sprintf("host %s does not run site %s of %s", h.ID, t.Site(), t.ID())})
		return nil, "", false
	}
	if !slices.Contains(t.Charter().Safeguards.OperatorMay, power) {
		writeJSON(w, http.StatusForbidden, siteapi.ErrorBody{Error: fmt.Sprintf("the charter of %s does not let its hosts %s (safeguards.operator_may)", t.ID(), power)})
		return nil, "", false
	}
	return t, h.ID, true
}

func (s *Site) operatorStatus(w http.ResponseWriter, r *http.Request) {
	t, _, ok := s.operatorAuth(w, r, charter.OperatorSizes)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.tenantStatus(t))
}

func (s *Site) tenantStatus(t *tenant) siteapi.OperatorStatus {
	_, cp := t.Ledger().Checkpoint()
	st := t.Receiver().Stats()
	os := siteapi.OperatorStatus{Guest: t.ID(), Site: t.Site(), Mode: t.Mode(), Entries: t.Ledger().MirrorSize(), Epoch: t.Ledger().Epoch(),
		Checkpoint: cp.Size, UsedBytes: t.Receiver().Used(), QuotaBytes: t.Quota(), Batches: st.Batches, Objects: st.Objects, Refused: st.Refused}
	var sfs unix.Statfs_t
	if unix.Statfs(t.Dir(), &sfs) == nil {
		os.FreeBytes = int64(sfs.Bavail) * int64(sfs.Bsize)
	}
	if at := t.LastBatch(); !at.IsZero() {
		os.LastBatch = &at
		os.SinceBatch = s.opts.Now().Sub(at).Seconds()
	}
	os.Suspension = t.Suspension()
	os.SuspendedNow = t.Suspended(s.opts.Now()) != nil
	return os
}

func (s *Site) operatorSuspend(w http.ResponseWriter, r *http.Request) {
	t, host, ok := s.operatorAuth(w, r, charter.OperatorSuspend)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: "suspend: " + err.Error()})
		return
	}
	var req siteapi.SuspendRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Reason == "" {
		writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: "suspend: body must be {\"reason\": \"...\"} with a reason", Field: "reason"})
		return
	}
	sh, _ := parseSigHeader(r.Header.Get(siteapi.SignatureHeader))
	given := time.Unix(sh.Unix, 0).UTC()
	sp := &siteapi.Suspension{Guest: t.ID(), Site: t.Site(), Host: host, Signed: s.cfg.Site, Reason: req.Reason, GivenAt: given,
		EffectiveAt: given.Add(t.Charter().Safeguards.SuspendNoticePeriod()),
		Request:     siteapi.SignedRequest{Method: r.Method, Target: r.RequestURI, Signature: r.Header.Get(siteapi.SignatureHeader), Body: body}}
	if err := t.Suspend(sp); err != nil {
		writeJSON(w, http.StatusConflict, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	s.log.Warn("host gave notice of suspension", "guest", t.ID(), "host", host, "effective_at", sp.EffectiveAt, "reason", req.Reason)
	writeJSON(w, http.StatusAccepted, sp)
}
