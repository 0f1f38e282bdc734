package site

import (
	"context"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// What the dashboard shows of other sites is also what they say of
// themselves: while the site serves, every lagEvery it asks each other
// site of each guest's charter for its public continuity status, over the
// same pinned channel replication uses (sinkFor), and keeps the last
// answer and when it came. A site that does not answer is shown
// UNREACHABLE with the time it was last seen.

// peerTimeout bounds one status request, so a dead peer holds no round.
const peerTimeout = 1500 * time.Millisecond

// peerSeen is the last a site said of itself.
type peerSeen struct {
	status *siteapi.ContinuityStatus // last answer, nil if never
	seen   time.Time                 // when it came
	err    string                    // the last attempt's failure, "" if it answered
}

// peerStatus holds the other sites' reports per guest and the clients
// that ask them.
type peerStatus struct {
	mu      sync.Mutex
	seen    map[string]map[string]peerSeen // guest → site → report
	clients map[string]*replica.Remote     // guest/site → where and how to ask
}

func (p *peerStatus) get(guest, site string) (peerSeen, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps, ok := p.seen[guest][site]
	return ps, ok
}

func (p *peerStatus) record(guest, site string, st *siteapi.ContinuityStatus, err error, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]map[string]peerSeen{}
	}
	m := p.seen[guest]
	if m == nil {
		m = map[string]peerSeen{}
		p.seen[guest] = m
	}
	ps := m[site]
	if err != nil {
		ps.err = err.Error()
	} else {
		ps.status, ps.seen, ps.err = st, now, ""
	}
	m[site] = ps
}

// pollPeers asks every other site of every guest for its status, at once,
// and returns when all have answered or timed out.
func (s *Site) pollPeers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, id := range s.order {
		t := s.tenants[id]
		c := t.Charter()
		for _, def := range c.Sites {
			if def.ID == t.Site() {
				continue
			}
			key := id + "/" + def.ID
			s.pages.peers.mu.Lock()
			rem, ok := s.pages.peers.clients[key]
			s.pages.peers.mu.Unlock()
			if !ok {
				var err error
				if rem, err = s.sinkFor(c, def); err != nil {
					s.pages.peers.record(id, def.ID, nil, err, s.opts.Now())
					continue
				}
				s.pages.peers.mu.Lock()
				if s.pages.peers.clients == nil {
					s.pages.peers.clients = map[string]*replica.Remote{}
				}
				s.pages.peers.clients[key] = rem
				s.pages.peers.mu.Unlock()
			}
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, peerTimeout)
				defer cancel()
				cc := &siteapi.ContinuityClient{BaseURL: rem.Base, Guest: id, HTTP: rem.Client}
				st, err := cc.Status(rctx)
				s.pages.peers.record(id, def.ID, st, err, s.opts.Now())
			})
		}
	}
	wg.Wait()
}

// closePeers drops the peers' idle connections.
func (p *peerStatus) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rem := range p.clients {
		rem.Client.CloseIdleConnections()
	}
}

// reported fills in what the row's site last said of itself.
func (s *Site) reported(row *ui.SiteRow, guest string) {
	ps, ok := s.pages.peers.get(guest, row.ID)
	if !ok {
		row.Reported, row.Unreached = "unknown", "not asked yet"
		return
	}
	if ps.status != nil {
		row.Reported, row.ReportedEpoch, row.ReportedWriter, row.Seen = string(ps.status.Mode), ps.status.Epoch, ps.status.Writer, ps.seen
	}
	if ps.err != "" {
		row.Reported, row.Unreached = "unreachable", ps.err
	}
}
