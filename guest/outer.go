package guest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// Site outer keys (docs/threat-model.md § Site outer layer). Each embassy
// site's copy of the attachments is sealed inside a random key of its own,
// so that revoking the site and destroying every wrapped copy of that key
// shreds its copy for ever, R notwithstanding. The wrapped keys (under a
// KEK derived from R and the site id) are kept in two places the site
// never sees: the home's key store, D/keys/site-outer-<site>.wrapped, and
// the guest's escrow, D/escrow/site-outer-<site>.wrapped, which officials
// hand to a site with the custodians' shares when it is activated.

// OuterKeyFile is the name of a site's wrapped outer key file.
func OuterKeyFile(site string) string { return "site-outer-" + site + ".wrapped" }

// EscrowDir is the guest's escrow of wrapped site keys in a state directory.
func EscrowDir(l state.Layout) string { return filepath.Join(l.Dir, "escrow") }

// outerKeys holds unwrapped site outer keys in memory.
type outerKeys struct {
	mu   sync.Mutex
	keys map[string]*seal.SiteKey
}

func (o *outerKeys) get(site string) (*seal.SiteKey, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, ok := o.keys[site]
	return k, ok
}

func (o *outerKeys) set(site string, k *seal.SiteKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys == nil {
		o.keys = map[string]*seal.SiteKey{}
	}
	if old := o.keys[site]; old != nil && old != k {
		old.Wipe()
	}
	o.keys[site] = k
}

// drop wipes a site's key and forgets it.
func (o *outerKeys) drop(site string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k := o.keys[site]; k != nil {
		k.Wipe()
	}
	delete(o.keys, site)
}

func (o *outerKeys) wipe() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range o.keys {
		k.Wipe()
	}
	o.keys = nil
}

// loadHomeOuterKeys reads (and, the first time, makes) the outer key of
// every embassy site of the charter at the home, skipping revoked ones.
// A site whose key files were destroyed by a revocation gets no new key.
func loadHomeOuterKeys(c *charter.Charter, l state.Layout, keys *seal.Keyring, revoked []string) (*outerKeys, error) {
	o := &outerKeys{}
	for _, s := range c.Sites {
		if s.Role != charter.RoleEmbassy || contains(revoked, s.ID) {
			continue
		}
		path := filepath.Join(l.Keys(), OuterKeyFile(s.ID))
		wrapped, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			sk, err := seal.NewSiteKey()
			if err != nil {
				return nil, err
			}
			if wrapped, err = keys.WrapSiteKey(s.ID, sk); err != nil {
				return nil, err
			}
			if err := fsutil.WriteNew(path, wrapped, 0o600); err != nil {
				return nil, fmt.Errorf("outer key of site %s: %w", s.ID, err)
			}
			// A new key has sealed nothing (homerotate.go counts from here).
			if err := writeSealCount(l, s.ID, sk.ID(), 0, 0); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(EscrowDir(l), 0o700); err != nil {
				return nil, err
			}
			if err := fsutil.WriteNew(filepath.Join(EscrowDir(l), OuterKeyFile(s.ID)), wrapped, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("escrow of site %s's outer key: %w", s.ID, err)
			}
			o.set(s.ID, sk)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("outer key of site %s: %w", s.ID, err)
		}
		sk, err := keys.UnwrapSiteKey(s.ID, wrapped)
		if err != nil {
			return nil, fmt.Errorf("outer key of site %s (%s): %w", s.ID, path, err)
		}
		o.set(s.ID, sk)
	}
	return o, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// shredOuterKey destroys every wrapped copy of a site's outer key that
// this state directory holds — the home's key store and the escrow — and
// records the shredding in the ledger with the key's fingerprint.
func shredOuterKey(ctx context.Context, l state.Layout, guest, site string, fingerprint [32]byte, order []byte, log *ledger.Log, epoch uint64, now func() time.Time) error {
	if err := destroyOuterKeyCopies(l, site); err != nil {
		return err
	}
	return recordShred(ctx, guest, site, fingerprint, order, log, epoch, now)
}

// destroyOuterKeyCopies overwrites and removes the wrapped copies of a
// site's outer key in a state directory: the key store's and the escrow's.
func destroyOuterKeyCopies(l state.Layout, site string) error {
	var errs []error
	for _, p := range []string{filepath.Join(l.Keys(), OuterKeyFile(site)), filepath.Join(EscrowDir(l), OuterKeyFile(site))} {
		if err := overwriteAndRemove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recordShred appends the key event that says a site's outer key was
// destroyed here, under which order.
func recordShred(ctx context.Context, guest, site string, fingerprint [32]byte, order []byte, log *ledger.Log, epoch uint64, now func() time.Time) error {
	ev := seal.KeyEvent{Kind: seal.KeySiteShred, Guest: guest, Site: site, KeyID: fingerprint, Order: sha256.Sum256(order)}
	p, err := ev.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = log.Append(ctx, ledger.Entry{Type: ledger.TypeKeyEvent, Epoch: epoch, Time: now(), Payload: p})
	return err
}

// overwriteAndRemove zeroes a key file in place, syncs, then removes it:
// on a plain file system that keeps the old bytes from lingering in the
// file's blocks (a copy-on-write or journaling store may still hold them;
// the threat model says so).
func overwriteAndRemove(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, fi.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("shred %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
