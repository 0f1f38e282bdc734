package site

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/store"
)

// tenant is one guest held by an embassy site: its verified charter, its
// mirror of the guest's ledger, its sealed blobs and the receiver that
// checks what the writer ships. It holds no guest key.
type tenant struct {
	id      string // guest id
	charter *charter.Charter
	site    string // this site's id in the guest's charter
	def     *charter.Site
	dir     string
	log     *ledger.Log
	blobs   store.Backend
	recv    *replica.Receiver
	mode    atomic.Value // Mode
	quota   int64
	peers   pintls.PeerKeys // sites of the guest's charter, by TLS key
	ops     *authenticator  // the guest's charter's hosts, for the operator API
	susp    *suspensions
	notices *noticeIndex

	lastBatch atomic.Int64 // unix nanos of the last accepted batch
}

func (t *tenant) currentMode() Mode { return t.mode.Load().(Mode) }

// GuestDir is where an embassy keeps one guest: DataDir/guests/<guest>.
func GuestDir(dataDir, guest string) string { return filepath.Join(dataDir, "guests", guest) }

// openTenant opens one guest at an embassy site.
func (s *Site) openTenant(ctx context.Context, gc GuestConfig, pass []byte) (_ *tenant, err error) {
	c, err := charter.ReadVerified(gc.Charter)
	if err != nil {
		return nil, err
	}
	id := gc.Site
	if id == "" {
		id = s.cfg.Site
	}
	def, ok := c.Site(id)
	if !ok {
		return nil, fmt.Errorf("guest %s: site %q is not in its charter", c.Guest.ID, id)
	}
	if def.Role != charter.RoleEmbassy {
		return nil, fmt.Errorf("guest %s: site %s has role %q in its charter, not embassy", c.Guest.ID, id, def.Role)
	}
	quota, err := def.QuotaBytes()
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", c.Guest.ID, err)
	}
	t := &tenant{id: c.Guest.ID, charter: c, site: id, def: def, dir: GuestDir(s.cfg.DataDir, c.Guest.ID), quota: quota}
	t.mode.Store(ModeStandby)
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	lo := s.opts.Local.Ledger
	lo.Origin, lo.Mirror, lo.Signer = c.Guest.Origin, true, nil
	lo.Logger = s.log.With("guest", t.id, "component", "ledger")
	if t.log, err = ledger.Open(ctx, filepath.Join(t.dir, "ledger"), lo); err != nil {
		return nil, fmt.Errorf("guest %s: open mirror: %w", t.id, err)
	}
	if t.blobs, err = openBackend(ctx, gc.Blobs, filepath.Join(t.dir, "blobs"), c, "guest "+t.id); err != nil {
		return nil, err
	}
	key, err := keyfile.ReadEd25519(gc.CheckpointKey, keyfile.Protector{Passphrase: pass})
	if err != nil {
		return nil, fmt.Errorf("guest %s: checkpoint key: %w", t.id, err)
	}
	cosigner, err := replica.NewReceiptCosigner(c, id, key)
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if t.peers, err = pintls.SiteKeys(c); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if t.ops, err = newHostAuthenticator(c, s.cfg.Site, s.opts.Now, s.opts.MaxNonces); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	if t.susp, err = openSuspensions(filepath.Join(t.dir, "suspension.json")); err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	t.notices = &noticeIndex{log: t.log}
	used, err := t.usage(ctx)
	if err != nil {
		return nil, fmt.Errorf("guest %s: measure what it holds: %w", t.id, err)
	}
	t.recv, err = replica.NewReceiver(replica.ReceiverOptions{
		Charter: c, Site: id, Log: t.log, Blobs: t.blobs, Cosigner: cosigner,
		Quota: quota, Used: used, Logger: s.log.With("guest", t.id),
		Suspended:  func() error { return t.suspended(s.opts.Now()) },
		Suspension: t.susp.pending,
		Accepted:   func(b *replica.Batch) { t.lastBatch.Store(s.opts.Now().UnixNano()) },
	})
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", t.id, err)
	}
	return t, nil
}

// usage is what the guest holds here: its ledger's tiles and its blobs.
// The write-ahead log is left out: its segments are preallocated (64 MiB
// each, mostly zeros) and trimmed once their entries are in the tiles,
// which Open has just rewritten; counting them would charge a guest for
// space it does not use.
func (t *tenant) usage(ctx context.Context) (int64, error) {
	var n int64
	err := filepath.WalkDir(filepath.Join(t.dir, "ledger"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "wal" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = t.blobs.List(ctx, "", func(_ string, size int64) error {
		n += size
		return nil
	})
	return n, err
}

func (t *tenant) close() error {
	var errs []error
	if t.recv != nil {
		errs = append(errs, t.recv.Close())
	}
	if t.log != nil {
		if err := t.log.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
			errs = append(errs, fmt.Errorf("guest %s: close mirror: %w", t.id, err))
		}
	}
	return errors.Join(errs...)
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
		if _, ok := pintls.PeerFromRequest(r, t.peers); !ok {
			return fmt.Errorf("only the sites of %s's charter may replicate, with their pinned TLS keys", t.id)
		}
		return nil
	}
}

// noticeIndex keeps the guest's public notices, read from the mirror as it
// grows, for the feed every site serves even in standby.
type noticeIndex struct {
	log     *ledger.Log
	mu      sync.Mutex
	scanned uint64
	list    []Notice
}

// Notice is one public notice in the feed.
type Notice struct {
	Index   uint64    `json:"ledger_index"`
	Time    time.Time `json:"time"`
	Epoch   uint64    `json:"epoch"`
	Payload []byte    `json:"payload"` // as the writer recorded it (signed notices are JSON)
}

func (n *noticeIndex) all(ctx context.Context) ([]Notice, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, cp := n.log.Checkpoint()
	if cp.Size > n.scanned {
		err := ledger.Scan(ctx, ledger.DirFetcher(n.log.Dir()), n.scanned, cp.Size, func(idx uint64, raw []byte) error {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
			if e.Type == ledger.TypeNotice {
				n.list = append(n.list, Notice{Index: idx, Time: e.Time, Epoch: e.Epoch, Payload: append([]byte(nil), e.Payload...)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		n.scanned = cp.Size
	}
	return n.list, nil
}
