package main

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
)

func newReconcileCmd() *cobra.Command {
	var (
		stateDir, siteID, from, passFile, charterFile, pin string
		decrypt                                            bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --state D --from URL",
		Short: "Set aside what a fenced home wrote past the fork, into a report for officials",
		Long: `Reconcile is for a home that went on writing while it was cut off, after
another site had been activated: its ledger and the active site's share a
prefix, then fork. The active site's ledger is the state's. Reconcile finds
the fork by comparing leaf hashes, writes every entry the home wrote past it
to D/reconciliation/<time>.json (nothing is dropped), moves the home's ledger
aside to D/sites/<home>/ledger.forked-<time> (kept as evidence), and leaves
the home ready to start with "standby: true" and catch up.

With --decrypt (the home's root key file and passphrase) the forked records
are also written, in clear, to D/reconciliation/<time>.reapply.jsonl (mode
0600): officials decide record by record to re-apply them after failback,
with "chancery import --state D reapply.jsonl" at the home, or to discard.

Stop the home first: its ledger is locked while it runs.`,
		Example: `  chancery reconcile --state D --from embassy-north --decrypt
  chancery reconcile --state D --from http://127.0.0.1:7101/guests/demo-republic/ledger`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if charterFile == "" {
				charterFile = state.Layout{Dir: stateDir}.Charter()
			}
			if !strings.Contains(from, "://") {
				if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
					// A site's id: its ledger at its address, pinned.
					ch, err := charter.ReadVerified(charterFile)
					if err != nil {
						return fmt.Errorf("reconcile: --from %s: %w", from, err)
					}
					addr, err := siteAddress(cmd, ch, from)
					if err != nil {
						return fmt.Errorf("reconcile: --from: %w", err)
					}
					from, pin = addr+"/guests/"+ch.Guest.ID+"/ledger", from
				}
			}
			o := guest.ReconcileOptions{StateDir: stateDir, Site: siteID, From: from}
			var c *http.Client
			var err error
			if strings.HasPrefix(from, "https://") || strings.HasPrefix(from, "http://") {
				if c, err = siteClient(from, charterFile, pin, true); err != nil {
					return fmt.Errorf("reconcile: --from: %w", err)
				}
			}
			o.Client = cmp.Or(c, http.DefaultClient)
			if decrypt {
				pass, err := readPassphrase(passFile, os.Stdin, os.Stderr)
				if err != nil {
					return err
				}
				defer clear(pass)
				root, err := seal.ReadRootKeyFile(state.Layout{Dir: stateDir}.RootKey(), pass)
				if err != nil {
					return fmt.Errorf("reconcile: --decrypt: %w", err)
				}
				c, err := readStateCharter(stateDir)
				if err != nil {
					return err
				}
				o.Keys = seal.NewKeyring(c, root)
				root.Wipe()
				defer o.Keys.Wipe()
			}
			rep, err := guest.Reconcile(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "home holds %d entries, the active site %d (epoch %d, signed by %v); they fork at %d\n",
				rep.HomeSize, rep.ActiveSize, rep.ActiveEpoch, rep.ActiveSigner, rep.Fork)
			if rep.MovedTo == "" {
				fmt.Fprintln(out, "nothing to reconcile: the home's ledger is a prefix of the active site's; start the home with standby: true")
				return nil
			}
			fmt.Fprintf(out, "%d entries the home wrote past the fork are in %s (%v)\n", len(rep.Entries), rep.ReportFile, rep.ByType)
			if rep.ReapplyFile != "" {
				fmt.Fprintf(out, "%d records decrypted for officials to re-apply or discard: %s\n", rep.Decrypted, rep.ReapplyFile)
			}
			fmt.Fprintf(out, "the home's ledger was moved aside to %s; start the home with standby: true\n", rep.MovedTo)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state", "", "the home's state directory D (required)")
	f.StringVar(&siteID, "site", "home", "the home's site id")
	f.StringVar(&from, "from", "", "the active site: its id in the charter, or its ledger's URL .../guests/<guest>/ledger, or a directory (required)")
	f.BoolVar(&decrypt, "decrypt", false, "decrypt the forked records with the home's root key into a re-apply file")
	f.StringVar(&passFile, "passphrase-file", "", "file holding the root key file's passphrase (default: $"+keyfile.EnvPassphrase+")")
	f.StringVar(&charterFile, "charter", "", "the guest's charter (default: D/charter.yaml)")
	f.StringVar(&pin, "pin-site", "", "with a URL in --from: trust only the TLS key the charter pins for this site id (implied by a site id in --from)")
	cmd.MarkFlagRequired("state")
	cmd.MarkFlagRequired("from")
	return cmd
}

// readStateCharter returns the guest id of the state's verified charter.
func readStateCharter(dir string) (string, error) {
	c, err := charter.ReadVerified(state.Layout{Dir: dir}.Charter())
	if err != nil {
		return "", err
	}
	return c.Guest.ID, nil
}
