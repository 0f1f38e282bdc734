package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/site"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

func newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Seed or catch up an embassy site offline, with a verifiable bundle carried on a disk",
		Long: `A bundle is what replication would send one site, written to a directory
instead: the writer's signed checkpoint, the ledger entries the site lacks
(withheld stubs for registries its charter does not place there) and the
sealed packs of their attachments, with a manifest of every file's SHA-256.

Use it when the network cannot carry the data: to seed a new embassy with
terabytes, or to catch up a site that has been cut off. Export at the home
(no key needed: nothing is decrypted), carry the directory, import at the
site. The site checks everything before it takes anything; replication then
continues from where the bundle ends.

See docs/bundle.md.`,
	}
	cmd.AddCommand(newBundleExportCmd(), newBundleImportCmd())
	return cmd
}

type bundleExportOptions struct {
	from     string
	to       string
	stateDir string
	site     string
	blobDir  string
}

func newBundleExportCmd() *cobra.Command {
	var o bundleExportOptions
	cmd := &cobra.Command{
		Use:   "export --from CHECKPOINT --to DIR [--state D] [--site SITE]",
		Short: "Write the entries and blobs a site lacks to a directory, for a disk",
		Long: `Export writes, for one site, a bundle that brings it from what it holds up to
the home's current signed checkpoint.

--from says what the site holds:
  a file holding the site's last checkpoint note (its ledger/checkpoint)
      or its last receipt (a checkpoint it cosigned; it names the site,
      so --site may be left out);
  a plain number: the number of entries the site's mirror holds (its
      replication state's "size");
  0 for a new site.
Given a note, the export also checks that the home's ledger extends the
site's tree, so a site holding another history is found before the journey.

It reads the home's state directory: the ledger D/sites/<home>/ledger and the
fs blob store D/sites/<home>/blobs (--blobs for another directory). It holds
no key and opens nothing for writing there, so the home may keep running.

DIR must be new or empty. Files are written 0600 and fsynced, manifest.json
last: a directory without it is an interrupted export, which import refuses.
Entries of registries the charter does not place at the site travel as
withheld stubs, and their packs are not written.`,
		Example: `  chancery bundle export --state /var/lib/chancery --from 0 --site embassy-south --to /mnt/disk/south
  chancery bundle export --state /var/lib/chancery --from south-receipt.txt --to /mnt/disk/south`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBundleExport(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "the site's last checkpoint or receipt file, or the number of entries it holds (0 for a new site) (required)")
	cmd.Flags().StringVar(&o.to, "to", "", "directory to write the bundle to, new or empty (required)")
	cmd.Flags().StringVar(&o.stateDir, "state", ".", "the home's state directory")
	cmd.Flags().StringVar(&o.site, "site", "", "the site the bundle is for (default: the site that signed the receipt given to --from)")
	cmd.Flags().StringVar(&o.blobDir, "blobs", "", "the home's fs blob directory (default D/sites/<home>/blobs)")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

func runBundleExport(ctx context.Context, o bundleExportOptions, out io.Writer) error {
	layout := state.Layout{Dir: o.stateDir}
	c, err := charter.ReadFile(layout.Charter())
	if err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	if err := charter.VerifySignatures(c, nil); err != nil {
		return fmt.Errorf("bundle export: charter %s: %w", layout.Charter(), err)
	}
	home, ok := c.Home()
	if !ok {
		return fmt.Errorf("bundle export: the charter of %s names no home site", c.Guest.ID)
	}
	from, root, target, err := parseBundleFrom(c, o.from, o.site)
	if err != nil {
		return fmt.Errorf("bundle export: --from %s: %w", o.from, err)
	}
	if target == home.ID {
		return fmt.Errorf("bundle export: site %s is the home, the writer itself: a bundle is for an embassy", target)
	}
	ledgerDir := layout.Ledger(home.ID)
	if _, err := os.Stat(filepath.Join(ledgerDir, ledger.CheckpointPath)); err != nil {
		return fmt.Errorf("bundle export: no ledger of site %s in %s: %w", home.ID, o.stateDir, err)
	}
	blobDir := o.blobDir
	if blobDir == "" {
		blobDir = site.BlobDir(layout, home.ID)
	}
	// storefs.New would create a missing directory: this command only reads.
	if fi, err := os.Stat(blobDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("bundle export: blob directory %s: not a directory (%v); give --blobs", blobDir, err)
	}
	be, err := storefs.New(blobDir)
	if err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	src := replica.NewDirSource(ledgerDir, be)
	defer src.Close()

	p := newBundleProgress(out)
	m, err := replica.ExportBundle(ctx, src, c, target, from, o.to, replica.BundleOptions{FromRoot: root, Progress: p.update})
	p.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "exported entries %d–%d (%d entries, %d withheld stubs), %d packs, %d bytes for site %s to %s\n",
		m.From, m.Size-1, m.Entries(), m.Withheld, m.Packs(), m.Bytes(), m.Site, o.to)
	fmt.Fprintf(out, "checkpoint: size %d, epoch %d, root %s\n", m.Size, m.Epoch, m.Root)
	fmt.Fprintf(out, "at site %s: chancery bundle import %s --data <guest dir> --charter <charter> --site %s --checkpoint-key <key>\n", m.Site, o.to, m.Site)
	return nil
}

// parseBundleFrom reads --from: a size, or a checkpoint or receipt note.
// It returns the size, the root when a note gave one, and the site.
func parseBundleFrom(c *charter.Charter, arg, site string) (uint64, *ledger.Hash, string, error) {
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
	head, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return 0, nil, "", err
	}
	vs, err := w.Verifiers(head.Epoch)
	if err != nil {
		return 0, nil, "", err
	}
	cp, _, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, vs)
	if err != nil {
		return 0, nil, "", fmt.Errorf("not a checkpoint of %s's writer: %w", c.Guest.ID, err)
	}
	return cp.Size, &cp.Root, site, nil
}

type bundleImportOptions struct {
	dir            string
	data           string
	charterFile    string
	site           string
	checkpointKey  string
	passphraseFile string
}

func newBundleImportCmd() *cobra.Command {
	var o bundleImportOptions
	cmd := &cobra.Command{
		Use:   "import DIR --data G --charter FILE --site SITE --checkpoint-key FILE",
		Short: "Verify a bundle, then take it into a site's mirror of a guest",
		Long: `Import checks a bundle made by "bundle export" and, only if all of it is good,
takes it into the site's mirror of the guest, as replication would have.

G is the site's directory for the guest: the mirror ledger G/ledger and the
fs blob store G/blobs (an embassy keeps each guest in DATA_DIR/guests/<guest>).
Stop the site's daemon first: it holds that mirror locked while it runs.

Before taking anything it checks: the manifest is for this guest and this
site and starts at the mirror's size; every listed file is there with its
size and SHA-256 and nothing else is; the checkpoint verifies with the
writer's key; the batches follow on from the mirror and, appended to its
tree, give the checkpoint's root; entries of registries not placed here are
withheld stubs; every pack hashes to its name and parses; every blob a
record references is in the bundle or already here; the guest's quota has
room. A refusal names the first bad part (a file, a batch, an entry index
or a pack) and leaves the site unchanged.

Then it stores the packs the site lacks and appends the batches in order.
The final line gives the entries, packs and bytes taken and the size of
the receipt the site signed (with --checkpoint-key, sealed under the
passphrase). Replication resumes from there when the daemon runs again.`,
		Example: `  CHANCERY_PASSPHRASE=... chancery bundle import /mnt/disk/south \
      --data /var/lib/chancery-embassy/guests/demo-republic \
      --charter /etc/chancery/demo-republic.yaml --site embassy-south \
      --checkpoint-key /etc/chancery/keys/site-checkpoint-embassy-south.key`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runBundleImport(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.data, "data", "", "the site's directory for the guest, holding ledger/ and blobs/ (required)")
	cmd.Flags().StringVar(&o.charterFile, "charter", "", "the guest's signed charter (required)")
	cmd.Flags().StringVar(&o.site, "site", "", "this site's id in the charter (required)")
	cmd.Flags().StringVar(&o.checkpointKey, "checkpoint-key", "", "the site's sealed checkpoint key file, which signs its receipts (required)")
	cmd.Flags().StringVar(&o.passphraseFile, "passphrase-file", "", "file holding the passphrase of the checkpoint key (default: $CHANCERY_PASSPHRASE)")
	for _, f := range []string{"data", "charter", "site", "checkpoint-key"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

func runBundleImport(ctx context.Context, o bundleImportOptions, out io.Writer) (err error) {
	c, err := charter.ReadFile(o.charterFile)
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	if err := charter.VerifySignatures(c, nil); err != nil {
		return fmt.Errorf("bundle import: charter %s: %w", o.charterFile, err)
	}
	def, ok := c.Site(o.site)
	if !ok {
		return fmt.Errorf("bundle import: site %q is not in the charter of %s", o.site, c.Guest.ID)
	}
	if def.Role != charter.RoleEmbassy {
		return fmt.Errorf("bundle import: site %s has role %q in the charter of %s: only an embassy holds a mirror", o.site, def.Role, c.Guest.ID)
	}
	quota, err := def.QuotaBytes()
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	pass, err := keyfile.PassphraseFromEnv(o.passphraseFile)
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	key, err := keyfile.ReadEd25519(o.checkpointKey, keyfile.Protector{Passphrase: pass})
	clear(pass)
	if err != nil {
		return fmt.Errorf("bundle import: checkpoint key: %w", err)
	}
	// The cosigner signs with key itself: wipe it only when done.
	defer clear(key)
	cosigner, err := replica.NewReceiptCosigner(c, o.site, key)
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	ledgerDir := filepath.Join(o.data, "ledger")
	log, err := ledger.Open(ctx, ledgerDir, ledger.Options{Origin: c.Guest.Origin, Mirror: true})
	if errors.Is(err, ledger.ErrLocked) {
		return fmt.Errorf("bundle import: the mirror %s is in use (is the site's daemon running? stop it first): %w", ledgerDir, err)
	}
	if err != nil {
		return fmt.Errorf("bundle import: open the mirror %s: %w", ledgerDir, err)
	}
	defer func() {
		if cerr := log.Close(); cerr != nil && !errors.Is(cerr, ledger.ErrClosed) && err == nil {
			err = fmt.Errorf("bundle import: close the mirror: %w", cerr)
		}
	}()
	be, err := storefs.New(filepath.Join(o.data, "blobs"))
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	used, err := guestUsage(ctx, ledgerDir, be)
	if err != nil {
		return fmt.Errorf("bundle import: measure what the guest holds: %w", err)
	}
	recv, err := replica.NewReceiver(replica.ReceiverOptions{Charter: c, Site: o.site, Log: log, Blobs: be,
		Cosigner: cosigner, Quota: quota, Used: used})
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	defer func() {
		if cerr := recv.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("bundle import: %w", cerr)
		}
	}()

	before := log.MirrorSize()
	p := newBundleProgress(out)
	res, err := replica.ImportBundle(ctx, o.dir, recv, p.update)
	p.finish()
	if err != nil {
		var be *replica.BundleError
		if errors.As(err, &be) {
			fmt.Fprintf(out, "refused at %s; nothing was taken, the site still holds %d entries\n", be.Part, before)
		}
		return fmt.Errorf("bundle import: %w", err)
	}
	fmt.Fprintf(out, "imported %d entries (%d withheld stubs), %d packs, %d bytes into site %s; receipt for size %d\n",
		res.Entries, res.Withheld, res.Packs, res.Bytes, o.site, res.Size)
	return nil
}

// guestUsage is what a guest holds at a site, as the daemon counts it
// against the quota: its ledger directory and its blobs.
func guestUsage(ctx context.Context, ledgerDir string, be *storefs.Backend) (int64, error) {
	var n int64
	err := filepath.WalkDir(ledgerDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = be.List(ctx, "", func(_ string, size int64) error {
		n += size
		return nil
	})
	return n, err
}

// bundleProgress shows each stage (export, verify, import) as a bar on a
// terminal, and otherwise as a line every tenth of the way.
type bundleProgress struct {
	out   io.Writer
	tty   bool
	stage string
	bar   *progressbar.ProgressBar
	next  int64
	step  int64
}

func newBundleProgress(out io.Writer) *bundleProgress {
	p := &bundleProgress{out: out}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *bundleProgress) update(bp replica.BundleProgress) {
	done, total, bytes := bp.Bytes, bp.TotalBytes, true
	if total == 0 {
		done, total, bytes = int64(bp.Entries), int64(bp.TotalEntries), false
	}
	if bp.Stage != p.stage {
		p.finish()
		p.stage = bp.Stage
		if p.tty {
			opts := []progressbar.Option{progressbar.OptionSetWriter(p.out),
				progressbar.OptionSetDescription(bp.Stage + "ing"),
				progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish()}
			if bytes {
				opts = append(opts, progressbar.OptionShowBytes(true))
			} else {
				opts = append(opts, progressbar.OptionShowCount())
			}
			p.bar = progressbar.NewOptions64(total, opts...)
		} else {
			p.step = max(total/10, 1)
			p.next = p.step
		}
	}
	if p.bar != nil {
		p.bar.Set64(done)
		return
	}
	if done >= p.next && total > 0 {
		fmt.Fprintf(p.out, "%s: %d%% (%d of %d entries, %d packs)\n", bp.Stage, done*100/total, bp.Entries, bp.TotalEntries, bp.Packs)
		for p.next <= done {
			p.next += p.step
		}
	}
}

func (p *bundleProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
