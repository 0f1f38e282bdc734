package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/location"
)

// Local is one guest's state opened in this process with its keys: the
// verified charter, the site's ledger, the keyring unwrapped from the root
// key, the blob store and the registries over them. It is what a home site
// serves, and what `chancery import` writes to without going through HTTP.
type Local struct {
	Layout     state.Layout
	Site       string
	Charter    *charter.Charter
	Log        *ledger.Log
	Keys       *seal.Keyring
	Blobs      store.Backend // the guest's blob backend; each registry has a store under it
	Registries *registry.Registries
}

// LocalOptions configure OpenLocal.
type LocalOptions struct {
	StateDir string
	Site     string
	// Passphrase opens the site's checkpoint key and the root key.
	Passphrase []byte
	// Blobs selects the blob store; the zero value is the fs backend under
	// D/sites/<site>/blobs.
	Blobs location.Config
	// Ledger tunes the ledger; Origin and Signer are set from the charter
	// and the site's checkpoint key.
	Ledger ledger.Options
	Logger *slog.Logger
	Now    func() time.Time
	// Replicated is registry.Options.Replicated: where quorum writes wait.
	Replicated func(ctx context.Context, registry string, index uint64) error
}

// OpenLocal opens a guest's state for one site: it reads the charter and
// verifies its signatures, opens the site's ledger with the site's
// checkpoint key, unseals the root key from D/keys/root.key, opens the
// blob store and rebuilds the registries' index from the ledger.
//
// Today only the home holds the root key whole; an embassy site will get
// its keyring from an activation instead (continuity, later), and the rest
// of this sequence stays the same.
func OpenLocal(ctx context.Context, o LocalOptions) (_ *Local, err error) {
	l := &Local{Layout: state.Layout{Dir: o.StateDir}, Site: o.Site}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// An amended charter verifies through the versions kept in
	// D/charter-history/.
	c, err := charter.ReadVerified(l.Layout.Charter())
	if err != nil {
		return nil, err
	}
	if _, ok := c.Site(o.Site); !ok {
		return nil, fmt.Errorf("site %q is not in the charter of %s", o.Site, c.Guest.ID)
	}
	l.Charter = c
	prot := keyfile.Protector{Passphrase: o.Passphrase}
	lo := o.Ledger
	if lo.Logger == nil {
		lo.Logger = o.Logger.With("component", "ledger")
	}
	if l.Log, err = state.OpenLedger(ctx, l.Layout, c, o.Site, prot, lo); err != nil {
		return nil, fmt.Errorf("open ledger of site %s: %w", o.Site, err)
	}
	root, err := seal.ReadRootKeyFile(l.Layout.RootKey(), o.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("unseal root key of %s at site %s: %w", c.Guest.ID, o.Site, err)
	}
	l.Keys = seal.NewKeyring(c.Guest.ID, root)
	root.Wipe() // the keyring keeps what it needs
	dir := o.Blobs.Dir
	if dir == "" {
		dir = BlobDir(l.Layout, l.Site)
	}
	if l.Blobs, err = location.Open(ctx, o.Blobs, location.Options{DefaultDir: dir, Retention: c.Safeguards.RetentionPeriod()}); err != nil {
		return nil, fmt.Errorf("blob store of site %s: %w", l.Site, err)
	}
	l.Registries, err = registry.Open(ctx, registry.Options{Charter: c, Site: o.Site, Log: l.Log, Keys: l.Keys, Blobs: l.Blobs, Now: o.Now, Replicated: o.Replicated})
	if err != nil {
		return nil, fmt.Errorf("open registries of %s at site %s: %w", c.Guest.ID, o.Site, err)
	}
	return l, nil
}

// Close makes the blob store and the ledger durable and releases them,
// blobs first: a ledger entry must never outlive the chunks it names.
func (l *Local) Close() error {
	var errs []error
	if l.Registries != nil {
		if err := l.Registries.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close blob stores of site %s: %w", l.Site, err))
		}
		l.Registries = nil
	}
	if l.Log != nil {
		if err := l.Log.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
			errs = append(errs, fmt.Errorf("close ledger of site %s: %w", l.Site, err))
		}
		l.Log = nil
	}
	if l.Keys != nil {
		l.Keys.Wipe()
		l.Keys = nil
	}
	return errors.Join(errs...)
}

// BlobDir is the default blob directory of a site: D/sites/<site>/blobs,
// beside its ledger.
func BlobDir(l state.Layout, site string) string {
	return filepath.Join(l.Dir, "sites", site, "blobs")
}
