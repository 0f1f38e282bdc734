package site

import (
	"fmt"
)

// ledgerDamage re-reads the guest's stored right edge (the partial
// bundle and tiles the next append extends) and checks it against the
// tree: damage there would be copied into every later bundle. A read that
// raced the integrator moving the edge is tried once more before it
// counts. Damage found has the guest repair it from the other sites at
// once (guest.CheckLedger); the error says how far that got. A full
// bundle below the edge that the guest's checker found damaged and could
// not yet repair counts too.
func ledgerDamage(t *tenant) error {
	err := t.Ledger().CheckRightEdge()
	if err != nil {
		err = t.Ledger().CheckRightEdge()
	}
	if err != nil {
		t.CheckLedger()
		if d := t.LedgerDamage(); d != nil {
			err = d
		}
	} else {
		err = t.BundleDamage()
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w; if no site can repair it, stop this site and restore the entries from another with chancery repair", err)
}
