package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/location"
)

// blobKeyFlags are verify's flags for opening the chunks --blobs checks.
type blobKeyFlags struct {
	rootKey  string
	passFile string
	rate     int64
	config   string // a YAML file holding a site's "blobs:" setting (location.Config), for an S3 store
}

func (f *blobKeyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.rootKey, "root-key", "", "with --blobs: the guest's root key file; every referenced chunk is then opened with its registry's blob keys (the MAC) and re-hashed to its id")
	fl.StringVar(&f.passFile, "passphrase-file", "", "file holding the root key's passphrase (default: $CHANCERY_PASSPHRASE, or asked on a terminal)")
	fl.StringVar(&f.config, "blobs-config", "", "instead of --blobs DIR: a YAML file holding the store's settings as in the site's configuration under \"blobs:\" (backend: s3, s3: {endpoint, bucket, prefix, …})")
	fl.Int64Var(&f.rate, "blobs-rate", 0, "with --blobs: read at most this many bytes per second from the blob store (0: no limit)")
}

// verifyBlobs scrubs a site's blob directory against the ledger just
// verified (audit.Scrub): every object hashes to its name, every chunk an
// entry of the first size entries references is in an undamaged pack, and
// with --root-key every such chunk opens.
func verifyBlobs(ctx context.Context, stdout, stderr io.Writer, o verifyOptions, l *audit.Ledger, size uint64) error {
	dir := o.blobs
	cfg := location.Config{Backend: location.BackendFS, Dir: dir}
	if o.blobKeys.config != "" {
		if dir != "" {
			return errors.New("verify: give --blobs DIR or --blobs-config FILE, not both")
		}
		dir = o.blobKeys.config
		b, err := os.ReadFile(dir)
		if err != nil {
			return fmt.Errorf("verify --blobs-config: %w", err)
		}
		cfg = location.Config{}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true) // a misspelt setting is an error, not a default
		if err := dec.Decode(&cfg); err != nil {
			return fmt.Errorf("verify --blobs-config %s: %w", dir, err)
		}
	}
	if cfg.Backend == "" || cfg.Backend == location.BackendFS {
		// The fs backend would create a missing directory: an audit only reads.
		if _, err := os.Stat(cfg.Dir); err != nil {
			return fmt.Errorf("verify --blobs: %w", err)
		}
	}
	be, err := location.Open(ctx, cfg, location.Options{})
	if err != nil {
		return fmt.Errorf("verify --blobs %s: %w", dir, err)
	}
	so := audit.ScrubOptions{Ledger: l.Fetcher, Size: size, Refs: guest.BlobRefs, Prefix: registry.BlobPrefix,
		Rate: o.blobKeys.rate, Progress: newBlobProgress(stderr)}
	if o.blobKeys.rootKey != "" {
		if l.Charter == nil {
			return errors.New("verify --root-key: the guest's charter is needed to derive its keys (--charter)")
		}
		pass, err := readPassphrase(o.blobKeys.passFile, os.Stdin, stderr)
		if err != nil {
			return fmt.Errorf("verify --root-key %s: %w", o.blobKeys.rootKey, err)
		}
		r, err := seal.ReadRootKeyFile(o.blobKeys.rootKey, pass)
		clear(pass)
		if err != nil {
			return fmt.Errorf("verify --root-key: %w", err)
		}
		keys := seal.NewKeyring(l.Charter.Guest.ID, r)
		r.Wipe()
		defer keys.Wipe()
		so.Sealer = func(name string) store.Sealer { return keys.Registry(name).Blobs() }
	}
	rep, err := audit.Scrub(ctx, be, so)
	if err != nil {
		return fmt.Errorf("verify --blobs %s: %w", dir, err)
	}
	if !rep.OK() {
		more := ""
		if rep.Bad > len(rep.Problems) {
			more = fmt.Sprintf(" (the first %d listed)", len(rep.Problems))
		}
		return fmt.Errorf("verify --blobs %s: FAILED: %d of %d objects damaged, %d problems with the %d chunks the ledger references%s:\n%w",
			dir, rep.BadObjects, rep.Objects, rep.Bad-rep.BadObjects, rep.Chunks, more, errors.Join(rep.Problems...))
	}
	fmt.Fprintf(stdout, "blobs: OK — %d objects (%d bytes) each hash to their name; %d attachments of %d entries reference %d chunks, each in an undamaged pack\n",
		rep.Objects, rep.Bytes, rep.Refs, rep.Entries, rep.Chunks)
	if so.Sealer != nil {
		fmt.Fprintf(stdout, "blobs: %d chunks opened with the registries' blob keys and re-hashed to their ids\n", rep.Opened)
	} else {
		fmt.Fprintf(stdout, "blobs: sealed chunks not opened (no --root-key)\n")
	}
	return nil
}

// newBlobProgress reports the bytes read, a line every tenth of the way,
// for a store of 64 MiB or more (smaller ones take a moment).
func newBlobProgress(w io.Writer) func(done, total uint64) {
	var next uint64
	return func(done, total uint64) {
		if total < 64<<20 || done < next {
			return
		}
		fmt.Fprintf(w, "blobs: read %d of %d MiB (%d%%)\n", done>>20, total>>20, done*100/total)
		next = done + total/10
	}
}
