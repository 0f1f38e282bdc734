package state

import (
	"context"
	"fmt"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/ledger"
)

// OpenLedger opens a site's ledger with the site's checkpoint key.
func OpenLedger(ctx context.Context, l Layout, c *charter.Charter, site string, p keyfile.Protector, opts ledger.Options) (*ledger.Log, error) {
	if _, ok := c.Site(site); !ok {
		return nil, fmt.Errorf("site %q is not in the charter", site)
	}
	key, err := keyfile.ReadEd25519(l.Key("site-checkpoint", site), p)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", site, err)
	}
	signer, _, err := ledger.NewLogSigner(c.Guest.Origin, key)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", site, err)
	}
	opts.Origin, opts.Signer = c.Guest.Origin, signer
	return ledger.Open(ctx, l.Ledger(site), opts)
}
