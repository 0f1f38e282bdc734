package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/demo"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	var passphraseFile string
	cmd := &cobra.Command{
		Use:   "demo [--dir D]",
		Short: "Tell the Demo Republic's continuity story on this machine, with measured figures",
		Long: `Demo runs the Demo Republic's story on loopback with embedded storage and
prints what happened, with measured figures.

Without --dir it founds a fresh Demo Republic in a temporary directory (keys
sealed under a random passphrase held only in memory) and removes it at the
end unless --keep is given. With --dir it uses the state "chancery init"
made there (its passphrase from --passphrase-file or $CHANCERY_PASSPHRASE);
the ledger lives under D/sites/home/ledger.

The story so far: the charter is recorded in the home ledger; home writes a
few thousand typed entries from concurrent writers, each durable before it is
acknowledged; an auditor verifies the whole ledger against the charter's
keys and proves random entries included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Dir != "" {
				if _, err := os.Stat(o.Dir); err == nil {
					pass, err := keyfile.PassphraseFromEnv(passphraseFile)
					if err != nil {
						return fmt.Errorf("demo: %w", err)
					}
					o.Passphrase = pass
				}
			}
			_, err := demo.Run(cmd.Context(), o, cmd.OutOrStdout())
			return err
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "state directory made by 'chancery init' (default: a fresh temporary one)")
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "file holding the state's passphrase (default: $CHANCERY_PASSPHRASE)")
	cmd.Flags().IntVar(&o.Entries, "entries", 5000, "typed entries to append")
	cmd.Flags().IntVar(&o.Appenders, "appenders", 64, "concurrent writers")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep the temporary state directory")
	cmd.AddCommand(newDemoGenCmd())
	return cmd
}
