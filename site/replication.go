package site

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/ledger"
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

// suspensionsSeen remembers which host notices the writer has recorded.
type suspensionsSeen struct {
	mu   sync.Mutex
	done map[string]bool
}

// recordSuspension checks a host's notice of suspension reported by a site
// and records it in the guest's ledger, once. It runs on the writer's
// shippers.
func (t *tenant) recordSuspension(ctx context.Context, site string, raw []byte) error {
	l := t.ledger()
	sp, err := VerifySuspension(t.charter, raw)
	if err != nil {
		return fmt.Errorf("site %s: %w", site, err)
	}
	if sp.Site != site {
		return fmt.Errorf("site %s reports a notice for site %s", site, sp.Site)
	}
	d := sp.Digest()
	seen := &t.suspSeen
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if seen.done == nil {
		seen.done = map[string]bool{}
		// After a restart, the ledger says what was recorded before.
		_, cp := l.Checkpoint()
		err := ledger.Scan(ctx, ledger.DirFetcher(l.Dir()), 0, cp.Size, func(_ uint64, e []byte) error {
			de, err := ledger.DecodeEntry(e)
			if err != nil || de.Type != ledger.TypeNotice {
				return err
			}
			var sn SuspensionNotice
			if json.Unmarshal(de.Payload, &sn) == nil && sn.Kind == NoticeKindSuspension {
				seen.done[sn.Digest] = true
			}
			return nil
		})
		if err != nil {
			seen.done = nil
			return err
		}
	}
	if seen.done[d] {
		return nil
	}
	payload, err := json.Marshal(SuspensionNotice{Kind: NoticeKindSuspension, Digest: d, Suspension: sp})
	if err != nil {
		return err
	}
	idx, err := l.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: max(l.Epoch(), 1), Time: t.s.opts.Now(), Payload: payload})
	if err != nil {
		return fmt.Errorf("record notice of suspension by host %s: %w", sp.Host, err)
	}
	seen.done[d] = true
	t.s.log.Warn("recorded a host's notice of suspension", "guest", t.id, "embassy", site, "host", sp.Host, "effective_at", sp.EffectiveAt, "ledger_index", idx)
	return nil
}

func (s *Site) replicationStatus(w http.ResponseWriter, r *http.Request) {
	repl := s.Replicator()
	if repl == nil {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: "replication is disabled at this site, or it does not write now"})
		return
	}
	t := s.home
	writeJSON(w, http.StatusOK, siteapi.ReplicationStatus{Guest: t.id, Size: t.ledger().Size(), Sites: repl.Tracker().Lags()})
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
