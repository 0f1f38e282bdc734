package site

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chancery-gov/chancery/charter"
	pgconnect "github.com/chancery-gov/chancery/connect/postgres"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// validate checks the section on its own; nil is valid (no connector).
func (p *PostgresConfig) validate(field string) error {
	if p == nil {
		return nil
	}
	if (p.ConnFile == "") == (p.ConnEnv == "") {
		return fieldErr(field, "give one of conn_file (a file of mode 0600 holding the connection string) or conn_env (an environment variable holding it)")
	}
	return nil
}

// connString reads the connection string. A file readable by others than
// the site's user is refused: it holds a password.
func (p *PostgresConfig) connString() (string, error) {
	if p.ConnEnv != "" {
		v := strings.TrimSpace(os.Getenv(p.ConnEnv))
		if v == "" {
			return "", fmt.Errorf("postgres.conn_env: $%s is empty or unset", p.ConnEnv)
		}
		return v, nil
	}
	fi, err := os.Stat(p.ConnFile)
	if err != nil {
		return "", fmt.Errorf("postgres.conn_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("postgres.conn_file %s: mode %04o lets others read the database's password; chmod 600 it", p.ConnFile, fi.Mode().Perm())
	}
	b, err := os.ReadFile(p.ConnFile)
	if err != nil {
		return "", fmt.Errorf("postgres.conn_file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("postgres.conn_file %s is empty", p.ConnFile)
	}
	return v, nil
}

// pgRunner runs a guest's PostgreSQL connector at this site while the
// guest writes here (guest.Options.Writer starts it, and closes what it
// returns when the site is fenced, hands over, reseals or closes). It
// keeps the last connector's status for chancery status and the pages.
type pgRunner struct {
	guest   string
	cfg     pgconnect.Config
	conf    *PostgresConfig
	metrics *pgconnect.Metrics
	log     *slog.Logger

	mu   sync.Mutex
	cur  *pgconnect.Connector
	last *pgconnect.Status // the last connector's, once stopped
	err  string            // why the last start failed
}

// newPGRunner reads the connector's mapping from the guest's charter; nil
// when the site config names no database.
func newPGRunner(charterFile string, conf *PostgresConfig, log *slog.Logger) (*pgRunner, error) {
	if conf == nil {
		return nil, nil
	}
	c, err := charter.ReadVerified(charterFile)
	if err != nil {
		return nil, err
	}
	r := &pgRunner{conf: conf, log: log.With("guest", c.Guest.ID, "component", "postgres")}
	ok, err := c.Service("postgres", &r.cfg)
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", c.Guest.ID, err)
	}
	if !ok {
		return nil, fmt.Errorf("guest %s: the site config names a PostgreSQL database (postgres:) but the charter has no services.postgres section saying what to follow", c.Guest.ID)
	}
	if err := r.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("guest %s: charter services.postgres: %w", c.Guest.ID, err)
	}
	// Fail at start, not at the first activation, if the secret is not
	// where the config says.
	if _, err := conf.connString(); err != nil {
		return nil, fmt.Errorf("guest %s: %w", c.Guest.ID, err)
	}
	r.guest = c.Guest.ID
	r.metrics = pgconnect.NewMetrics(nil, r.cfg.Slot)
	return r, nil
}

// register adds the connector's series to the site's registry, labelled
// with the guest (two guests may name the same slot).
func (r *pgRunner) register(reg prometheus.Registerer) {
	m := r.metrics
	prometheus.WrapRegistererWith(prometheus.Labels{"guest": r.guest}, reg).MustRegister(m.Rows, m.Txns, m.Reconnect, m.Applied, m.Confirmed, m.Lag)
}

// start is guest.Options.Writer: it runs the connector on the guest's
// registries until the closer it returns is closed.
func (r *pgRunner) start(ctx context.Context, l *guest.Local) io.Closer {
	fail := func(err error) io.Closer {
		r.log.Error("the PostgreSQL connector cannot start", "err", err)
		r.mu.Lock()
		r.err = err.Error()
		r.mu.Unlock()
		return nil
	}
	conn, err := r.conf.connString()
	if err != nil {
		return fail(err)
	}
	c, err := pgconnect.New(pgconnect.Options{Config: r.cfg, ConnString: conn, Registries: l.Registries, Log: l.Log, Keys: l.Keys,
		Guest: l.Charter.Guest.ID, Metrics: r.metrics,
		Logf: func(format string, a ...any) { r.log.Warn(fmt.Sprintf(format, a...)) }})
	if err != nil {
		return fail(err)
	}
	r.log.Warn("this site writes the guest: the PostgreSQL connector starts", "slot", r.cfg.Slot)
	c.Start(ctx)
	r.mu.Lock()
	r.cur, r.err = c, ""
	r.mu.Unlock()
	return closerFunc(func() error {
		err := c.Close()
		st := c.Status()
		r.mu.Lock()
		r.cur, r.last = nil, &st
		r.mu.Unlock()
		r.log.Warn("the PostgreSQL connector stopped", "slot", r.cfg.Slot, "lsn", st.LSN)
		return err
	})
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// status is what chancery status and the dashboard show.
func (r *pgRunner) status(mode siteapi.Mode, unsealed, readOnly bool) *siteapi.PostgresStatus {
	r.mu.Lock()
	cur, last, serr := r.cur, r.last, r.err
	r.mu.Unlock()
	out := &siteapi.PostgresStatus{Slot: r.cfg.Slot}
	var st *pgconnect.Status
	switch {
	case cur != nil:
		s := cur.Status()
		st = &s
		out.Running = s.Phase != "stopped"
		if !out.Running {
			out.Note = "stopped on an error; it starts again when this site next becomes the writer, or when the site restarts"
		}
	case serr != "":
		out.Note, out.LastError = "could not start", serr
	case mode != siteapi.ModeActive:
		out.Note = "not running: this site is " + string(mode) + ", not the guest's writer"
		st = last
	case !unsealed:
		out.Note = "not running: this site writes but is sealed; it starts once unsealed"
		st = last
	case readOnly:
		out.Note = "not running: the site was activated read-only"
		st = last
	default:
		out.Note = "not running"
		st = last
	}
	if st != nil {
		out.Phase, out.Connected, out.LSN, out.Confirmed, out.ServerLSN = st.Phase, st.Connected, st.LSN, st.Confirmed, st.ServerLSN
		out.LagBytes, out.LagMillis, out.Snapshot, out.Streamed, out.Txns, out.Retries = st.LagBytes, st.LagMillis, st.Snapshot, st.Streamed, st.Txns, st.Retries
		out.LastError, out.Updated = cmp.Or(out.LastError, st.LastError), st.Updated
	}
	return out
}

// Status is the guest's continuity status with its connector's.
func (t *tenant) Status() siteapi.ContinuityStatus {
	st := t.Guest.Status()
	if t.pg != nil {
		st.Postgres = t.pg.status(st.Mode, st.Unsealed, st.ReadOnly)
	}
	return st
}

// connectorRow is the dashboard's view of the connector's status.
func connectorRow(p *siteapi.PostgresStatus) *ui.ConnectorRow {
	if p == nil {
		return nil
	}
	return &ui.ConnectorRow{Slot: p.Slot, Running: p.Running, Note: p.Note, Phase: p.Phase, Connected: p.Connected, LSN: p.LSN, ServerLSN: p.ServerLSN,
		LagBytes: p.LagBytes, LagMillis: p.LagMillis, Snapshot: p.Snapshot, Streamed: p.Streamed, Txns: p.Txns, Retries: p.Retries, LastError: p.LastError, Updated: p.Updated}
}
