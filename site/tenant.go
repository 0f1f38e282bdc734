package site

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/siteapi"
)

// tenant is one guest this site holds: the guest's state machine (package
// guest), and what the HTTP layer keeps beside it — the authenticators of
// its officials and of its charter's hosts, and the handlers built over
// the guest's current receiver and, once unsealed, its registries.
type tenant struct {
	*guest.Guest
	auth *authenticator // the guest's officials: continuity and, once unsealed, the API
	ops  *authenticator // the guest's charter's hosts: the operator API

	// mu guards the handlers below, rebuilt when the guest's receiver or
	// unsealed state changes (an activation, a failback, a reseal). It is
	// a leaf: nothing else is locked while it is held.
	mu    sync.Mutex
	recv  *replica.Receiver
	recvH http.Handler
	local *guest.Local
	offs  *officialsAPI
	api   http.Handler
	// The state's identity service (identity.go), built over idLocal.
	idLocal *guest.Local
	id      http.Handler
	// pg runs the guest's PostgreSQL connector while this site writes
	// the guest (postgres.go); nil when the site config names no database.
	pg *pgRunner
}

// openTenant opens one guest and the authenticators of its officials and
// hosts, their replay journals in the guest's directory.
func (s *Site) openTenant(ctx context.Context, gc guest.Config, pg *PostgresConfig, pass []byte) (_ *tenant, err error) {
	if gc.Site == "" {
		gc.Site = s.cfg.Site
	}
	if gc.DataDir == "" {
		gc.DataDir = s.cfg.DataDir
	}
	runner, err := newPGRunner(gc.Charter, pg, s.log)
	if err != nil {
		return nil, err
	}
	var writer func(context.Context, *guest.Local) io.Closer
	if runner != nil {
		writer = runner.start
	}
	g, err := guest.Open(ctx, gc, guest.Options{Logger: s.log, Now: s.opts.Now, Ledger: s.opts.Local.Ledger, Passphrase: pass, Writer: writer,
		Remote: s.sinkFor, RootsRebuilt: &s.rootsRebuilt, LedgerCheckInterval: s.opts.LedgerCheckInterval, OuterRotateBelow: s.opts.OuterRotateBelow,
		Replication: guest.ReplicationOptions{Disabled: s.cfg.Replication.Disabled, BytesPerSecond: s.cfg.Replication.BytesPerSecond,
			MaxBatchEntries: s.cfg.Replication.MaxBatchEntries, BlobParallel: s.cfg.Replication.BlobParallel,
			QuorumTimeout: s.cfg.Replication.QuorumTimeout.Duration}})
	if err != nil {
		return nil, err
	}
	t := &tenant{Guest: g, pg: runner}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	c := g.Charter()
	if t.auth, err = newAuthenticator(c, g.Site(), s.opts.Now, s.opts.MaxNonces, filepath.Join(g.Dir(), "replay-officials.log")); err != nil {
		return nil, fmt.Errorf("guest %s: %w", g.ID(), err)
	}
	if t.ops, err = newHostAuthenticator(c, s.cfg.Site, s.opts.Now, s.opts.MaxNonces, filepath.Join(g.Dir(), "replay-hosts.log")); err != nil {
		return nil, fmt.Errorf("guest %s: %w", g.ID(), err)
	}
	return t, nil
}

// close closes the guest, then the authenticators' journals.
func (t *tenant) close() error {
	errs := []error{t.Guest.Close()}
	for _, a := range []*authenticator{t.auth, t.ops} {
		if a != nil {
			errs = append(errs, a.close())
		}
	}
	return errors.Join(errs...)
}

// replicaHandler serves the replication API over the guest's current
// receiver.
func (s *Site) replicaHandler(t *tenant) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recv := t.Receiver()
		t.mu.Lock()
		if t.recv != recv {
			mux := http.NewServeMux()
			recv.Mount(mux, "/replica/v1/guests/"+t.ID(), s.allowPeer(t))
			t.recv, t.recvH = recv, mux
		}
		h := t.recvH
		t.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// apiHandler serves the officials' API once the guest is unsealed: a new
// API (its blob-token key new too) for every unsealing.
func (s *Site) apiHandler(t *tenant) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, h, err := s.officialsOf(t)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, siteapi.ErrorBody{Error: err.Error()})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// officialsOf is the officials' API over the guest's unsealed registries,
// built anew for every unsealing: the API's handler and the desk's pages
// (desk.go) both use it, so both read through the same gate and access
// entries.
func (s *Site) officialsOf(t *tenant) (*officialsAPI, http.Handler, error) {
	sv := t.Served()
	if sv == nil {
		return nil, nil, fmt.Errorf("guest %s is %s at site %s and not unsealed: no registry is served", t.ID(), t.Mode(), t.Site())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.local != sv.Local {
		g, h, err := s.newAPI(t, sv)
		if err != nil {
			return nil, nil, err
		}
		t.local, t.offs, t.api = sv.Local, g, h
	}
	return t.offs, t.api, nil
}

// newAPI builds the officials' API over an unsealed guest.
func (s *Site) newAPI(t *tenant, sv *guest.Served) (*officialsAPI, http.Handler, error) {
	g := &officialsAPI{local: sv.Local, mode: t.Mode, limits: s.cfg.limits(), policy: s.opts.Policy, auth: t.auth, log: s.log.With("guest", t.ID()),
		readOnly: sv.ReadOnly, procedures: t.Procedures, guest: t.Guest}
	if sv.RecordsAccess {
		g.access = t.RecordAccess
	}
	var ei extractIssuer
	g.extracts = func() (*extract.Issuer, error) {
		return ei.get(func() (*extract.Issuer, error) { return newExtractIssuer(t, sv, s.opts.Now) })
	}
	if _, err := rand.Read(g.tokenKey[:]); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	g.mountAPI(mux, "/guests/"+t.ID()+"/v1")
	if def, _ := t.Charter().Site(t.Site()); def.Role == charter.RoleHome {
		// A home also serves its guest at the root (Site.Handler).
		g.mountAPI(mux, "/v1")
	}
	return g, mux, nil
}

// allowPeer admits to the replication API only the sites of the guest's
// charter, identified by their pinned TLS keys. Plain HTTP on loopback
// (tests, a local proxy) admits anyone on the host: what arrives is
// checked against the writer's signature either way, but only a pinned
// peer may spend the guest's quota.
func (s *Site) allowPeer(t *tenant) func(*http.Request) error {
	return func(r *http.Request) error {
		if s.cfg.InsecureLoopback {
			return nil
		}
		if s.cfg.TLSKey == "" {
			return errors.New("replication needs pinned mutual TLS (tls_key); this site serves PEM certificates")
		}
		if _, ok := pintls.PeerFromRequest(r, t.Peers()); !ok {
			return fmt.Errorf("only the sites of %s's charter may replicate, with their pinned TLS keys", t.ID())
		}
		return nil
	}
}
