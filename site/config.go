package site

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/store/location"
)

// Config is a site's configuration file (YAML, parsed strictly: an unknown
// or misspelt field is an error, because a typo in a security setting must
// not silently fall back to a default).
//
// A home site names its StateDir. An embassy site names its DataDir and the
// Guests it holds instead: it is multi-tenant, each guest with its own
// charter, keys, directory and blob backend.
type Config struct {
	// StateDir is the home's state directory D (charter.yaml, keys/, sites/).
	StateDir string `yaml:"state_dir"`
	// Site is this node's site id in the charter (for an embassy, the
	// default for every guest, and the name its operator signs requests to).
	Site string `yaml:"site"`
	// DataDir is an embassy's data directory: each guest's mirror lives in
	// DataDir/guests/<guest id>/ (ledger/, blobs/ unless configured, state).
	DataDir string `yaml:"data_dir"`
	// Guests are the guest states an embassy site holds.
	Guests []GuestConfig `yaml:"guests"`
	// TLSKey is the site's sealed Ed25519 TLS key file (keys/site-tls-<id>.key):
	// the site serves TLS with a certificate made from it in memory, pinned
	// by the charter's tls_key, and presents it as a client to other sites.
	TLSKey string `yaml:"tls_key"`
	// Peers overrides, per site id, the URL the charter gives for a site
	// (a home ships to every other site of its charter).
	Peers map[string]string `yaml:"peers"`
	// Replication tunes how the home ships to the sites.
	Replication ReplicationConfig `yaml:"replication"`
	// Standby starts a home as a sealed mirror of its own guest: after its
	// data was lost and rebuilt, it follows the active site until a
	// failback order names it the writer again (docs/continuity.md).
	Standby bool `yaml:"standby"`
	// Listen is the TCP address to serve on, host:port.
	Listen string `yaml:"listen"`
	// TLS is the certificate and key to serve with. Required unless
	// InsecureLoopback is set.
	TLS *TLSConfig `yaml:"tls"`
	// InsecureLoopback allows plain HTTP, and only on a loopback address:
	// for a node behind a local TLS-terminating proxy, and for tests.
	InsecureLoopback bool `yaml:"insecure_loopback"`
	// PassphraseFile holds the passphrase that opens the site's key files
	// (checkpoint key, root key). Empty means $CHANCERY_PASSPHRASE.
	PassphraseFile string `yaml:"passphrase_file"`
	// Blobs is where attachments are stored.
	Blobs location.Config `yaml:"blobs"`
	// Limits bound what one request may carry.
	Limits Limits `yaml:"limits"`
	// Scrub checks the guests' blob stores against their ledgers on a
	// schedule (audit.Scrub): off unless Every is set.
	Scrub ScrubConfig `yaml:"scrub"`
	// Postgres is where a home finds the database its guest's PostgreSQL
	// connector follows (docs/postgres.md); an embassy sets it per guest.
	Postgres *PostgresConfig `yaml:"postgres"`
}

// PostgresConfig is where this site finds the connection string of the
// database the guest's PostgreSQL connector follows while this site is
// the guest's writer. What the connector follows is the charter's signed
// services.postgres; where the database is and the password are the
// site's secret, so they are here, read from a file only the site's user
// may read or from an environment variable, and never logged.
type PostgresConfig struct {
	// ConnFile holds the connection string (mode 0600 or stricter).
	ConnFile string `yaml:"conn_file"`
	// ConnEnv names the environment variable holding it.
	ConnEnv string `yaml:"conn_env"`
}

// ScrubConfig schedules the blob scrub.
type ScrubConfig struct {
	// Every is the pause between two scrubs of a guest's store (a Go
	// duration, e.g. 24h); zero turns the scrub off.
	Every Duration `yaml:"every"`
	// Rate bounds the bytes read a second, so the scrub leaves the disk
	// to the site (0: 32 MiB/s).
	Rate int64 `yaml:"rate"`
}

// GuestConfig is one guest held by an embassy site.
type GuestConfig struct {
	// Charter is the guest's signed charter file.
	Charter string `yaml:"charter"`
	// Site is this site's id in that charter (default: Config.Site).
	Site string `yaml:"site"`
	// CheckpointKey is the sealed file of the site's checkpoint key for
	// this guest: it signs the site's receipts.
	CheckpointKey string `yaml:"checkpoint_key"`
	// Blobs is where the guest's sealed attachments are kept (default fs
	// under the guest's directory; for s3 give each guest its own prefix).
	Blobs location.Config `yaml:"blobs"`
	// Custody is the guest's custody package (custody.json: the root key
	// split among the custodians, every share sealed): what an unseal
	// session checks the custodians' shares against. Without it the site
	// can be activated but not unsealed.
	Custody string `yaml:"custody"`
	// Postgres is where this site finds the database the guest's
	// PostgreSQL connector follows once this site is the guest's writer
	// (after an activation); without it the connector does not run here.
	Postgres *PostgresConfig `yaml:"postgres"`
}

// ReplicationConfig tunes the home's shippers. Zero means the default.
type ReplicationConfig struct {
	// Disabled stops the home from shipping (a home with no reachable site).
	Disabled bool `yaml:"disabled"`
	// BytesPerSecond limits the bandwidth toward each site (0: none).
	BytesPerSecond int64 `yaml:"bytes_per_second"`
	// MaxBatchEntries bounds one batch (default 16384).
	MaxBatchEntries int `yaml:"max_batch_entries"`
	// BlobParallel is how many packs upload at once per site (default 4).
	BlobParallel int `yaml:"blob_parallel"`
	// QuorumTimeout bounds how long a write to a quorum-mode registry
	// waits for the sites' receipts before it is answered 503, durable at
	// the home but not acknowledged (default 30s).
	QuorumTimeout Duration `yaml:"quorum_timeout"`
}

// Duration is a time.Duration written as "30s", "2m".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 30s or 2m", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// TLSConfig names PEM files.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Limits bound request sizes, how slowly a body may arrive, and how many
// connections the site holds. Zero means the default.
type Limits struct {
	// MaxRequestBytes bounds a JSON request body (default 1 MiB; a record
	// must fit a ledger entry anyway).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxBlobBytes bounds one uploaded attachment (default 4 GiB).
	MaxBlobBytes int64 `yaml:"max_blob_bytes"`
	// MaxConns bounds the connections the site holds open at once on its
	// listener; more wait in the kernel's backlog, costing no descriptor
	// (default 1024, or half the process's descriptor limit if lower).
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerIP bounds the connections from one peer address; more
	// are closed as soon as they are accepted (default MaxConns/4).
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// BodyTimeout is how long a request body may go without a byte, and
	// the grace a body has before MinBodyRate applies (default 30s).
	BodyTimeout Duration `yaml:"body_timeout"`
	// MinBodyRate is the slowest a request body may arrive on average
	// after BodyTimeout, in bytes per second (default 16 KiB/s).
	MinBodyRate int64 `yaml:"min_body_rate"`
}

// Defaults for Limits.
const (
	DefaultMaxRequestBytes = 1 << 20
	DefaultMaxBlobBytes    = 4 << 30
	DefaultMaxConns        = 1024
	DefaultBodyTimeout     = 30 * time.Second
	DefaultMinBodyRate     = 16 << 10
)

// maxConfigSize bounds the config file: it is a few hundred bytes.
const maxConfigSize = 1 << 20

// LoadConfig reads and checks a site configuration file. Relative paths in
// it are resolved against the file's directory, so a config works the same
// from whatever directory the daemon is started in.
func LoadConfig(path string) (*Config, error) {
	return LoadConfigWith(path, nil)
}

// LoadConfigWith is LoadConfig with command-line overrides applied before
// the configuration is checked, so that a flag can make valid what the
// file alone would not be (serve --insecure-loopback with http:// peers).
func LoadConfigWith(path string, override func(*Config)) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("site config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("site config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("site config %s: larger than %d bytes", path, maxConfigSize)
	}
	c, err := parseConfig(data, override)
	if err != nil {
		return nil, fmt.Errorf("site config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("site config %s: %w", path, err)
	}
	c.resolve(abs)
	return c, nil
}

// ParseConfig parses and checks a configuration. Paths are left as written.
func ParseConfig(data []byte) (*Config, error) { return parseConfig(data, nil) }

func parseConfig(data []byte, override func(*Config)) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, err
	}
	// A second document would be ignored by Decode: refuse it, since it
	// probably holds settings the operator believes are in force.
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if override != nil {
		override(&c)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// FieldError names the configuration field that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

// Validate checks the configuration without touching the disk.
func (c *Config) Validate() error {
	if c.Scrub.Every.Duration < 0 {
		return fieldErr("scrub.every", "must not be negative (0 turns the scrub off)")
	}
	if c.Scrub.Rate < 0 {
		return fieldErr("scrub.rate", "must not be negative (0 is 32 MiB/s)")
	}
	if len(c.Guests) > 0 {
		if c.StateDir != "" {
			return fieldErr("state_dir", "given with guests: a home names state_dir, an embassy data_dir and guests")
		}
		if c.DataDir == "" {
			return fieldErr("data_dir", "required for an embassy site")
		}
		if c.Blobs.Backend != "" || c.Blobs.Dir != "" || c.Blobs.S3 != nil {
			return fieldErr("blobs", "an embassy configures blobs per guest (guests[i].blobs)")
		}
		for i, g := range c.Guests {
			f := fmt.Sprintf("guests[%d]", i)
			if g.Charter == "" {
				return fieldErr(f+".charter", "required")
			}
			if g.CheckpointKey == "" {
				return fieldErr(f+".checkpoint_key", "required: it signs the site's receipts")
			}
			if err := validateBlobs(f+".blobs", g.Blobs); err != nil {
				return err
			}
			if err := g.Postgres.validate(f + ".postgres"); err != nil {
				return err
			}
		}
		if c.Postgres != nil {
			return fieldErr("postgres", "an embassy configures the connector's database per guest (guests[i].postgres)")
		}
	} else {
		if c.StateDir == "" {
			return fieldErr("state_dir", "required (or data_dir and guests for an embassy)")
		}
		if c.DataDir != "" {
			return fieldErr("data_dir", "given without guests")
		}
		if err := c.Postgres.validate("postgres"); err != nil {
			return err
		}
	}
	if c.Site == "" {
		return fieldErr("site", "required")
	}
	if c.Listen == "" {
		return fieldErr("listen", "required")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fieldErr("listen", "%v", err)
	}
	switch {
	case c.InsecureLoopback && (c.TLS != nil || c.TLSKey != ""):
		return fieldErr("insecure_loopback", "set together with tls: choose one")
	case c.TLS != nil && c.TLSKey != "":
		return fieldErr("tls_key", "set together with tls: choose the pinned key or PEM files")
	case c.InsecureLoopback && !isLoopback(host):
		// Plain HTTP would carry signed requests and record contents in
		// clear over a real network: only the local host may see them.
		return fieldErr("insecure_loopback", "plain HTTP is allowed only on a loopback address, not %q", host)
	case !c.InsecureLoopback && c.TLS == nil && c.TLSKey == "":
		return fieldErr("tls", "required: tls_key (pinned) or tls cert and key (or insecure_loopback: true on a loopback address)")
	case c.TLS != nil && (c.TLS.Cert == "" || c.TLS.Key == ""):
		return fieldErr("tls", "both cert and key are required")
	}
	if err := validateBlobs("blobs", c.Blobs); err != nil {
		return err
	}
	for id, u := range c.Peers {
		if !strings.HasPrefix(u, "https://") && !(c.InsecureLoopback && strings.HasPrefix(u, "http://")) {
			return fieldErr("peers."+id, "%q: want an https:// URL (http:// only with insecure_loopback)", u)
		}
	}
	if c.Replication.BytesPerSecond < 0 || c.Replication.MaxBatchEntries < 0 || c.Replication.BlobParallel < 0 || c.Replication.QuorumTimeout.Duration < 0 {
		return fieldErr("replication", "negative value")
	}
	if c.Limits.MaxRequestBytes < 0 {
		return fieldErr("limits.max_request_bytes", "negative")
	}
	if c.Limits.MaxBlobBytes < 0 {
		return fieldErr("limits.max_blob_bytes", "negative")
	}
	if c.Limits.MaxConns < 0 {
		return fieldErr("limits.max_conns", "negative")
	}
	if c.Limits.MaxConnsPerIP < 0 {
		return fieldErr("limits.max_conns_per_ip", "negative")
	}
	if c.Limits.BodyTimeout.Duration < 0 {
		return fieldErr("limits.body_timeout", "negative")
	}
	if c.Limits.MinBodyRate < 0 {
		return fieldErr("limits.min_body_rate", "negative")
	}
	return nil
}

func validateBlobs(field string, bc location.Config) error {
	switch bc.Backend {
	case "", location.BackendFS:
		if bc.S3 != nil {
			return fieldErr(field+".s3", "given but blobs.backend is %q", location.BackendFS)
		}
	case location.BackendS3:
		s := bc.S3
		if s == nil {
			return fieldErr(field+".s3", "required for backend s3")
		}
		if bc.Dir != "" {
			return fieldErr(field+".dir", "given but blobs.backend is s3")
		}
		for _, f := range []struct{ name, v string }{{"endpoint", s.Endpoint}, {"bucket", s.Bucket}, {"access_key_file", s.AccessKeyFile}, {"secret_key_file", s.SecretKeyFile}} {
			if f.v == "" {
				return fieldErr(field+".s3."+f.name, "required")
			}
		}
		if s.ObjectLock != "" && s.ObjectLock != "compliance" && s.ObjectLock != "governance" {
			return fieldErr(field+".s3.object_lock", "%q: want compliance, governance or nothing", s.ObjectLock)
		}
		if strings.Contains(s.Endpoint, "://") {
			return fieldErr(field+".s3.endpoint", "host:port without a scheme (use insecure: true for plain HTTP)")
		}
	default:
		return fieldErr(field+".backend", "%q: want fs or s3", bc.Backend)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.DataDir)
	abs(&c.TLSKey)
	abs(&c.PassphraseFile)
	for i := range c.Guests {
		g := &c.Guests[i]
		abs(&g.Charter)
		abs(&g.CheckpointKey)
		abs(&g.Custody)
		abs(&g.Blobs.Dir)
		if g.Postgres != nil {
			abs(&g.Postgres.ConnFile)
		}
		if g.Blobs.S3 != nil {
			abs(&g.Blobs.S3.AccessKeyFile)
			abs(&g.Blobs.S3.SecretKeyFile)
		}
	}
	abs(&c.Blobs.Dir)
	if c.Postgres != nil {
		abs(&c.Postgres.ConnFile)
	}
	if c.TLS != nil {
		abs(&c.TLS.Cert)
		abs(&c.TLS.Key)
	}
	if c.Blobs.S3 != nil {
		abs(&c.Blobs.S3.AccessKeyFile)
		abs(&c.Blobs.S3.SecretKeyFile)
	}
}

func (c *Config) limits() Limits {
	l := c.Limits
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if l.MaxBlobBytes == 0 {
		l.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(2*l.MaxConns) {
			// The other half is for the ledger, the blobs and the peers:
			// a site out of descriptors cannot even accept to refuse.
			l.MaxConns = max(int(rl.Cur/2), 1)
		}
	}
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = max(l.MaxConns/4, 1)
	}
	if l.BodyTimeout.Duration == 0 {
		l.BodyTimeout.Duration = DefaultBodyTimeout
	}
	if l.MinBodyRate == 0 {
		l.MinBodyRate = DefaultMinBodyRate
	}
	return l
}

// BlobDir is the fs backend's directory.
func (c *Config) BlobDir() string {
	if c.Blobs.Dir != "" {
		return c.Blobs.Dir
	}
	return BlobDir(state.Layout{Dir: c.StateDir}, c.Site)
}

// BlobDir is the default blob directory of a site: D/sites/<site>/blobs,
// beside its ledger.
func BlobDir(l state.Layout, site string) string { return guest.BlobDir(l, site) }
