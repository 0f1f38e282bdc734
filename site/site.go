// Package site is the daemon behind `chancery serve`: it holds guests as
// tenants and serves them over HTTP — the officials' API over a guest's
// registries, the ledger as static C2SP tiles, replication, continuity,
// drills, the host operator's API, metrics and health.
//
// Every tenant runs one state machine (embassy.go, continuity.go): a
// sealed mirror, or the writer of the epoch its ledger says this site
// writes. A home is the site the charter names as the writer of epoch 1,
// holding its one guest from its state directory; an embassy holds the
// guests its config names, each isolated and in its own siteapi.Mode.
//
// Every API request is signed by an official of the charter (see
// siteapi.SignatureHeader and docs/api.md); the ledger and /healthz are
// public, because anyone must be able to audit the ledger.
package site

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/siteapi"
	"github.com/chancery-gov/chancery/store/location"
)

// Action is what an API request does to a registry.
type Action string

// Actions a Policy decides on.
const (
	ActionRead  Action = "read"
	ActionWrite Action = "write"
)

// Policy decides whether an authenticated official may act on a registry;
// a non-nil error is the reason for refusing (403).
type Policy func(o *charter.Official, a Action, registry string) error

// WriterRole is the role DefaultPolicy asks of officials who write records.
const WriterRole = "registrar"

// DefaultPolicy lets every official of the charter read, and officials
// with the registrar role write. The access-policy service (later) replaces
// it with per-registry rules and records every read in the ledger.
func DefaultPolicy(o *charter.Official, a Action, registry string) error {
	if a == ActionWrite && !o.HasRole(WriterRole) {
		return fmt.Errorf("official %s may not write to registry %s: the %s role is required", o.ID, registry, WriterRole)
	}
	return nil
}

// RequestInfo describes one served request to Options.Observe: the seam for
// metrics. It carries no content, identifier or query.
type RequestInfo struct {
	Official string // empty if none authenticated
	Method   string
	Route    string // the route pattern, e.g. "/v1/registries/{registry}/records/{id}"
	Registry string
	Status   int
	Bytes    int64
	Latency  time.Duration
}

// Options configure a Site beyond its Config.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for request times and records (default time.Now).
	Now func() time.Time
	// Policy decides reads and writes (default DefaultPolicy).
	Policy Policy
	// Observe, if set, is called after every request (metrics, later).
	Observe func(RequestInfo)
	// MaxNonces bounds the replay cache (default 1<<20, about 100 MiB at
	// worst); when it is full of live nonces, requests get 503.
	MaxNonces int
	// ShutdownTimeout bounds how long Serve drains requests (default 30s).
	ShutdownTimeout time.Duration
	// Local overrides how the state is opened (tests tune the ledger).
	Local guest.LocalOptions
	// LedgerCheckInterval is how often each guest's stored ledger is
	// checked and, when damaged, repaired from another site (default
	// guest.DefaultLedgerCheckInterval).
	LedgerCheckInterval time.Duration
	// OuterRotateBelow is guest.Options.OuterRotateBelow for every guest:
	// when a site's outer key is rotated (0: the default; tests lower it).
	OuterRotateBelow uint64
}

// Site is a running `chancery serve` node: the HTTP layer over its
// guests, an embassy the guests its config names, a home the one guest of
// its state directory. Each guest is one guest.Guest, one state machine —
// a sealed mirror, or the writer of the epoch its ledger says this site
// writes — whatever the site's role: a home is the site the charter names
// as the writer of epoch 1, nothing more. The site keeps it as a tenant
// (tenant.go), with the authenticators and handlers that serve it.
type Site struct {
	cfg      *Config
	opts     Options
	log      *slog.Logger
	role     string
	draining atomic.Bool

	// The site's guests, by guest id, and their order in the config.
	tenants map[string]*tenant
	order   []string
	// home is a home site's own guest (also in tenants); nil at an embassy.
	home *tenant
	// rootsRebuilt counts the times this process held a guest's root key
	// (a threshold of shares combined, or a home's key file opened): an
	// activation adds one, a drill never does.
	rootsRebuilt atomic.Uint64

	metrics *metrics
	pages   *pages             // the pages under /ui/ and their sessions
	issuers []issuerRoute      // the guests' OpenID Connect issuers (identity.go)
	scrubs  scrubs             // each guest's last blob scrub (scrub.go)
	tlsKey  ed25519.PrivateKey // pinned TLS key, if configured
	// pass opens a home's root key file, at start and when a failback
	// names it the writer; nil at an embassy. Wiped at Close.
	pass []byte
}

// officialsAPI is the officials' API over one unsealed guest: the site
// builds one each time the guest unseals (apiHandler).
type officialsAPI struct {
	local    *guest.Local
	mode     func() siteapi.Mode // the guest's mode, read at every request
	tokenKey [32]byte            // authenticates blob tokens; new at every unsealing
	limits   Limits
	policy   Policy
	auth     *authenticator
	log      *slog.Logger

	// readOnly refuses writes: a site activated read-only.
	readOnly bool
	// access, if set, records a read in the ledger before it is served:
	// at an activated site every read of plaintext (a record, a history,
	// a find, an attachment) is an access entry. A read it fails is refused.
	access func(ctx context.Context, official string, rd *guest.Read) error
	// extracts is the guest's extract issuer here, built on first use
	// (extracts.go).
	extracts func() (*extract.Issuer, error)
	// procedures is the guest's procedures here (procedures.go).
	procedures func() (*guest.Procedures, error)
	// guest is the guest served: notices and messages (notices.go).
	guest *guest.Guest
}

func (g *officialsAPI) currentMode() siteapi.Mode { return g.mode() }

// Open starts a site from its configuration: it reads the passphrase and
// opens the guest's state (see guest.OpenLocal). It does not listen yet.
func Open(ctx context.Context, cfg *Config, opts Options) (*Site, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("site config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Policy == nil {
		opts.Policy = DefaultPolicy
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	s := &Site{cfg: cfg, opts: opts, log: opts.Logger.With("site", cfg.Site), tenants: map[string]*tenant{}}
	if len(cfg.Guests) > 0 {
		pass, err := keyfile.PassphraseFromEnv(cfg.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w", cfg.Site, err)
		}
		defer clear(pass)
		if s.tlsKey, err = s.readTLSKey(pass); err != nil {
			return nil, err
		}
		if err := s.openEmbassy(ctx, pass); err != nil {
			return nil, err
		}
	} else if err := s.openHome(ctx); err != nil {
		s.Close()
		return nil, err
	}
	var err error
	if s.pages, err = s.newPages(); err != nil {
		s.Close()
		return nil, fmt.Errorf("site %s: pages: %w", s.cfg.Site, err)
	}
	if s.issuers, err = s.issuerRoutes(); err != nil {
		s.Close()
		return nil, fmt.Errorf("site %s: %w", s.cfg.Site, err)
	}
	return s, nil
}

// openHome opens a home's own guest from its state directory: the ledger
// in D/sites/<site>/ledger, the blobs beside it, the root key sealed in
// D/keys/root.key. If its ledger says this site writes the current epoch
// (epoch 1, or one a failback gave it back), it opens as the writer and
// unseals from its root key file at once; otherwise — started with
// standby: true, after another site was activated — as a sealed mirror
// of the active site, until a failback order names it the writer.
func (s *Site) openHome(ctx context.Context) error {
	pass := slices.Clone(s.opts.Local.Passphrase)
	if pass == nil {
		var err error
		if pass, err = keyfile.PassphraseFromEnv(s.cfg.PassphraseFile); err != nil {
			return fmt.Errorf("site %s: %w", s.cfg.Site, err)
		}
	}
	s.pass = pass
	var err error
	if s.tlsKey, err = s.readTLSKey(pass); err != nil {
		return err
	}
	l := state.Layout{Dir: s.cfg.StateDir}
	s.role = charter.RoleHome
	gc := guest.Config{Charter: l.Charter(), Site: s.cfg.Site, CheckpointKey: l.Key("site-checkpoint", s.cfg.Site),
		Blobs: s.cfg.Blobs, Custody: l.Custody(), Dir: filepath.Join(s.cfg.StateDir, "sites", s.cfg.Site), RootFile: l.RootKey(), Standby: s.cfg.Standby}
	if gc.Blobs.Backend != location.BackendS3 && gc.Blobs.Dir == "" {
		gc.Blobs.Dir = s.cfg.BlobDir()
	}
	if _, err := os.Stat(gc.Custody); err != nil {
		gc.Custody = ""
	}
	if _, err := os.Stat(gc.RootFile); err != nil {
		gc.RootFile = ""
	}
	t, err := s.openTenant(ctx, gc, s.cfg.Postgres, pass)
	if err != nil {
		what := ""
		if s.cfg.Standby {
			what = "standby: "
		}
		return fmt.Errorf("site %s: %s%w", s.cfg.Site, what, err)
	}
	s.tenants[t.ID()] = t
	s.order = append(s.order, t.ID())
	s.home = t
	s.metrics = newMetrics(s)
	if t.Ledger().IsMirror() {
		s.log.Warn("home in standby: a sealed mirror of its guest until a failback names it the writer", "guest", t.ID(), "ledger_size", t.Ledger().MirrorSize(), "epoch", t.Epochs().Current())
	} else {
		s.log.Info("site open", "guest", t.ID(), "role", s.role, "ledger_size", t.Ledger().Size(), "epoch", t.Ledger().Epoch(), "registries", t.RegistryNames())
	}
	return nil
}

// openEmbassy opens every guest the config names.
func (s *Site) openEmbassy(ctx context.Context, pass []byte) error {
	s.role = charter.RoleEmbassy
	for i, gc := range s.cfg.Guests {
		t, err := s.openTenant(ctx, guest.Config{Charter: gc.Charter, Site: gc.Site, CheckpointKey: gc.CheckpointKey, Blobs: gc.Blobs, Custody: gc.Custody}, gc.Postgres, pass)
		if err != nil {
			s.Close()
			return fmt.Errorf("site %s: guests[%d]: %w", s.cfg.Site, i, err)
		}
		if _, dup := s.tenants[t.ID()]; dup {
			t.close()
			s.Close()
			return fmt.Errorf("site %s: guests[%d]: guest %s is configured twice", s.cfg.Site, i, t.ID())
		}
		s.tenants[t.ID()] = t
		s.order = append(s.order, t.ID())
		s.log.Info("guest open", "guest", t.ID(), "site_id", t.Site(), "mode", t.Mode(),
			"ledger_size", t.Ledger().MirrorSize(), "epoch", t.Ledger().Epoch(), "quota_bytes", t.Quota(), "used_bytes", t.Receiver().Used())
	}
	s.metrics = newMetrics(s)
	return nil
}

// Local returns the home guest's opened state while it is unsealed (nil
// at an embassy, or at a home in standby).
func (s *Site) Local() *guest.Local {
	if s.home == nil {
		return nil
	}
	return s.home.Unsealed()
}

// Replicator returns the home's replicator (nil at an embassy, at a home
// in standby, or when replication is disabled).
func (s *Site) Replicator() *replica.Replicator {
	if s.home == nil {
		return nil
	}
	return s.home.Replicator()
}

// Handler is the site's whole HTTP surface. Every site serves each of
// its guests under /guests/<guest id>/: the ledger and the notices feed in
// every mode, the replication API to the guest's sites and, once unsealed,
// the officials' API; and the continuity, drill and operator APIs under
// their own prefixes. A home also serves its one guest at the root, where
// its officials and auditors have always found it.
func (s *Site) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive", "site": s.cfg.Site})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", s.metrics.handler())
	for _, id := range s.order {
		t := s.tenants[id]
		mountLedgerDir(mux, "/guests/"+id+"/ledger", filepath.Join(t.Dir(), "ledger"))
		mux.HandleFunc("GET /guests/"+id+"/notices", s.serveNotices(t))
		s.mountPublic(mux, "/guests/"+id, t)
		mux.Handle("/replica/v1/guests/"+id+"/", s.replicaHandler(t))
		mux.Handle("/guests/"+id+"/v1/", s.apiHandler(t))
	}
	if h := s.home; h != nil {
		mountLedgerDir(mux, "/ledger", filepath.Join(h.Dir(), "ledger"))
		mux.Handle("/v1/", s.apiHandler(h))
		s.mountPublic(mux, "", h)
		mux.HandleFunc("GET /replica/v1/status", s.replicationStatus)
	}
	s.mountOperator(mux)
	s.mountContinuity(mux)
	s.mountDrill(mux)
	s.mountPages(mux)
	return s.observe(s.paceBodies(s.routeIssuers(mux)))
}

func (s *Site) serveNotices(t *tenant) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := t.Notices(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, siteapi.ErrorBody{Error: "notices: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Guest   string              `json:"guest"`
			Notices []continuity.Notice `json:"notices"`
		}{t.ID(), append([]continuity.Notice{}, ns...)})
	}
}

func (s *Site) health(w http.ResponseWriter, r *http.Request) {
	type guestHealth struct {
		Guest      string       `json:"guest"`
		Mode       siteapi.Mode `json:"mode"`
		LedgerSize uint64       `json:"ledger_size"`
		Epoch      uint64       `json:"epoch"`
		// Error says why the guest's ledger is not ready: its disk is
		// full (it recovers by itself), or it stopped.
		Error string `json:"error,omitempty"`
	}
	status, code := "ok", http.StatusOK
	if s.draining.Load() {
		// A load balancer stops sending new requests while we drain.
		status, code = "draining", http.StatusServiceUnavailable
	}
	var gs []guestHealth
	for _, id := range s.order {
		t := s.tenants[id]
		g := guestHealth{Guest: id, Mode: t.Mode(), LedgerSize: t.Ledger().MirrorSize(), Epoch: t.Ledger().Epoch()}
		if err := t.Ledger().Health(); err != nil {
			// A ledger that cannot publish must not be sent writes: they
			// would be refused, or never reach a checkpoint.
			g.Error = err.Error()
			if code == http.StatusOK {
				status, code = "not ready", http.StatusServiceUnavailable
			}
		}
		gs = append(gs, g)
	}
	writeJSON(w, code, struct {
		Status string        `json:"status"`
		Site   string        `json:"site"`
		Role   string        `json:"role"`
		Guests []guestHealth `json:"guests"`
	}{status, s.cfg.Site, s.role, gs})
}

// ready answers /readyz: 200 only when every guest's ledger is healthy and
// the guest can do its job here; else 503 with each reason (draining, a
// ledger stopped or damaged, fenced, suspended by the host). /healthz
// stays as it was for the probes that read it.
func (s *Site) ready(w http.ResponseWriter, _ *http.Request) {
	var reasons []string
	if s.draining.Load() {
		reasons = append(reasons, "draining")
	}
	for _, id := range s.order {
		t := s.tenants[id]
		if err := t.Ledger().Health(); err != nil {
			reasons = append(reasons, id+": ledger: "+err.Error())
		}
		if t.Mode() == siteapi.ModeFenced {
			reasons = append(reasons, id+": fenced: a newer epoch has another writer")
		}
		if err := t.Suspended(s.opts.Now()); err != nil {
			reasons = append(reasons, id+": suspended: "+err.Error())
		}
		if err := ledgerDamage(t); err != nil {
			reasons = append(reasons, id+": ledger damaged: "+err.Error())
		}
		if r, ok := s.scrubs.get(id); ok {
			if p := r.problem(); p != "" {
				reasons = append(reasons, id+": "+p)
			}
		}
		if s.home == nil && !t.HasCustody() {
			// An embassy that could never be unsealed is not ready to be
			// one, however healthy its mirror.
			reasons = append(reasons, id+": no custody package: the custodians' shares could not be combined here (guests[].custody)")
		}
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "site": s.cfg.Site, "reasons": reasons})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "site": s.cfg.Site})
}

// Serve serves on ln until ctx is done, then stops accepting, lets
// requests in flight finish (up to Options.ShutdownTimeout) and returns.
// It does not close the state: Close does.
func (s *Site) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests keep running when ctx ends, so that a SIGTERM drains
		// them instead of cutting writes off half way.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Limit connections below TLS: a handshake holds a descriptor too.
	lim := s.cfg.limits()
	ln = newLimitListener(ln, lim.MaxConns, lim.MaxConnsPerIP, s.log)
	switch {
	case s.cfg.TLS != nil:
		cert, err := tls.LoadX509KeyPair(s.cfg.TLS.Cert, s.cfg.TLS.Key)
		if err != nil {
			return fmt.Errorf("site %s: tls: %w", s.cfg.Site, err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	case s.cfg.TLSKey != "":
		cfg, err := s.pinnedServerTLS()
		if err != nil {
			return err
		}
		srv.TLSConfig = cfg
		ln = tls.NewListener(ln, cfg)
	}
	// The dashboard's recovery-point history is sampled while the site
	// serves; Serve waits for the sampler before it returns.
	sctx, stopSampler := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() { s.sampleLag(sctx) })
	if s.cfg.Scrub.Every.Duration > 0 {
		sampler.Go(func() { s.scrubLoop(sctx) })
	}
	defer func() { stopSampler(); sampler.Wait() }()
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		s.draining.Store(true)
		s.log.Info("draining", "timeout", s.opts.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		done <- srv.Shutdown(sctx)
	}()
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil || s.cfg.TLSKey != "",
		"max_conns", lim.MaxConns, "max_conns_per_ip", lim.MaxConnsPerIP, "body_timeout", lim.BodyTimeout.Duration, "min_body_rate", lim.MinBodyRate)
	err := srv.Serve(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("site %s: serve: %w", s.cfg.Site, err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("site %s: drain: %w", s.cfg.Site, err)
	}
	return nil
}

// ListenAndServe listens on the configured address and serves until ctx
// is done.
func (s *Site) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("site %s: %w", s.cfg.Site, err)
	}
	if s.cfg.InsecureLoopback {
		// The config check saw a name; check the address actually bound,
		// since "localhost" could resolve elsewhere.
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			ln.Close()
			return fmt.Errorf("site %s: insecure_loopback, but %s is not a loopback address", s.cfg.Site, ln.Addr())
		}
	}
	return s.Serve(ctx, ln)
}

// Close makes the state durable and releases it.
func (s *Site) Close() error {
	var errs []error
	for _, id := range s.order {
		errs = append(errs, s.tenants[id].close())
	}
	clear(s.pass)
	return errors.Join(errs...)
}

// Run opens the site, serves until ctx is done, and closes it: the whole
// life of `chancery serve`.
func Run(ctx context.Context, cfg *Config, opts Options) (err error) {
	s, err := Open(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		s.log.Info("closed")
	}()
	return s.ListenAndServe(ctx)
}
