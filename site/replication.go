package site

import (
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/pintls"
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
		charters = append(charters, s.tenants[id].Charter())
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

func (s *Site) replicationStatus(w http.ResponseWriter, r *http.Request) {
	repl := s.Replicator()
	if repl == nil {
		writeJSON(w, http.StatusNotFound, siteapi.ErrorBody{Error: "replication is disabled at this site, or it does not write now"})
		return
	}
	t := s.home
	writeJSON(w, http.StatusOK, siteapi.ReplicationStatus{Guest: t.ID(), Size: t.Ledger().Size(), Sites: repl.Tracker().Lags()})
}
