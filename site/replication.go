package site

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
)

// readTLSKey reads the site's pinned TLS key, if the config names one.
func (s *Site) readTLSKey(pass []byte) (ed25519.PrivateKey, error) {
	if s.cfg.TLSKey == "" {
		return nil, nil
	}
	k, err := keyfile.ReadEd25519(s.cfg.TLSKey, keyfile.Protector{Passphrase: pass})
	if err != nil {
		return nil, fmt.Errorf("site %s: tls_key: %w", s.cfg.Site, err)
	}
	return k, nil
}

// pinnedServerTLS serves with a certificate made from the site's TLS key
// and admits as peers the sites of every charter this site holds.
func (s *Site) pinnedServerTLS() (*tls.Config, error) {
	var charters []*charter.Charter
	if s.home != nil {
		charters = append(charters, s.home.local.Charter)
	}
	for _, id := range s.order {
		charters = append(charters, s.tenants[id].charter)
	}
	var keys []pintls.PeerKeys
	for _, c := range charters {
		k, err := pintls.SiteKeys(c)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	any := func(pub ed25519.PublicKey) (string, bool) {
		for _, k := range keys {
			if p, ok := k(pub); ok {
				return p, true
			}
		}
		return "", false
	}
	return pintls.ServerConfig(s.tlsKey, s.cfg.Site, any)
}

// openReplication builds the home's replicator: a shipper to every other
// site of the charter, at the URL the charter gives (or Config.Peers),
// over mutual TLS pinned to the charter's keys.
func (s *Site) openReplication(ctx context.Context, pass []byte) error {
	if s.cfg.Replication.Disabled {
		s.log.Warn("replication disabled by configuration: no site receives this guest's writes")
		return nil
	}
	l := s.home.local
	var targets []replica.Target
	revoked := s.homeWriters.ep.Revoked()
	for _, def := range l.Charter.Sites {
		if def.ID == l.Site || contains(revoked, def.ID) {
			continue
		}
		u := def.URL
		if p, ok := s.cfg.Peers[def.ID]; ok {
			u = p
		}
		var client *http.Client
		switch {
		case strings.HasPrefix(u, "https://"):
			if s.tlsKey == nil {
				return fmt.Errorf("site %s: shipping to site %s over https needs tls_key, to pin both ends to the charter", s.cfg.Site, def.ID)
			}
			pub, err := def.TLSPublicKey()
			if err != nil {
				return fmt.Errorf("site %s: tls key of site %s: %w", s.cfg.Site, def.ID, err)
			}
			cfg, err := pintls.ClientConfig(s.tlsKey, pub)
			if err != nil {
				return err
			}
			client = &http.Client{Transport: pintls.Transport(cfg)}
		case strings.HasPrefix(u, "http://") && s.cfg.InsecureLoopback:
			client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		default:
			return fmt.Errorf("site %s: site %s at %q: want https:// (or http:// with insecure_loopback)", s.cfg.Site, def.ID, u)
		}
		targets = append(targets, replica.Target{Site: def.ID, Sink: &replica.Remote{Base: u, Guest: l.Charter.Guest.ID, Client: client}})
	}
	rc := s.cfg.Replication
	repl, err := replica.NewReplicator(replica.ReplicatorOptions{
		Charter: l.Charter, Self: l.Site, Log: l.Log, Targets: targets, Writers: s.homeWriters,
		Source: replica.LocalSource{Log: l.Log, Blobs: l.Registries.Blobs, Backend: l.Blobs},
		Shipper: replica.ShipperOptions{MaxBatchEntries: rc.MaxBatchEntries, BlobParallel: rc.BlobParallel,
			BytesPerSecond: rc.BytesPerSecond, OnSuspension: s.recordSuspension, OnState: s.fenceIfNewer,
			OuterKey: outerKeyFunc(l.Charter, func(site string) (*seal.SiteKey, bool) { return s.outer.get(site) })},
		Logger: s.log.With("component", "replica"),
	})
	if err != nil {
		return fmt.Errorf("site %s: %w", s.cfg.Site, err)
	}
	s.repl = repl
	return nil
}

// suspensionsSeen remembers which host notices the home has recorded.
type suspensionsSeen struct {
	mu   sync.Mutex
	done map[string]bool
}

// recordSuspension checks a host's notice of suspension reported by a site
// and records it in the guest's ledger, once.
func (s *Site) recordSuspension(ctx context.Context, site string, raw []byte) error {
	l := s.home.local
	sp, err := VerifySuspension(l.Charter, raw)
	if err != nil {
		return fmt.Errorf("site %s: %w", site, err)
	}
	if sp.Site != site {
		return fmt.Errorf("site %s reports a notice for site %s", site, sp.Site)
	}
	d := sp.Digest()
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	if s.seen.done == nil {
		s.seen.done = map[string]bool{}
		// After a restart, the ledger says what was recorded before.
		_, cp := l.Log.Checkpoint()
		err := ledger.Scan(ctx, ledger.DirFetcher(l.Log.Dir()), 0, cp.Size, func(_ uint64, e []byte) error {
			de, err := ledger.DecodeEntry(e)
			if err != nil || de.Type != ledger.TypeNotice {
				return err
			}
			var sn SuspensionNotice
			if json.Unmarshal(de.Payload, &sn) == nil && sn.Kind == NoticeKindSuspension {
				s.seen.done[sn.Digest] = true
			}
			return nil
		})
		if err != nil {
			s.seen.done = nil
			return err
		}
	}
	if s.seen.done[d] {
		return nil
	}
	payload, err := json.Marshal(SuspensionNotice{Kind: NoticeKindSuspension, Digest: d, Suspension: sp})
	if err != nil {
		return err
	}
	idx, err := l.Log.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: max(l.Log.Epoch(), 1), Time: s.opts.Now(), Payload: payload})
	if err != nil {
		return fmt.Errorf("record notice of suspension by host %s: %w", sp.Host, err)
	}
	s.seen.done[d] = true
	s.log.Warn("recorded a host's notice of suspension", "embassy", site, "host", sp.Host, "effective_at", sp.EffectiveAt, "ledger_index", idx)
	return nil
}

func (s *Site) replicationStatus(w http.ResponseWriter, r *http.Request) {
	if s.repl == nil {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: "replication is disabled at this site"})
		return
	}
	l := s.home.local
	writeJSON(w, http.StatusOK, siteapi.ReplicationStatus{Guest: l.Charter.Guest.ID, Size: l.Log.Size(), Sites: s.repl.Tracker().Lags()})
}

// fenceIfNewer fences the home when a site reports a newer epoch than the
// home's own: another site was activated while the home was cut off. The
// home stops accepting writes before anything else; what it wrote since the
// last point any site received goes to reconciliation (docs/continuity.md).
func (s *Site) fenceIfNewer(site string, st *replica.State) {
	l := s.home.local
	if max(st.Epoch, st.Fence) <= max(l.Log.Epoch(), 1) || s.home.currentMode() == siteapi.ModeFenced {
		return
	}
	s.home.mode.Store(siteapi.ModeFenced)
	s.log.Error("FENCED: a site reports a newer epoch; this home accepts no more writes", "reported_by", site,
		"site_epoch", st.Epoch, "home_epoch", l.Log.Epoch(), "site_size", st.Size, "home_size", l.Log.Size())
}

// outerKeyFunc is replica.ShipperOptions.OuterKey over a site's key holder:
// the home has no outer layer; an embassy whose key is not at hand (not
// handed over at unseal, or revoked) gets no blobs.
func outerKeyFunc(c *charter.Charter, get func(string) (*seal.SiteKey, bool)) func(string) (*seal.SiteKey, error) {
	return func(site string) (*seal.SiteKey, error) {
		def, ok := c.Site(site)
		if !ok {
			return nil, fmt.Errorf("site %s is not in the charter", site)
		}
		if def.Role == charter.RoleHome {
			return nil, nil
		}
		k, ok := get(site)
		if !ok || k == nil {
			return nil, fmt.Errorf("the outer key of site %s is not at hand here (revoked, or not handed over at unseal)", site)
		}
		return k, nil
	}
}
