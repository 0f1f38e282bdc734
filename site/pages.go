package site

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// The pages under /ui/ (package site/ui) are reached with a browser
// session that a signed request opens, so a page is never easier to reach
// than the API: an official (or a host's operator) signs a login request
// with the same key and headers as any API call (`chancery ui login`),
// gets a single-use link valid for two minutes, and opening it sets the
// session cookie (HttpOnly, Secure, SameSite=Strict). Sessions live in the
// site's memory for eight hours and die with the process.

const (
	uiTokenTTL   = 2 * time.Minute
	uiSessionTTL = 8 * time.Hour
	uiMaxPending = 1024
	uiMaxLive    = 4096
	// lagSamples at lagEvery keep an hour of recovery-point history per site.
	lagSamples = 1800
	lagEvery   = 2 * time.Second
)

// uiKind is what a session may see.
type uiKind string

const (
	uiOfficial uiKind = "official"
	uiHost     uiKind = "host"
)

type uiSession struct {
	guest   string
	who     string // official or host id
	kind    uiKind
	token   string // a citizen's access token at the state's provider (portal.go)
	expires time.Time
}

// pages holds the browser sessions, the recovery-point history the
// dashboard plots, and the rendered pages.
type pages struct {
	now    func() time.Time
	ui     *ui.UI
	portal *portal

	mu       sync.Mutex
	pending  map[string]uiSession // single-use login tokens
	sessions map[string]uiSession
	lag      map[string]map[string]*ui.Series // guest → site → recovery point, seconds
	peers    peerStatus                       // other sites' own reports (dashpeers.go)
	orders   pendingStore                     // orders left for signatures (desk_orders.go)
}

func randomID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// sweepLocked drops what has expired; the maps stay bounded by the caps.
func (p *pages) sweepLocked(now time.Time) {
	for k, v := range p.pending {
		if now.After(v.expires) {
			delete(p.pending, k)
		}
	}
	for k, v := range p.sessions {
		if now.After(v.expires) {
			delete(p.sessions, k)
		}
	}
}

func (p *pages) issue(s uiSession) (string, error) {
	tok, err := randomID()
	if err != nil {
		return "", err
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
	if len(p.pending) >= uiMaxPending {
		return "", fmt.Errorf("%d sign-in links are waiting to be opened; try again in %s", len(p.pending), uiTokenTTL)
	}
	s.expires = now.Add(uiTokenTTL)
	p.pending[tok] = s
	return tok, nil
}

func (p *pages) redeem(tok string) (string, uiSession, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
	s, ok := p.pending[tok]
	if !ok {
		return "", uiSession{}, fmt.Errorf("this sign-in link is unknown, used already or older than %s: run `chancery ui login` again", uiTokenTTL)
	}
	delete(p.pending, tok)
	if len(p.sessions) >= uiMaxLive {
		return "", uiSession{}, fmt.Errorf("%d sessions are open at this site; try again later", len(p.sessions))
	}
	id, err := randomID()
	if err != nil {
		return "", uiSession{}, err
	}
	s.expires = now.Add(uiSessionTTL)
	p.sessions[id] = s
	return id, s, nil
}

func (p *pages) session(r *http.Request) (string, uiSession, bool) {
	c, err := r.Cookie(ui.SessionCookie)
	if err != nil {
		return "", uiSession{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[c.Value]
	if !ok || p.now().After(s.expires) {
		return "", uiSession{}, false
	}
	return c.Value, s, true
}

func (p *pages) series(guest, site string) *ui.Series {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.lag[guest]
	if m == nil {
		m = map[string]*ui.Series{}
		p.lag[guest] = m
	}
	sr := m[site]
	if sr == nil {
		sr = ui.NewSeries(lagSamples)
		m[site] = sr
	}
	return sr
}

func (p *pages) lines(guest string) []ui.Line {
	p.mu.Lock()
	m := p.lag[guest]
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	p.mu.Unlock()
	sort.Strings(names)
	var out []ui.Line
	for _, n := range names {
		out = append(out, ui.Line{Name: n, Points: p.series(guest, n).Points()})
	}
	return out
}

// sampleLag records every writer's sites' recovery points, and asks the
// other sites for their status (dashpeers.go), until ctx ends.
// Serve owns it and waits for it.
func (s *Site) sampleLag(ctx context.Context) {
	tick := time.NewTicker(lagEvery)
	defer tick.Stop()
	for {
		for _, id := range s.order {
			t := s.tenants[id]
			if repl := t.Replicator(); repl != nil {
				now := s.opts.Now()
				for _, l := range repl.Tracker().Lags() {
					s.pages.series(id, l.Site).Add(now, l.Seconds)
				}
			}
		}
		s.pollPeers(ctx)
		select {
		case <-ctx.Done():
			s.pages.peers.close()
			return
		case <-tick.C:
		}
	}
}

func (s *Site) newPages() (*pages, error) {
	p := &pages{now: s.opts.Now, pending: map[string]uiSession{}, sessions: map[string]uiSession{}, lag: map[string]map[string]*ui.Series{}, portal: newPortal(s)}
	var err error
	p.ui, err = ui.New(ui.Options{
		StateName: s.stateName(),
		Site:      s.cfg.Site,
		Now:       s.opts.Now,
		Logger:    s.log,
		Authorize: func(r *http.Request, pg ui.Page) (ui.Viewer, error) {
			id, sess, ok := p.session(r)
			switch {
			case pg == ui.PagePortal:
				return authorizePortal(r, id, sess, ok)
			case ok && sess.kind == uiCitizen:
				return ui.Viewer{}, errors.New("these pages are for the guest's officials and its hosts; you are signed in to the citizen portal")
			}
			if !ok {
				return ui.Viewer{}, fmt.Errorf("sign in first: an official runs `chancery ui login --site %s` and opens the link it prints (a host's operator adds --operator)", s.cfg.Site)
			}
			switch {
			case pg == ui.PageHost && sess.kind != uiHost:
				return ui.Viewer{}, fmt.Errorf("the host console is for the operator of the host of site %s; you are signed in as official %s", s.cfg.Site, sess.who)
			case (pg == ui.PageDashboard || pg == ui.PageDesk) && sess.kind != uiOfficial:
				return ui.Viewer{}, fmt.Errorf("the continuity dashboard is for the guest's officials; you are signed in as host %s", sess.who)
			}
			return ui.Viewer{Name: string(sess.kind) + " " + sess.who + " (" + sess.guest + ")", Session: id, Guest: sess.guest, ID: sess.who}, nil
		},
		Dashboard: s.dashboard,
		Host:      s.hostConsole,
		DeskHooks: ui.DeskHooks{Desk: s.desk, DeskSearch: s.deskSearch, DeskCase: s.deskCase, DeskOrder: func(_ context.Context, v ui.Viewer, id string) ([]byte, error) {
			return p.orders.file(v.Guest, id)
		}},
		Portal: p.portal.options(),
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// stateName is the name of the state whose pages these are: the guest's
// at a site of one guest, else the site's.
func (s *Site) stateName() string {
	if len(s.order) == 1 {
		if n := s.tenants[s.order[0]].Charter().Guest.Name; n != "" {
			return n
		}
	}
	return "Chancery site " + s.cfg.Site
}

func (s *Site) mountPages(mux *http.ServeMux) {
	mux.Handle("/ui/", s.pages.ui)
	mux.HandleFunc("GET /ui/login", s.uiLogin)
	mux.HandleFunc("POST /ui/v1/guests/{guest}/login", s.uiOfficialLogin)
	mux.HandleFunc("POST /ui/v1/operator/guests/{guest}/login", s.uiOperatorLogin)
	mux.HandleFunc("POST /ui/v1/guests/{guest}/orders", s.leaveOrder)
}

func (s *Site) uiOfficialLogin(w http.ResponseWriter, r *http.Request) {
	t, o, ok := s.signedByOfficial(w, r)
	if !ok {
		return
	}
	s.answerLogin(w, uiSession{guest: t.ID(), who: o.ID, kind: uiOfficial})
}

// signedByOfficial authenticates a request to the pages' API as signed by
// an official of the guest it names; it answers the request if not.
func (s *Site) signedByOfficial(w http.ResponseWriter, r *http.Request) (*tenant, *charter.Official, bool) {
	t, ok := s.tenantOf(w, r)
	if !ok {
		return nil, nil, false
	}
	o, err := t.auth.authenticate(r)
	if err != nil {
		e := toHTTP(err, "", "")
		writeJSON(w, e.status, e.body)
		return nil, nil, false
	}
	return t, o, true
}

func (s *Site) uiOperatorLogin(w http.ResponseWriter, r *http.Request) {
	t, host, ok := s.operatorAuth(w, r, charter.OperatorSizes)
	if !ok {
		return
	}
	s.answerLogin(w, uiSession{guest: t.ID(), who: host, kind: uiHost})
}

func (s *Site) answerLogin(w http.ResponseWriter, sess uiSession) {
	tok, err := s.pages.issue(sess)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, siteapi.ErrorBody{Error: "sign-in: " + err.Error()})
		return
	}
	s.log.Info("page sign-in link issued", "guest", sess.guest, string(sess.kind), sess.who)
	writeJSON(w, http.StatusOK, siteapi.UILogin{Path: "/ui/login?token=" + tok, Expires: s.opts.Now().Add(uiTokenTTL).UTC()})
}

func (s *Site) uiLogin(w http.ResponseWriter, r *http.Request) {
	id, sess, err := s.pages.redeem(r.URL.Query().Get("token"))
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintln(w, err)
		return
	}
	ui.SetSession(w, id, int(uiSessionTTL/time.Second))
	to := "/ui/dashboard"
	if sess.kind == uiHost {
		to = "/ui/host"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// dashboard gathers the continuity dashboard of the viewer's guest from
// what this site knows: its own state, and at the writer every site's
// receipts and recovery point.
func (s *Site) dashboard(_ context.Context, v ui.Viewer) (*ui.Dashboard, error) {
	t, ok := s.tenants[v.Guest]
	if !ok {
		return nil, fmt.Errorf("guest %s is not held at this site", v.Guest)
	}
	st := t.Status()
	c := t.Charter()
	d := &ui.Dashboard{Guest: t.ID()}
	lags := map[string]replica.Lag{}
	if repl := t.Replicator(); repl != nil {
		for _, l := range repl.Tracker().Lags() {
			lags[l.Site] = l
		}
	}
	for _, cs := range c.Sites {
		row := ui.SiteRow{ID: cs.ID, Role: cs.Role, Host: cs.Host}
		switch l, known := lags[cs.ID]; {
		case cs.ID == s.cfg.Site:
			row.Mode, row.Epoch, row.LedgerSize = string(st.Mode), st.Epoch, st.Size
			if err := t.Suspended(s.opts.Now()); err != nil {
				row.Mode, row.Problem = "suspended", err.Error()
			}
			if err := t.Ledger().Health(); err != nil {
				row.Mode, row.Problem = "damaged", err.Error()
			} else if err := ledgerDamage(t); err != nil {
				row.Mode, row.Problem = "damaged", err.Error()
			}
		case known:
			row.Mode, row.LedgerSize, row.LastReceipt = "standby", l.Size, l.ReceiptTime
			row.RPOEntries, row.RPOSeconds, row.Epoch = l.Entries, l.Seconds, st.Epoch
			if !l.Connected {
				row.Mode, row.Problem = "unreachable", l.LastError
			}
		case cs.ID == st.Writer:
			row.Mode, row.Epoch = "active", st.Epoch
			row.Problem = "the writer of epoch " + fmt.Sprint(st.Epoch) + "; this site mirrors it"
		default:
			row.Mode = "unknown"
			row.Problem = "this site does not ship to it; ask it: chancery status --all"
		}
		if cs.ID != s.cfg.Site {
			s.reported(&row, t.ID())
		}
		d.Sites = append(d.Sites, row)
	}
	d.Lag = s.pages.lines(t.ID())
	if st.Order != "" {
		d.Orders = append(d.Orders, ui.OrderRow{ID: st.Order, Kind: "opened epoch " + fmt.Sprint(st.Epoch), Site: st.Writer, State: "accepted"})
	}
	d.Orders = append(d.Orders, s.pages.waitingOrderRows(t)...)
	if ds := t.DrillStatus(); ds.LastReport != nil {
		r := ds.LastReport
		d.Drills = append(d.Drills, ui.DrillRow{Site: r.Site, Order: r.Order, When: r.Finished, RTOSeconds: r.RTOSeconds, RPOEntries: r.RPOEntries, Outcome: "could activate"})
	}
	_, cp := t.Ledger().Checkpoint()
	d.Ledger = ui.LedgerRow{Size: t.Ledger().MirrorSize(), Checkpoint: cp.Size, Epoch: st.Epoch, Writer: st.Writer}
	d.Postgres = connectorRow(st.Postgres)
	return d, nil
}

// hostConsole is what the operator of this site's host sees, from the
// operator API's own figures.
func (s *Site) hostConsole(_ context.Context, v ui.Viewer) (*ui.HostConsole, error) {
	h := &ui.HostConsole{}
	for _, id := range s.order {
		t := s.tenants[id]
		if t.Host() == "" || t.Host() != v.ID {
			continue
		}
		h.Host = t.Host()
		os := s.tenantStatus(t)
		row := ui.TenantRow{Guest: os.Guest, Site: os.Site, Mode: string(os.Mode), UsedBytes: os.UsedBytes, QuotaBytes: os.QuotaBytes,
			FreeBytes: os.FreeBytes, Batches: os.Batches, Refused: os.Refused, Suspended: os.SuspendedNow}
		if os.LastBatch != nil {
			row.LastBatch = *os.LastBatch
		}
		if sp := os.Suspension; sp != nil {
			row.Suspension = fmt.Sprintf("notice given %s by %s, effective %s: %s", sp.GivenAt.Format(time.RFC3339), sp.Host, sp.EffectiveAt.Format(time.RFC3339), sp.Reason)
			if sp.RecordedAt != nil {
				row.Suspension += fmt.Sprintf(" (recorded in the guest's ledger at index %d)", *sp.RecordedAt)
			} else {
				row.Suspension += " (not yet recorded in the guest's ledger: the writer records it when it next ships here)"
			}
		}
		for _, p := range t.Charter().Safeguards.OperatorMay {
			row.MaySuspend = row.MaySuspend || p == charter.OperatorSuspend
		}
		h.Tenants = append(h.Tenants, row)
		if row.MaySuspend && h.SuspendCommand == "" {
			h.SuspendCommand = fmt.Sprintf("chancery operator suspend --site %s --reason \"…\"", t.Site())
		}
	}
	if h.Host == "" {
		return nil, fmt.Errorf("no guest at site %s is hosted by %s", s.cfg.Site, v.ID)
	}
	return h, nil
}
