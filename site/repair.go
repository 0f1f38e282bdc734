package site

import (
	"fmt"
)

// ledgerDamage re-reads the guest's stored right edge (the partial
// bundle and tiles the next append extends) and checks it against the
// tree: damage there would be copied into every later bundle. A read that
// raced the integrator moving the edge is tried once more before it
// counts. Damage found has the guest repair it from the other sites at
// once (guest.CheckLedger); the error says how far that got.
func ledgerDamage(t *tenant) error {
	err := t.Ledger().CheckRightEdge()
	if err != nil {
		err = t.Ledger().CheckRightEdge()
	}
	if err == nil {
		return nil
	}
	t.CheckLedger()
	if d := t.LedgerDamage(); d != nil {
		err = d
	}
	return fmt.Errorf("%w; if no site can repair it, stop this site and restore the entries from another with chancery repair", err)
}
