package seal

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
)

// DefaultSealLimit is how many values one key seals before it refuses:
// 2^31. Every seal draws a random 96-bit GCM nonce, and the chance that two
// of q nonces collide — which would expose the XOR of two plaintexts and
// the key's authentication subkey — is about q²/2^97: 2^-35 at 2^31,
// where 2^32 (NIST SP 800-38D's ceiling) would give 2^-33.
const DefaultSealLimit uint64 = 1 << 31

// ErrNonceBudget means a key has sealed DefaultSealLimit values (or the
// limit set with SetSealLimit) and seals no more: rotate. For a registry,
// a rotate-keys order moves new seals to a fresh generation; a site key
// is replaced by a new one and the site's copy re-sealed.
var ErrNonceBudget = errors.New("seal: key's nonce budget is spent: rotate it")

// sealBudget counts the seals made under one key.
type sealBudget struct{ used atomic.Uint64 }

// take reserves one seal, or fails with ErrNonceBudget at limit (0 means
// DefaultSealLimit). A refused seal is not counted.
func (b *sealBudget) take(limit uint64) error {
	if limit == 0 || limit > DefaultSealLimit {
		limit = DefaultSealLimit
	}
	if b.used.Add(1) > limit {
		b.used.Add(^uint64(0))
		return ErrNonceBudget
	}
	return nil
}

// SetSealLimit lowers how many values each data or blob key of the
// keyring seals before refusing with ErrNonceBudget; values above
// DefaultSealLimit, and 0, mean DefaultSealLimit. Tests set a small limit.
func (k *Keyring) SetSealLimit(n uint64) { k.sealLimit.Store(n) }

// CountSealed adds to the seal count of the generation that sealed names
// (a record sealed by Seal): a site that restarts calls it for every
// record it replays from the ledger, so that the budget counts what the
// generation sealed before, not just since start. Anything that is not a
// sealed record is ignored.
func (rk *RegistryKeys) CountSealed(sealed []byte) {
	if len(sealed) < recordHeaderLen || sealed[0] != formatRecord {
		return
	}
	gen := binary.BigEndian.Uint32(sealed[1:5])
	if gen == 0 || gen > rk.gen.Load() {
		return
	}
	rk.counts(gen).data.used.Add(1)
}

// SealCount is how many records and blob chunks generation gen of the
// registry has sealed, as far as this keyring knows (its own seals plus
// those reported with CountSealed).
func (rk *RegistryKeys) SealCount(gen uint32) (records, chunks uint64) {
	c := rk.counts(gen)
	return c.data.used.Load(), c.blob.used.Load()
}

// genCounts are the seal budgets of one generation's two keys. They live
// apart from genKeys so that counting needs no derived key.
type genCounts struct{ data, blob sealBudget }

func (rk *RegistryKeys) counts(gen uint32) *genCounts {
	if c, ok := rk.sealed.Load(gen); ok {
		return c.(*genCounts)
	}
	c, _ := rk.sealed.LoadOrStore(gen, &genCounts{})
	return c.(*genCounts)
}

// SetSealLimit lowers how many values the site key seals before refusing
// with ErrNonceBudget (0 or above DefaultSealLimit: DefaultSealLimit).
func (sk *SiteKey) SetSealLimit(n uint64) { sk.limit.Store(n) }

// CountSealed adds n to the site key's seal count: a site that opens its
// key counts the chunks its copy already holds under it (each was one
// seal, at this site or at the writer that shipped it), so that Remaining
// reflects the key's life, not just this process's.
func (sk *SiteKey) CountSealed(n uint64) { sk.seals.used.Add(n) }
