package site

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	storefs "github.com/chancery-gov/chancery/store/fs"
	"github.com/chancery-gov/chancery/store/s3"
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
	Blobs BlobConfig
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
	if l.Blobs, err = openBackend(ctx, o.Blobs, dir, c, "site "+l.Site); err != nil {
		return nil, err
	}
	l.Registries, err = registry.Open(ctx, registry.Options{Charter: c, Site: o.Site, Log: l.Log, Keys: l.Keys, Blobs: l.Blobs, Now: o.Now, Replicated: o.Replicated})
	if err != nil {
		return nil, fmt.Errorf("open registries of %s at site %s: %w", c.Guest.ID, o.Site, err)
	}
	return l, nil
}

// openBackend opens a blob backend: fs in bc.Dir or defaultDir, or s3.
// what names the owner in errors.
func openBackend(ctx context.Context, bc BlobConfig, defaultDir string, c *charter.Charter, what string) (store.Backend, error) {
	var be store.Backend
	switch bc.Backend {
	case "", BackendFS:
		dir := bc.Dir
		if dir == "" {
			dir = defaultDir
		}
		b, err := storefs.New(dir)
		if err != nil {
			return nil, fmt.Errorf("blob store of %s: %w", what, err)
		}
		be = b
	case BackendS3:
		sc := bc.S3
		if sc == nil {
			return nil, fmt.Errorf("blob store of %s: s3 settings missing", what)
		}
		access, err := readSecretFile(sc.AccessKeyFile)
		if err != nil {
			return nil, fmt.Errorf("blob store of %s: access key: %w", what, err)
		}
		secret, err := readSecretFile(sc.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("blob store of %s: secret key: %w", what, err)
		}
		cfg := s3.Config{Endpoint: sc.Endpoint, Bucket: sc.Bucket, Prefix: sc.Prefix, Region: sc.Region,
			AccessKey: access, SecretKey: secret, Insecure: sc.Insecure, CreateBucket: sc.CreateBucket}
		if sc.ObjectLock != "" {
			ret := c.Safeguards.RetentionPeriod()
			if ret <= 0 {
				return nil, fmt.Errorf("blob store of %s: object_lock needs a retention period in the charter's safeguards", what)
			}
			cfg.Lock = &s3.Lock{Mode: s3.LockMode(strings.ToUpper(sc.ObjectLock)), Retention: ret}
		}
		b, err := s3.New(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("blob store of %s: %w", what, err)
		}
		be = b
	default:
		return nil, fmt.Errorf("blob store of %s: unknown backend %q", what, bc.Backend)
	}
	return be, nil
}

// readSecretFile reads a one-line credential that only its owner may read.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: permissions %#o are too open; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	v := string(bytes.TrimRight(b[:n], "\r\n"))
	if v == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return v, nil
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
