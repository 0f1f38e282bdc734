package site

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/siteapi"
)

// A home in its normal life is the writer of epoch 1 (or of the epoch a
// failback gave it back, once it runs as a tenant). The orders it appends
// there — drill, revoke-site, rotate-keys, amend — come through the same
// route as at any site; an activation is never appended here (the
// activated site appends it).

func (s *Site) openHomeContinuity(ctx context.Context) error {
	l := s.home.local
	w, err := newEpochWriters(l.Charter)
	if err != nil {
		return err
	}
	if err := w.foldLedger(ctx, l.Log); err != nil {
		return fmt.Errorf("orders in the home's ledger: %w", err)
	}
	w.onFold = s.homeOnFold
	s.homeWriters = w
	return nil
}

func (s *Site) mountHomeContinuity(mux *http.ServeMux) {
	mux.HandleFunc("GET /continuity/v1/guests/{guest}/status", s.homeStatus)
	mux.HandleFunc("POST /continuity/v1/guests/{guest}/orders", s.homeSubmitOrder)
}

func (s *Site) homeGuest(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("guest") != s.home.local.Charter.Guest.ID {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: fmt.Sprintf("guest %q is not held at this site", r.PathValue("guest"))})
		return false
	}
	return true
}

func (s *Site) homeStatus(w http.ResponseWriter, r *http.Request) {
	if !s.homeGuest(w, r) {
		return
	}
	l := s.home.local
	cur := s.homeWriters.ep.Current()
	wr, _ := s.homeWriters.ep.WriterAt(cur)
	writeJSON(w, http.StatusOK, siteapi.ContinuityStatus{Guest: l.Charter.Guest.ID, Site: l.Site, Mode: s.home.currentMode(), Epoch: cur,
		Writer: wr, Size: l.Log.Size(), Unsealed: true, Registries: l.Registries.Names()})
}

func (s *Site) homeSubmitOrder(w http.ResponseWriter, r *http.Request) {
	if !s.homeGuest(w, r) {
		return
	}
	so, ok := readSignedOrder(w, r)
	if !ok {
		return
	}
	o, idx, err := s.homeSubmit(r.Context(), so)
	if err != nil {
		s.log.Warn("order refused", "err", err)
		writeJSON(w, orderStatus(err), siteapi.ErrorBody{Error: err.Error()})
		return
	}
	l := s.home.local
	cur := s.homeWriters.ep.Current()
	wr, _ := s.homeWriters.ep.WriterAt(cur)
	s.log.Warn("order accepted", "order", o.ID, "action", o.Action, "site_named", o.Site, "epoch", o.Epoch, "ledger_index", idx)
	writeJSON(w, http.StatusOK, siteapi.OrderResponse{Order: o.ID, Index: idx, Status: siteapi.ContinuityStatus{Guest: l.Charter.Guest.ID, Site: l.Site,
		Mode: s.home.currentMode(), Epoch: cur, Writer: wr, Size: l.Log.Size(), Unsealed: true}})
}

func (s *Site) homeSubmit(ctx context.Context, so *continuity.SignedOrder) (*continuity.Order, uint64, error) {
	l := s.home.local
	switch {
	case s.home.currentMode() == siteapi.ModeFenced:
		return nil, 0, fmt.Errorf("%w: this home is fenced: a newer epoch has another writer", errNotWriter)
	case so.Order.Action == charter.ActionActivate:
		return nil, 0, fmt.Errorf("%w: an activation is submitted to the site it activates (%s), which appends it", errNotWriter, so.Order.Site)
	case so.Order.Action == charter.ActionFailback:
		return nil, 0, fmt.Errorf("%w: the home writes already; a failback is submitted to the active site", errNotWriter)
	}
	raw, err := so.Marshal()
	if err != nil {
		return nil, 0, err
	}
	epoch := max(s.homeWriters.ep.Current(), 1)
	return s.homeWriters.accept(so, s.opts.Now(), func(o *continuity.Order) (uint64, error) {
		return l.Log.Append(ctx, ledger.Entry{Type: ledger.TypeOrder, Epoch: epoch, Time: s.opts.Now(), Payload: raw})
	})
}

// homeOnFold acts on an order the home appended.
func (s *Site) homeOnFold(o *continuity.Order, index uint64, _ bool) {
	if o.Action == charter.ActionRevokeSite {
		s.revokeSite(o, index)
	}
}

// revokeSite stops the home shipping to a revoked site. (The site's outer
// key, where there is one, is destroyed by the key store; see seal.)
func (s *Site) revokeSite(o *continuity.Order, index uint64) {
	if s.repl != nil {
		s.repl.Stop(o.Site)
	}
	l := s.home.local
	var fp [32]byte
	if k, ok := s.outer.get(o.Site); ok {
		fp = k.ID()
	}
	s.outer.drop(o.Site)
	if fp == ([32]byte{}) {
		// No key at hand (already shredded): the files may still exist.
		fp = sha256.Sum256([]byte("no key at hand: " + o.Site))
	}
	raw, _ := (&continuity.SignedOrder{Order: *o}).Marshal()
	if err := shredOuterKey(context.Background(), l.Layout, l.Charter.Guest.ID, o.Site, fp, raw, l.Log, max(s.homeWriters.ep.Current(), 1), s.opts.Now); err != nil {
		s.log.Error("revocation: could not destroy every copy of the site's outer key", "revoked", o.Site, "err", err)
		return
	}
	s.log.Warn("site revoked: its outer key destroyed here and in the escrow, nothing more is shipped to it", "revoked", o.Site, "order", o.ID, "ledger_index", index)
}
