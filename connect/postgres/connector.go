// Package postgres is the PostgreSQL connector: it follows chosen tables
// of a source database into registries, first with a consistent snapshot
// taken at a new replication slot's exported snapshot, then by logical
// replication (pgoutput), each source transaction landing in the ledger
// as one batch together with the connector's position, so that a
// connector killed at any moment resumes with no gap and no duplicate.
// Restore writes registries back into a fresh database with COPY.
//
// docs/postgres.md is the operator's guide: setup, mapping, guarantees,
// limits and the resnapshot procedure.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/jackc/pglogrepl"
)

// Config is a connector's service configuration: what the guest's
// officials decide, so it lives in the charter's signed section
// services.postgres. Where the database is and how to log in are the
// site's (Options.ConnString), not the charter's.
type Config struct {
	// Slot is the logical replication slot the connector creates and
	// owns; Publication the publication (created by the database's
	// administrator) that names the tables.
	Slot        string  `yaml:"slot" json:"slot"`
	Publication string  `yaml:"publication" json:"publication"`
	Tables      []Table `yaml:"tables" json:"tables"`
	// Truncate is TruncateRefuse (the default: the connector stops with
	// an error and records nothing) or TruncateTombstones (every live
	// record of the table's registry gets a tombstone).
	Truncate string `yaml:"truncate,omitempty" json:"truncate,omitempty"`
	// StateRegistry is the registry that holds the connector's position
	// (record StateID(Slot)); it must index nothing but "slot".
	StateRegistry string `yaml:"state_registry" json:"state_registry"`
}

// Table maps a source table to a registry.
type Table struct {
	Table    string `yaml:"table" json:"table"` // schema.name
	Registry string `yaml:"registry" json:"registry"`
}

// Truncate policies.
const (
	TruncateRefuse     = "refuse"
	TruncateTombstones = "tombstones"
)

// Validate checks the configuration on its own.
func (c *Config) Validate() error {
	if c.Slot == "" || c.Publication == "" || c.StateRegistry == "" {
		return errors.New("postgres connector: slot, publication and state_registry are required")
	}
	for _, ch := range c.Slot {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			return fmt.Errorf("postgres connector: slot %q: only lowercase letters, digits and _", c.Slot)
		}
	}
	if len(c.Tables) == 0 {
		return errors.New("postgres connector: no tables mapped")
	}
	seen := map[string]bool{}
	regs := map[string]bool{}
	for _, t := range c.Tables {
		if t.Table == "" || t.Registry == "" {
			return errors.New("postgres connector: a table mapping needs table and registry")
		}
		if seen[t.Table] || regs[t.Registry] {
			return fmt.Errorf("postgres connector: table %s or registry %s mapped twice", t.Table, t.Registry)
		}
		if t.Registry == c.StateRegistry {
			return fmt.Errorf("postgres connector: table %s maps to the state registry %s", t.Table, t.Registry)
		}
		seen[t.Table], regs[t.Registry] = true, true
	}
	switch c.Truncate {
	case "", TruncateRefuse, TruncateTombstones:
	default:
		return fmt.Errorf("postgres connector: truncate %q: want %q or %q", c.Truncate, TruncateRefuse, TruncateTombstones)
	}
	return nil
}

// Options configure a Connector.
type Options struct {
	Config Config
	// ConnString reaches the source database as a user with the
	// REPLICATION attribute and SELECT on the mapped tables.
	ConnString string
	Registries *registry.Registries
	Log        *ledger.Log
	Keys       *seal.Keyring
	Guest      string
	// Resnapshot drops the slot and fills the registries again from a new
	// snapshot: the way back after a slot was dropped or invalidated
	// (docs/postgres.md § Resnapshot). Rows that did not change get no
	// new version; rows gone get tombstones.
	Resnapshot bool
	// Logf receives reconnects and schema changes; nil discards them.
	Logf func(format string, args ...any)
	// Metrics, if set, is updated as the connector works (NewMetrics).
	Metrics *Metrics
	// Applied, if set, is called after each ledger batch is durable with
	// the commit time of its last source transaction (benchmarks measure
	// commit→durable lag with it).
	Applied func(commit time.Time, rows int)
	// RetryMin and RetryMax bound the wait between reconnects
	// (default 100 ms to 5 s).
	RetryMin, RetryMax time.Duration
}

// Errors a connector stops with: each needs an operator, and nothing past
// the position in the ledger was recorded.
var (
	// ErrSlotLost: the replication slot was dropped or invalidated; the
	// changes after the position may be gone from the WAL. Resnapshot.
	ErrSlotLost = errors.New("replication slot lost")
	// ErrNoPrimaryKey: a mapped table has no primary key to make ids of.
	ErrNoPrimaryKey = errors.New("table has no primary key")
	// ErrTruncateRefused: a mapped table was truncated and the
	// configuration refuses truncates.
	ErrTruncateRefused = errors.New("truncate refused by configuration")
)

// permanent marks an error a reconnect cannot cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func stop(err error) error {
	if err == nil {
		return nil
	}
	var p permanent
	if errors.As(err, &p) {
		return err
	}
	return permanent{err}
}

// Status is a connector's progress, for chancery status and the site's
// dashboard.
type Status struct {
	Slot      string    `json:"slot"`
	Phase     string    `json:"phase"` // starting, snapshot, stream, stopped
	Connected bool      `json:"connected"`
	LSN       string    `json:"lsn"`                  // the position in the ledger
	Confirmed string    `json:"confirmed_lsn"`        // the position PostgreSQL was told is durable
	ServerLSN string    `json:"server_lsn"`           // the server's WAL end, last heard
	LagBytes  uint64    `json:"lag_bytes"`            // server WAL end − position
	LagMillis int64     `json:"lag_ms"`               // now − commit time of the last transaction applied, while behind
	Snapshot  int64     `json:"snapshot_rows"`        // rows written by snapshots
	Streamed  int64     `json:"streamed_changes"`     // changes applied from replication
	Txns      int64     `json:"transactions"`         // source transactions applied
	Schema    int64     `json:"schema_changes"`       // column changes seen
	Retries   int64     `json:"reconnects"`           // connections lost and retried
	LastError string    `json:"last_error,omitempty"` // the last error, retried or fatal
	Updated   time.Time `json:"updated"`
}

// Connector follows a source database into registries. Start runs it on a
// goroutine it owns; Close stops it and waits.
type Connector struct {
	opts Options

	cancel context.CancelFunc
	done   chan struct{}
	err    error // the error Run stopped with; read after done

	mu     sync.Mutex
	status Status

	applied    atomic.Uint64 // end LSN of the last transaction in the ledger
	confirmed  atomic.Uint64
	serverEnd  atomic.Uint64
	lastCommit atomic.Int64 // unix µs of the last applied commit

	// state, owned by the run goroutine
	pos    *Position
	live   map[string]map[string]liveRec
	reg    map[string]string // table → registry
	resnap bool
}

// New checks the options; Start begins.
func New(opts Options) (*Connector, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Registries == nil || opts.Log == nil || opts.Keys == nil || opts.Guest == "" || opts.ConnString == "" {
		return nil, errors.New("postgres connector: registries, log, keys, guest and connection string are required")
	}
	// Tables are named schema.name, as the stream names them.
	opts.Config.Tables = slices.Clone(opts.Config.Tables)
	for i, t := range opts.Config.Tables {
		if !strings.Contains(t.Table, ".") {
			opts.Config.Tables[i].Table = "public." + t.Table
		}
	}
	if opts.Config.Truncate == "" {
		opts.Config.Truncate = TruncateRefuse
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Second
	}
	c := &Connector{opts: opts, reg: map[string]string{}, resnap: opts.Resnapshot}
	for _, t := range opts.Config.Tables {
		c.reg[t.Table] = t.Registry
	}
	c.status = Status{Slot: opts.Config.Slot, Phase: "starting"}
	return c, nil
}

func (c *Connector) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// Start runs the connector until Close or a permanent error.
func (c *Connector) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		c.err = c.Run(ctx)
		c.setStatus(func(s *Status) {
			s.Phase, s.Connected = "stopped", false
			if c.err != nil && !errors.Is(c.err, context.Canceled) {
				s.LastError = c.err.Error()
			}
		})
	}()
}

// Done is closed when the connector has stopped; Err then says why.
func (c *Connector) Done() <-chan struct{} { return c.done }

// Err is the error the connector stopped with (nil while it runs, or
// after Close).
func (c *Connector) Err() error {
	select {
	case <-c.done:
		if errors.Is(c.err, context.Canceled) {
			return nil
		}
		return c.err
	default:
		return nil
	}
}

// Close stops the connector and waits for its goroutines. Nothing in
// flight is confirmed to PostgreSQL, so nothing is lost.
func (c *Connector) Close() error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	<-c.done
	return c.Err()
}

// Status returns the connector's progress.
func (c *Connector) Status() Status {
	c.mu.Lock()
	s := c.status
	c.mu.Unlock()
	s.LSN = pglogrepl.LSN(c.applied.Load()).String()
	s.Confirmed = pglogrepl.LSN(c.confirmed.Load()).String()
	end := c.serverEnd.Load()
	s.ServerLSN = pglogrepl.LSN(end).String()
	if a := c.applied.Load(); end > a {
		s.LagBytes = end - a
		if lc := c.lastCommit.Load(); lc > 0 {
			s.LagMillis = time.Since(time.UnixMicro(lc)).Milliseconds()
		}
	}
	return s
}

func (c *Connector) setStatus(fn func(*Status)) {
	c.mu.Lock()
	fn(&c.status)
	c.status.Updated = time.Now().UTC()
	c.mu.Unlock()
}

// Run follows the source until ctx ends or a permanent error; lost
// connections (a network cut, a PostgreSQL restart) are retried with
// backoff and resume from the position in the ledger.
func (c *Connector) Run(ctx context.Context) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	wait := c.opts.RetryMin
	for {
		start := time.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var p permanent
		if errors.As(err, &p) {
			c.logf("postgres connector %s: stopped: %v", c.opts.Config.Slot, err)
			return err
		}
		c.setStatus(func(s *Status) { s.Connected, s.LastError = false, err.Error(); s.Retries++ })
		c.opts.Metrics.reconnect()
		if time.Since(start) > 10*time.Second {
			wait = c.opts.RetryMin
		}
		c.logf("postgres connector %s: %v; retrying in %v", c.opts.Config.Slot, err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, c.opts.RetryMax)
	}
}

// load reads the connector's position and the live records of its
// registries from the ledger.
func (c *Connector) load(ctx context.Context) error {
	size := c.opts.Log.Size()
	if _, _, err := c.opts.Log.WaitPublished(ctx, size); err != nil {
		return fmt.Errorf("postgres connector: wait for the ledger to publish %d entries: %w", size, err)
	}
	regs := map[string]bool{}
	for _, t := range c.opts.Config.Tables {
		regs[t.Registry] = true
	}
	v, err := scanLedger(ctx, c.opts.Log.Dir(), c.opts.Keys, c.opts.Guest, scanOptions{
		registries: regs, state: c.opts.Config.StateRegistry, stateID: StateID(c.opts.Config.Slot), upTo: size,
	})
	if err != nil {
		return fmt.Errorf("postgres connector: %w", err)
	}
	c.pos, c.live = v.pos, v.live
	if c.pos != nil {
		if c.pos.Phase == PhaseStream {
			lsn, err := pglogrepl.ParseLSN(c.pos.LSN)
			if err != nil {
				return fmt.Errorf("postgres connector: position %s: lsn %q: %w", StateID(c.opts.Config.Slot), c.pos.LSN, err)
			}
			c.applied.Store(uint64(lsn))
		}
		c.setStatus(func(s *Status) { s.Phase = c.pos.Phase })
	}
	return nil
}
