package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newTrackerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tracker",
		Short: "Read a citizen's data tracker, as an auditor the charter names",
		Long: `A citizen's data tracker lists who read their records (their person
record and every record linked to them), when, at which site, and for what
purpose: officials by id, relying parties by client id, the citizen
themself. The citizen reads it after signing in to the portal; officials
the charter names in services.access.auditors read any citizen's tracker
with these commands, over the officials' signed API (docs/identity.md).

The auditor's read is itself an access entry, with the purpose given, so
the citizen sees in their tracker that an auditor looked and why.`,
	}
	cmd.AddCommand(newTrackerShowCmd())
	return cmd
}

func newTrackerShowCmd() *cobra.Command {
	var (
		f       siteFlags
		person  string
		purpose string
	)
	cmd := &cobra.Command{
		Use:   "show --person ID --purpose WHY",
		Short: "List the reads of a citizen's records (an auditor's read, itself recorded)",
		Example: `  chancery tracker show --person DR-CITIZEN-0001 --purpose "complaint 2026/17" --state ./dr --official min-justice
  chancery tracker show --person DR-CITIZEN-0001 --purpose "annual audit" --site embassy-north --official min-justice --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if person == "" {
				return fmt.Errorf("%s: --person is required", cmd.CommandPath())
			}
			if purpose == "" {
				return fmt.Errorf("%s: --purpose is required: the read is recorded with it, and the citizen sees it", cmd.CommandPath())
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				tr, err := t.client().Tracker(ctx, person, purpose)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, tr)
				}
				fmt.Fprintf(w, "%d read(s) of the records of %s\n", len(tr.Reads), tr.Person)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tSITE\tREGISTRY\tKIND\tREADER\tWHO\tPURPOSE\t")
				for _, s := range tr.Reads {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Time.UTC().Format(time.RFC3339), s.Site, s.Registry, s.Kind, s.Reader, s.Who, s.Purpose)
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&person, "person", "", "the citizen's person id (their person record's id)")
	cmd.Flags().StringVar(&purpose, "purpose", "", "why the auditor reads the tracker (recorded in the access entry)")
	return cmd
}
