// Command chancery is the single binary of a Chancery digital embassy: it
// governs the charter, keeps the ledger, serves sites and runs the demo.
//
// main only wires cobra commands; each command parses its flags into an
// options struct and calls a plain function in the package that owns the
// work, so every command can be tested without a shell.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/site"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chancery:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "chancery",
		Short: "A digital embassy: sealed registries, a verifiable ledger and quorum-governed continuity",
		Long: `Chancery keeps a state's critical registries alive abroad.

It replicates sealed registries to embassy sites in host states, keeps a
tamper-evident ledger (C2SP tlog-tiles) that anyone can verify, and governs
everything by a signed charter: who may act, and with which quorum.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionLine(site.ReadBuild()),
	}
	// --version prints the same line as "chancery version".
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().String("context", "", "the client context to take defaults from (default: $"+envContext+", or the current one; see chancery context)")
	// Before every command: warn about old flag spellings and fill the
	// flags left unset from the context.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return applyContext(cmd) }
	root.AddCommand(
		newInitCmd(),
		newDemoCmd(),
		newCharterCmd(),
		newVerifyCmd(),
		newRepairCmd(),
		newCustodyCmd(),
		newOrderCmd(),
		newServeCmd(),
		newImportCmd(),
		newPostgresCmd(),
		newRestoreCmd(),
		newBundleCmd(),
		newStatusCmd(),
		newUnsealCmd(),
		newSealCmd(),
		newReconcileCmd(),
		newDrillCmd(),
		newSiteKeyCmd(),
		newRecordsCmd(),
		newBlobsCmd(),
		newOperatorCmd(),
		newUICmd(),
		newExtractCmd(),
		newCaseCmd(),
		newPaymentCmd(),
		newNoticeCmd(),
		newMessageCmd(),
		newContextCmd(),
		newVersionCmd(),
		newGendocsCmd(),
	)
	return root
}
