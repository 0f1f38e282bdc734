package site

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// Orders under signature. A continuity order is a file the officials pass
// around and sign with their own keys (`chancery order sign`); a site
// knows of it only when it is submitted with its quorum. So that the desk
// can show which orders wait for whose signature, an official may leave
// an order, signed or not, at a site (POST /ui/v1/guests/{guest}/orders,
// signed like any API call: siteapi.LeaveOrder). The site checks every
// signature against the charter, merges the signatures of copies of the
// same order, and keeps it in memory (it dies with the process, and
// nothing in it is secret: an order is published in the ledger once
// accepted) until it expires or is accepted. The desk shows each with who
// signed, what its quorum still needs, and the exact command the viewer
// runs to sign it.

const maxPendingOrders = 64 // per guest

const pendingHow = "An order waits here when an official leaves it at this site with chancery ui order ORDERFILE. " +
	"Once you have signed it, leave it again: the signatures are merged."

// pendingStore holds the orders left for signatures, per guest.
type pendingStore struct {
	mu     sync.Mutex
	orders map[string]map[string]*continuity.SignedOrder // guest → order id → order
}

// leave merges so into the store: a copy of an order already there adds
// its signatures.
func (p *pendingStore) leave(guest string, so *continuity.SignedOrder, now time.Time) (*continuity.SignedOrder, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.orders == nil {
		p.orders = map[string]map[string]*continuity.SignedOrder{}
	}
	m := p.orders[guest]
	if m == nil {
		m = map[string]*continuity.SignedOrder{}
		p.orders[guest] = m
	}
	for id, o := range m {
		if !now.Before(o.Order.Expires) {
			delete(m, id)
		}
	}
	have, ok := m[so.Order.ID]
	if !ok {
		if len(m) >= maxPendingOrders {
			return nil, fmt.Errorf("%d orders wait for signatures at this site already; submit or let some expire first", len(m))
		}
		m[so.Order.ID] = so
		return so, nil
	}
	if !bytes.Equal(have.Order.SigningMessage(), so.Order.SigningMessage()) {
		return nil, fmt.Errorf("order %s: another order with this id waits here already, with different terms", so.Order.ID)
	}
	for _, s := range so.Signatures {
		i, found := slices.BinarySearchFunc(have.Signatures, s.Official, func(x continuity.Signature, id string) int { return strings.Compare(x.Official, id) })
		if !found {
			have.Signatures = slices.Insert(have.Signatures, i, s)
		}
	}
	return have, nil
}

// list returns the guest's orders still waiting, oldest expiry first,
// dropping the expired and the accepted.
func (p *pendingStore) list(guest, accepted string, now time.Time) []*continuity.SignedOrder {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*continuity.SignedOrder
	for id, o := range p.orders[guest] {
		if !now.Before(o.Order.Expires) || id == accepted {
			delete(p.orders[guest], id)
			continue
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *continuity.SignedOrder) int { return a.Order.Expires.Compare(b.Order.Expires) })
	return out
}

func (p *pendingStore) file(guest, id string) ([]byte, error) {
	p.mu.Lock()
	o, ok := p.orders[guest][id]
	var b []byte
	var err error
	if ok {
		b, err = o.Marshal()
	}
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no order %q waits for signatures at this site", id)
	}
	return append(b, '\n'), err
}

// pendingOrders is what the desk shows of the guest's waiting orders to
// official o.
func (p *pages) pendingOrders(t *tenant, o *charter.Official) []ui.PendingOrder {
	c := t.Charter()
	var out []ui.PendingOrder
	for _, so := range p.orders.list(t.ID(), t.Status().Order, p.now()) {
		tally := continuity.TallyOrder(c, so)
		po := ui.PendingOrder{ID: so.Order.ID, Summary: so.Order.String(), Expires: so.Order.Expires.UTC().Format("2006-01-02 15:04 UTC"),
			Download: "/ui/desk/orders/" + so.Order.ID}
		signed := false
		for _, s := range tally.Signers {
			if s.Err != nil {
				po.Refused = append(po.Refused, s.Err.Error())
				continue
			}
			po.Signed = append(po.Signed, s.Official)
			signed = signed || s.Official == o.ID
		}
		po.Missing = quorumMissing(tally)
		// Only an official holding a role the action's rule counts is
		// shown the command: another's signature would count for nothing.
		po.MaySign = !signed && tally.Quorum != nil && slices.ContainsFunc(tally.Rule.Of, o.HasRole)
		po.Command = fmt.Sprintf("chancery order sign %s.order --official %s && chancery ui order %s.order --site %s --official %s",
			so.Order.ID, o.ID, so.Order.ID, t.Site(), o.ID)
		out = append(out, po)
	}
	return out
}

// waitingOrderRows is what the dashboard shows of the guest's orders
// waiting for signatures.
func (p *pages) waitingOrderRows(t *tenant) []ui.OrderRow {
	var out []ui.OrderRow
	for _, so := range p.orders.list(t.ID(), t.Status().Order, p.now()) {
		tally := continuity.TallyOrder(t.Charter(), so)
		row := ui.OrderRow{ID: so.Order.ID, Kind: so.Order.Action, Site: so.Order.Site, Needs: "quorum met: submit it", State: "waiting for signatures"}
		for _, sc := range tally.Signers {
			if sc.Err == nil {
				row.Signed = append(row.Signed, sc.Official)
			}
		}
		if m := quorumMissing(tally); m != "" {
			row.Needs = m
		}
		out = append(out, row)
	}
	return out
}

// leaveOrder takes an order left for signatures by an official.
func (s *Site) leaveOrder(w http.ResponseWriter, r *http.Request) {
	t, o, ok := s.signedByOfficial(w, r)
	if !ok {
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, continuity.MaxSignedOrderSize+1))
	if err != nil {
		e := toHTTP(err, "", "")
		writeJSON(w, e.status, e.body)
		return
	}
	so, err := continuity.ParseSignedOrder(bytes.TrimSuffix(raw, []byte("\n")))
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: "order: " + err.Error()})
		return
	}
	c := t.Charter()
	if so.Order.Guest != c.Guest.ID || so.Order.CharterHash != c.HashHex() {
		writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: fmt.Sprintf("order %s is for guest %s under charter %.12s…, not %s v%d", so.Order.ID, so.Order.Guest, so.Order.CharterHash, c.Guest.ID, c.Version)})
		return
	}
	if !s.opts.Now().Before(so.Order.Expires) {
		writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: fmt.Sprintf("order %s expired at %s", so.Order.ID, so.Order.Expires.UTC().Format(time.RFC3339))})
		return
	}
	// A signature that does not verify is not kept: it would only hide
	// that its official has not signed.
	tally := continuity.TallyOrder(c, so)
	var bad []string
	for _, sc := range tally.Signers {
		if sc.Err != nil {
			bad = append(bad, sc.Err.Error())
		}
	}
	if len(bad) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: "order " + so.Order.ID + ": " + strings.Join(bad, "; ") + ": remove it with chancery order unsign"})
		return
	}
	have, err := s.pages.orders.leave(t.ID(), so, s.opts.Now())
	if err != nil {
		writeJSON(w, http.StatusConflict, siteapi.ErrorBody{Error: err.Error()})
		return
	}
	s.log.Info("order left for signatures", "guest", t.ID(), "order", so.Order.ID, "official", o.ID)
	out := siteapi.LeftOrder{Order: so.Order.ID, Signers: have.Signers(), Desk: "/ui/desk"}
	out.Missing = quorumMissing(continuity.TallyOrder(c, have))
	writeJSON(w, http.StatusOK, out)
}

// quorumMissing is what an order's quorum still needs, in words, "" when
// it is met.
func quorumMissing(t *continuity.Tally) string {
	if t.Quorum == nil {
		return ""
	}
	return strings.Replace(t.Quorum.Error(), ": "+continuity.ErrQuorum.Error(), "", 1)
}
