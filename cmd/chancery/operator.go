package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chancery-gov/chancery/site/ui"
	"github.com/spf13/cobra"
)

func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "The host operator's view of a guest at its site: status, and notice of suspension",
		Long: `A host state runs an embassy site for a guest. The operator commands call
the site's host-operator API (docs/api.md), signed with the host's key
(STATE/keys/host-ID.key; --host defaults to the host the charter names for
--site). A host sees sizes, counts and health, never content, and may act
only as the guest's charter allows (safeguards.operator_may).`,
	}
	cmd.AddCommand(newOperatorStatusCmd(), newOperatorSuspendCmd())
	return cmd
}

func newOperatorStatusCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show what the host may see of the guest at its site: mode, sizes, quota, last batch",
		Example: `  chancery operator status --state ./dr --site embassy-north`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				st, err := t.operator().Status(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, st)
				}
				quota := "none"
				if st.QuotaBytes > 0 {
					quota = ui.HumanBytes(st.QuotaBytes)
				}
				fmt.Fprintf(w, "guest %s at site %s: %s, epoch %d\n", st.Guest, st.Site, st.Mode, st.Epoch)
				fmt.Fprintf(w, "ledger      %d entries (checkpoint %d)\n", st.Entries, st.Checkpoint)
				fmt.Fprintf(w, "storage     %s used, quota %s, %s free on disk, %d packs\n", ui.HumanBytes(st.UsedBytes), quota, ui.HumanBytes(st.FreeBytes), st.Objects)
				last := "never"
				if st.LastBatch != nil {
					last = fmt.Sprintf("%s (%s ago)", st.LastBatch.UTC().Format(time.RFC3339), time.Duration(st.SinceBatch*float64(time.Second)).Round(time.Second))
				}
				fmt.Fprintf(w, "batches     %d received, %d refused, last %s\n", st.Batches, st.Refused, last)
				if sp := st.Suspension; sp != nil {
					fmt.Fprintf(w, "SUSPENSION  given %s by %s, effective %s (in force: %v): %s\n", sp.GivenAt.UTC().Format(time.RFC3339), sp.Host,
						sp.EffectiveAt.UTC().Format(time.RFC3339), st.SuspendedNow, sp.Reason)
				}
				return nil
			})
		},
	}
	f.register(cmd, "host")
	return cmd
}

func newOperatorSuspendCmd() *cobra.Command {
	var (
		f      siteFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "suspend --reason TEXT",
		Short: "Give notice that the host will suspend the guest at its site",
		Long: `Suspend gives the site the host's signed notice. It takes effect only once
the guest's writer has recorded it in the ledger and the charter's notice
period (safeguards.suspend_notice) has run; the site answers with the notice
and when it becomes effective.`,
		Example: `  chancery operator suspend --state ./dr --site embassy-north --reason "court order 2026/17"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return fmt.Errorf("operator suspend: --reason is required: it is recorded in the guest's ledger")
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				sp, err := t.operator().Suspend(ctx, reason)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, sp)
				}
				fmt.Fprintf(w, "notice given: host %s suspends guest %s at site %s from %s (once the writer records it): %s\n",
					sp.Host, sp.Guest, sp.Site, sp.EffectiveAt.UTC().Format(time.RFC3339), sp.Reason)
				return nil
			})
		},
	}
	f.register(cmd, "host")
	cmd.Flags().StringVar(&reason, "reason", "", "why the host suspends the guest (required; recorded in the guest's ledger)")
	return cmd
}
