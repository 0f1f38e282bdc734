package bundle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// The two ends of a journey on disk: ExportState reads a home's state
// directory, ImportMirror writes an embassy's directory for the guest.
// They are what `chancery bundle export` and `chancery bundle import` do.

// StateExport says what ExportState exports, and from where.
type StateExport struct {
	// StateDir is the home's state directory (state.Layout): its charter,
	// its ledger D/sites/<home>/ledger and fs blob store
	// D/sites/<home>/blobs.
	StateDir string
	// BlobDir, if set, is the home's fs blob directory instead.
	BlobDir string
	// From says what the site holds: a file holding its last checkpoint
	// note or its last receipt (which names the site, so Site may be
	// left empty), or the decimal number of entries its mirror holds (0
	// for a new site). A note also gives the root the home's ledger must
	// extend (ExportOptions.FromRoot).
	From string
	// Site is the site the bundle is for.
	Site string
	// To is the bundle directory to write, new or empty.
	To       string
	Progress func(Progress)
}

// ExportState writes a bundle (Export) for a site from a home's state
// directory. It holds no key and opens nothing for writing there: the
// ledger is read as files (replica.DirSource), so the home's daemon may
// keep running.
func ExportState(ctx context.Context, o StateExport) (*Manifest, error) {
	layout := state.Layout{Dir: o.StateDir}
	c, err := readCharter(layout.Charter())
	if err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	home, ok := c.Home()
	if !ok {
		return nil, fmt.Errorf("bundle export: the charter of %s names no home site", c.Guest.ID)
	}
	from, root, target, err := parseFrom(c, o.From, o.Site)
	if err != nil {
		return nil, fmt.Errorf("bundle export: --from %s: %w", o.From, err)
	}
	if target == home.ID {
		return nil, fmt.Errorf("bundle export: site %s is the home, the writer itself: a bundle is for an embassy", target)
	}
	ledgerDir := layout.Ledger(home.ID)
	if _, err := os.Stat(filepath.Join(ledgerDir, ledger.CheckpointPath)); err != nil {
		return nil, fmt.Errorf("bundle export: no ledger of site %s in %s: %w", home.ID, o.StateDir, err)
	}
	blobDir := o.BlobDir
	if blobDir == "" {
		blobDir = layout.Blobs(home.ID)
	}
	// storefs.New would create a missing directory: this only reads.
	if fi, err := os.Stat(blobDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("bundle export: blob directory %s: not a directory (%v); give --blobs", blobDir, err)
	}
	be, err := storefs.New(blobDir)
	if err != nil {
		return nil, fmt.Errorf("bundle export: %w", err)
	}
	src := replica.NewDirSource(ledgerDir, be)
	defer src.Close()
	return Export(ctx, src, c, target, from, o.To, ExportOptions{FromRoot: root, Progress: o.Progress})
}

// readCharter reads a charter file and checks its signatures.
func readCharter(path string) (*charter.Charter, error) {
	c, err := charter.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := charter.VerifySignatures(c, nil); err != nil {
		return nil, fmt.Errorf("charter %s: %w", path, err)
	}
	return c, nil
}

// parseFrom reads StateExport.From: a size, or a checkpoint or receipt
// note. It returns the size, the root when a note gave one, and the site.
func parseFrom(c *charter.Charter, arg, site string) (uint64, *ledger.Hash, string, error) {
	if n, err := strconv.ParseUint(arg, 10, 64); err == nil {
		if site == "" {
			return 0, nil, "", errors.New("a size names no site: give --site")
		}
		if _, ok := c.Site(site); !ok {
			return 0, nil, "", fmt.Errorf("site %q is not in the charter of %s", site, c.Guest.ID)
		}
		return n, nil, site, nil
	}
	signed, err := fsutil.Read(arg, 64<<10)
	if err != nil {
		return 0, nil, "", fmt.Errorf("neither a size nor a readable checkpoint file: %w", err)
	}
	w := replica.HomeWriter{Charter: c}
	// A receipt names the site that cosigned it.
	for _, s := range c.Sites {
		cp, _, err := replica.OpenReceipt(c, w, s.ID, signed)
		if err != nil {
			continue
		}
		if site != "" && site != s.ID {
			return 0, nil, "", fmt.Errorf("it is a receipt of site %s, not of --site %s", s.ID, site)
		}
		return cp.Size, &cp.Root, s.ID, nil
	}
	if site == "" {
		return 0, nil, "", errors.New("a checkpoint that no site cosigned names no site: give --site")
	}
	if _, ok := c.Site(site); !ok {
		return 0, nil, "", fmt.Errorf("site %q is not in the charter of %s", site, c.Guest.ID)
	}
	cp, err := replica.OpenWriterCheckpoint(c, w, signed)
	if err != nil {
		return 0, nil, "", fmt.Errorf("not a checkpoint of %s's writer: %w", c.Guest.ID, err)
	}
	return cp.Size, &cp.Root, site, nil
}

// MirrorImport says what ImportMirror takes, and where.
type MirrorImport struct {
	// Bundle is the bundle directory.
	Bundle string
	// Dir is the site's directory for the guest: the mirror ledger
	// Dir/ledger and the fs blob store Dir/blobs (an embassy keeps each
	// guest in DATA_DIR/guests/<guest>).
	Dir string
	// CharterFile is the guest's signed charter; Site this site's id in
	// it, which must be an embassy.
	CharterFile string
	Site        string
	// CheckpointKeyFile is the site's sealed checkpoint key, which signs
	// its receipts, and Passphrase the one it is sealed under.
	CheckpointKeyFile string
	Passphrase        []byte
	Progress          func(Progress)
}

// ImportMirror imports a bundle (Import) into a stopped embassy's mirror
// of a guest: it opens the mirror, measures what the guest holds there
// (replica.Usage) and puts the site's own replica.Receiver, with the
// charter's quota for the guest, behind the import, as the daemon would.
// The mirror is locked while the daemon runs: ImportMirror then refuses.
//
// Once the mirror is open the result is never nil: on a refusal its
// Before says how many entries the site still holds.
func ImportMirror(ctx context.Context, o MirrorImport) (res *Imported, err error) {
	c, err := readCharter(o.CharterFile)
	if err != nil {
		return nil, fmt.Errorf("bundle import: %w", err)
	}
	def, ok := c.Site(o.Site)
	if !ok {
		return nil, fmt.Errorf("bundle import: site %q is not in the charter of %s", o.Site, c.Guest.ID)
	}
	if def.Role != charter.RoleEmbassy {
		return nil, fmt.Errorf("bundle import: site %s has role %q in the charter of %s: only an embassy holds a mirror", o.Site, def.Role, c.Guest.ID)
	}
	quota, err := def.QuotaBytes()
	if err != nil {
		return nil, fmt.Errorf("bundle import: %w", err)
	}
	key, err := keyfile.ReadEd25519(o.CheckpointKeyFile, keyfile.Protector{Passphrase: o.Passphrase})
	if err != nil {
		return nil, fmt.Errorf("bundle import: checkpoint key: %w", err)
	}
	// The cosigner signs with key itself: wipe it only when done.
	defer clear(key)
	cosigner, err := replica.NewReceiptCosigner(c, o.Site, key)
	if err != nil {
		return nil, fmt.Errorf("bundle import: %w", err)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bundle import: %w", err)
	}
	ledgerDir := filepath.Join(o.Dir, "ledger")
	log, err := ledger.Open(ctx, ledgerDir, ledger.Options{Origin: c.Guest.Origin, Mirror: true})
	if errors.Is(err, ledger.ErrLocked) {
		return nil, fmt.Errorf("bundle import: the mirror %s is in use (is the site's daemon running? stop it first): %w", ledgerDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle import: open the mirror %s: %w", ledgerDir, err)
	}
	defer func() {
		if cerr := log.Close(); cerr != nil && !errors.Is(cerr, ledger.ErrClosed) && err == nil {
			err = fmt.Errorf("bundle import: close the mirror: %w", cerr)
		}
	}()
	before := &Imported{Before: log.MirrorSize()}
	be, err := storefs.New(filepath.Join(o.Dir, "blobs"))
	if err != nil {
		return before, fmt.Errorf("bundle import: %w", err)
	}
	used, err := replica.Usage(ctx, ledgerDir, be)
	if err != nil {
		return before, fmt.Errorf("bundle import: measure what the guest holds: %w", err)
	}
	recv, err := replica.NewReceiver(replica.ReceiverOptions{Charter: c, Site: o.Site, Log: log, Blobs: be,
		Cosigner: cosigner, Quota: quota, Used: used})
	if err != nil {
		return before, fmt.Errorf("bundle import: %w", err)
	}
	defer func() {
		if cerr := recv.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("bundle import: %w", cerr)
		}
	}()
	res, err = Import(ctx, o.Bundle, recv, o.Progress)
	if err != nil {
		return res, fmt.Errorf("bundle import: %w", err)
	}
	return res, nil
}
