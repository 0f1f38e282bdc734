package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chancery-gov/chancery/bundle"
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
	p := newBundleProgress(out)
	m, err := bundle.ExportState(ctx, bundle.StateExport{StateDir: o.stateDir, BlobDir: o.blobDir,
		From: o.from, Site: o.site, To: o.to, Progress: p.update})
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

func runBundleImport(ctx context.Context, o bundleImportOptions, out io.Writer) error {
	pass, err := readPassphrase(o.passphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	defer clear(pass)
	p := newBundleProgress(out)
	res, err := bundle.ImportMirror(ctx, bundle.MirrorImport{Bundle: o.dir, Dir: o.data, CharterFile: o.charterFile,
		Site: o.site, CheckpointKeyFile: o.checkpointKey, Passphrase: pass, Progress: p.update})
	p.finish()
	if err != nil {
		var be *bundle.Error
		if errors.As(err, &be) && res != nil {
			fmt.Fprintf(out, "refused at %s; nothing was taken, the site still holds %d entries\n", be.Part, res.Before)
		}
		return err
	}
	fmt.Fprintf(out, "imported %d entries (%d withheld stubs), %d packs, %d bytes into site %s; receipt for size %d\n",
		res.Entries, res.Withheld, res.Packs, res.Bytes, o.site, res.Size)
	return nil
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

func (p *bundleProgress) update(bp bundle.Progress) {
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
