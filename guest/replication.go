package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// suspensionsSeen remembers which host notices the writer has recorded.
type suspensionsSeen struct {
	mu   sync.Mutex
	done map[string]bool
}

// recordSuspension checks a host's notice of suspension reported by a site
// and records it in the guest's ledger, once. It runs on the writer's
// shippers.
func (t *Guest) recordSuspension(ctx context.Context, site string, raw []byte) error {
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
	idx, err := l.Append(ctx, ledger.Entry{Type: ledger.TypeNotice, Epoch: max(l.Epoch(), 1), Time: t.opts.Now(), Payload: payload})
	if err != nil {
		return fmt.Errorf("record notice of suspension by host %s: %w", sp.Host, err)
	}
	seen.done[d] = true
	t.logger.Warn("recorded a host's notice of suspension", "guest", t.id, "embassy", site, "host", sp.Host, "effective_at", sp.EffectiveAt, "ledger_index", idx)
	return nil
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
