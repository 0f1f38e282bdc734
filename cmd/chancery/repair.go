package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

type repairOptions struct {
	ledgerDir string
	from      string   // peer ledger: URL or directory
	charters  []string // charter chain, oldest first
	pinSite   string
}

func newRepairCmd() *cobra.Command {
	var o repairOptions
	cmd := &cobra.Command{
		Use:   "repair --from URL|DIR [--charter FILE]... LEDGER_DIR",
		Short: "Restore the entries damage took from a stopped site's ledger, from a site that holds them",
		Long: `Repair is the way back when a site refuses to start because its ledger is
damaged ("damaged: <file> offset <n> (entry <i>)"): a write-ahead log frame
that fails its checksum although frames after it were committed, or an
entry bundle at the tree's right edge whose entries no longer hash to their
leaves. Open changes nothing on disk when it finds damage.

Repair reads the damaged ledger (LEDGER_DIR, e.g. D/sites/home/ledger; stop
the site first), fetches the entries the damage took from another site's
copy of the same ledger (--from: its .../guests/<guest>/ledger URL, or a
directory), and checks them before writing anything: every entry is hashed
into the tree, whose root must be the one the peer's checkpoint gives (its
signature checked with the charter's site keys) and the one the site's own
published checkpoint gives. It then rewrites the damaged files; each is
first kept beside itself as <file>.damaged-<time>.

The charter comes from --charter (every version, oldest first) or is looked
for beside the ledger, as for verify.`,
		Example: `  chancery repair --from https://embassy.example/guests/demo-republic/ledger \
      --charter charter.yaml --site embassy-a /var/lib/chancery/sites/home/ledger
  chancery repair --from /mnt/embassy-copy/ledger D/sites/home/ledger`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ledgerDir = args[0]
			return runRepair(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "a site's copy of the same ledger: URL .../guests/<guest>/ledger, or a directory (required)")
	f.StringArrayVar(&o.charters, "charter", nil, "charter file; repeat for every version of an amended charter, oldest first")
	f.StringVar(&o.pinSite, "site", "", "for an https --from: the site's id in the charter (--charter); only the TLS key the charter pins for it is trusted")
	f.StringVar(&o.pinSite, "pin-site", "", "old spelling of --site")
	aliasFlag(f, "pin-site", "--site SITE-ID")
	cmd.MarkFlagRequired("from")
	return cmd
}

func runRepair(ctx context.Context, o repairOptions, out io.Writer) error {
	files := o.charters
	if len(files) == 0 {
		p, err := state.FindCharter(o.ledgerDir)
		if err != nil {
			return err
		}
		if p == "" {
			return fmt.Errorf("repair %s: no charter beside the ledger: give --charter, whose site keys check the peer's checkpoint", o.ledgerDir)
		}
		files = []string{p}
	}
	c, err := charter.ReadChain(files)
	if err != nil {
		return err
	}
	vs, err := c.CheckpointVerifiers()
	if err != nil {
		return fmt.Errorf("repair: charter site keys: %w", err)
	}
	peer, err := repairPeer(o)
	if err != nil {
		return err
	}
	rep, err := ledger.Repair(ctx, o.ledgerDir, ledger.RepairOptions{Origin: c.Guest.Origin, Verifiers: vs, Peer: peer})
	if rep != nil {
		for _, d := range rep.Damage {
			fmt.Fprintf(out, "damage: %s offset %d (entry %d): %v\n", d.File, d.Offset, d.Index, d.Err)
		}
	}
	if err != nil {
		return fmt.Errorf("repair %s: %w", o.ledgerDir, err)
	}
	if len(rep.Damage) == 0 {
		fmt.Fprintf(out, "ledger %s: no damage found; nothing was changed\n", o.ledgerDir)
		return nil
	}
	fmt.Fprintf(out, "restored %d entries from %s, checked against its checkpoint of size %d signed by charter %s v%d\n",
		rep.Restored, o.from, rep.PeerSize, c.Guest.ID, c.Version)
	for i, p := range rep.Rewritten {
		if rep.SavedAs[i] == "" {
			fmt.Fprintf(out, "wrote %s (it was missing)\n", p)
			continue
		}
		fmt.Fprintf(out, "rewrote %s (the damaged file is kept as %s)\n", p, filepath.Base(rep.SavedAs[i]))
	}
	fmt.Fprintln(out, "start the site; then run chancery verify on its ledger")
	return nil
}

// repairPeer reads the peer's ledger over HTTP(S), pinned when asked, or
// from a directory.
func repairPeer(o repairOptions) (ledger.Fetcher, error) {
	if !strings.HasPrefix(o.from, "http://") && !strings.HasPrefix(o.from, "https://") {
		if _, err := os.Stat(filepath.Join(o.from, ledger.CheckpointPath)); err != nil {
			return nil, fmt.Errorf("repair: --from %s: not a ledger directory (no checkpoint): %w", o.from, err)
		}
		return ledger.DirFetcher(o.from), nil
	}
	hf := ledger.HTTPFetcher{Base: o.from}
	if o.pinSite != "" {
		if len(o.charters) == 0 {
			return nil, fmt.Errorf("repair: --site needs --charter")
		}
		client, err := pinnedClient(o.charters[len(o.charters)-1], o.pinSite)
		if err != nil {
			return nil, fmt.Errorf("repair: %w", err)
		}
		hf.Client = client
	}
	return hf, nil
}
