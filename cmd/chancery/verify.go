package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/ledger"
)

type verifyOptions struct {
	target   string   // ledger directory or URL
	charters []string // charter chain, oldest first
	stateDir string   // where verified checkpoints are remembered
	noState  bool
	pinSite  string // site whose charter-pinned TLS key an https URL must present
	blobs    string // a site's blob directory to check as well
	blobKeys blobKeyFlags
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [--charter FILE]... [--blobs DIR [--root-key FILE]] LEDGER_DIR|URL",
		Short: "Audit a whole ledger: every tile, the checkpoint signature, consistency with earlier runs",
		Long: `Verify checks a Chancery ledger as an independent auditor would.

LEDGER_DIR is the folder holding "checkpoint" and "tile/" (in a state
directory: D/sites/<site>/ledger); URL is where a site serves that folder.

It rebuilds the Merkle tree from every entry bundle and compares every tile
the ledger holds, checks the root against the checkpoint, that every entry
decodes and that epochs never go backwards, and verifies the checkpoint's
signature with the site keys of the charter.

The charter comes from --charter (give every version, oldest first, to check
an amended charter's chain). Without --charter it is looked for beside the
ledger (charter.yaml in the ledger folder or up to three levels above). When
there is none, only hashes are checked and the output says plainly that no
signature was checked.

The verified checkpoint is remembered per origin (in --state-dir), and each
run checks that the ledger is consistent with the last one verified — so
checking two sites of the same guest one after the other also detects a
fork between them.

With --blobs, every pack and index object of a site's blob directory is
also read and must hash to its name, and every chunk an attachment of a
ledger entry references must be in a pack of its registry that is present
and undamaged; no key is needed. With --root-key (and --charter) each of
those chunks is also opened with its registry's blob keys, which checks
its MAC, and re-hashed to its id. Each problem names the pack, and for a
referenced chunk the chunk, registry, record and ledger index.

Exit status is non-zero on any discrepancy; the message names the first bad
entry index or tile.`,
		Example: `  chancery verify /var/lib/chancery/sites/home/ledger
  chancery verify --blobs /var/lib/chancery/sites/home/blobs --root-key /var/lib/chancery/keys/root.key /var/lib/chancery/sites/home/ledger
  chancery verify --charter charter-v1.yaml --charter charter-v2.yaml https://embassy.example/guests/demo/ledger`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = args[0]
			return runVerify(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringArrayVar(&o.charters, "charter", nil, "charter file; repeat for every version of an amended charter, oldest first")
	cmd.Flags().StringVar(&o.stateDir, "state-dir", defaultVerifyStateDir(), "directory where the last verified checkpoint of each origin is kept")
	cmd.Flags().BoolVar(&o.noState, "no-state", false, "neither read nor save the last verified checkpoint")
	cmd.Flags().StringVar(&o.pinSite, "site", "", "for an https URL: the site's id in the charter (--charter); only the TLS key the charter pins for it is trusted")
	cmd.Flags().StringVar(&o.pinSite, "pin-site", "", "old spelling of --site")
	aliasFlag(cmd.Flags(), "pin-site", "--site SITE-ID")
	cmd.Flags().StringVar(&o.blobs, "blobs", "", "a site's blob directory (D/sites/<site>/blobs): every object must hash to its name and every chunk the ledger references must be in an undamaged pack")
	o.blobKeys.register(cmd)
	return cmd
}

func defaultVerifyStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "chancery", "verified")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "chancery", "verified")
	}
	return ""
}

func runVerify(ctx context.Context, o verifyOptions, stdout, stderr io.Writer) error {
	l, err := audit.Open(audit.Source{Target: o.target, Charters: o.charters, PinSite: o.pinSite})
	if err != nil {
		return fmt.Errorf("verify %s: %w", o.target, err)
	}
	ao := audit.VerifyOptions{Progress: newProgress(stderr)}
	if !o.noState {
		ao.StateDir = o.stateDir
	}
	v, err := l.Verify(ctx, ao)
	if err != nil {
		return fmt.Errorf("verify %s: %w", o.target, err)
	}

	rep, c := v.Report, l.Charter
	cp := rep.Checkpoint
	fmt.Fprintf(stdout, "ledger %s: OK — %d entries, %d tiles and bundles verified\n", cp.Origin, rep.Entries, rep.Tiles)
	fmt.Fprintf(stdout, "checkpoint: size %d, root %x, epoch %d\n", cp.Size, cp.Root, cp.Epoch)
	if n := rep.ByType[ledger.TypeWithheld]; n > 0 {
		// A site's mirror: the tree is whole, but the bytes of registries
		// the charter does not place there never reached it.
		fmt.Fprintf(stdout, "withheld: %d entries are stubs carrying only their leaf hash (registries not placed at this site); their contents were not checked here\n", n)
	}
	if rep.SignatureChecked {
		fmt.Fprintf(stdout, "signature: verified with the site keys of charter %s v%d (%s), signed by %s\n",
			c.Guest.ID, c.Version, c.HashHex()[:16], strings.Join(v.Signers, ", "))
	} else {
		fmt.Fprintf(stdout, "signature: NOT CHECKED — no charter was given or found beside the ledger; only hashes were verified\n")
	}
	if cu := v.Custody; cu != nil {
		switch {
		case cu.Anchored:
			last := cu.Events[len(cu.Events)-1]
			fmt.Fprintf(stdout, "custody: entry %d anchors package %x (root commitment %x), the one the charter pins\n", last.Index, last.Package, last.Commitment)
		case cu.Pinned:
			fmt.Fprintf(stdout, "custody: the charter pins package %s, but this ledger holds no custody event (founded before anchoring)\n", c.Custodians.Package)
		case len(cu.Events) > 0:
			last := cu.Events[len(cu.Events)-1]
			fmt.Fprintf(stdout, "custody: entry %d anchors package %x (root commitment %x); NOT CHECKED — no charter pins a package\n", last.Index, last.Package, last.Commitment)
		}
	}
	if cu := v.Custody; cu != nil {
		for _, e := range cu.SiteKeys {
			if e.Shred {
				fmt.Fprintf(stdout, "site key: entry %d destroys the outer key of site %s (key id %x)\n", e.Index, e.Site, e.KeyID[:8])
			} else {
				fmt.Fprintf(stdout, "site key: entry %d rotates the outer key of site %s to generation %d (key id %x)\n", e.Index, e.Site, e.Generation, e.KeyID[:8])
			}
		}
	}
	switch {
	case v.Previous:
		fmt.Fprintf(stdout, "consistency: consistent with the checkpoint verified before (size %d)\n", rep.PreviousSize)
	case v.StatePath != "":
		fmt.Fprintf(stdout, "consistency: first verification of this origin here; checkpoint saved for the next run\n")
	}
	if o.blobs != "" || o.blobKeys.config != "" {
		return verifyBlobs(ctx, stdout, stderr, o, l, cp.Size)
	}
	return nil
}

// newProgress shows, for a ledger of 100,000 entries or more, a progress
// bar on a terminal, and otherwise a line every tenth of the way, so that
// logs of long runs show progress too. It learns the size from the first
// call.
func newProgress(w io.Writer) func(done, total uint64) {
	var show func(done, total uint64)
	return func(done, total uint64) {
		if show == nil {
			if total < 100_000 {
				show = func(uint64, uint64) {}
			} else {
				show = progressFor(w, total)
			}
		}
		show(done, total)
	}
}

func progressFor(w io.Writer, total uint64) func(done, total uint64) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("verifying entries"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
		return func(done, _ uint64) { bar.Set64(int64(done)) }
	}
	next := total / 10
	return func(done, total uint64) {
		if done >= next || done == total {
			fmt.Fprintf(w, "verified %d of %d entries (%d%%)\n", done, total, done*100/max(total, 1))
			next += total / 10
		}
	}
}
