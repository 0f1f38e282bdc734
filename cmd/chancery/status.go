package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/chancery-gov/chancery/siteapi"
	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var (
		asJSON           bool
		timeout          time.Duration
		charterFile, pin string
	)
	cmd := &cobra.Command{
		Use:   "status URL",
		Short: "Show each site's replication receipt and recovery point (RPO), as the home sees it",
		Long: `Status asks a home site (its base URL) for what every embassy site has
acknowledged: the ledger size its latest receipt covers, and the recovery
point — how many entries, and how many seconds of writes, that site would
lose if the home were lost now. A receipt is the site's cosignature over a
checkpoint: the home verified it before counting it.

If a site's RPO grows, see docs/operations.md, "When a site falls behind".`,
		Example: `  chancery status http://127.0.0.1:7001
  chancery status --charter D/charter.yaml --pin-site home https://home.example:7001`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			client, err := siteClient(args[0], charterFile, pin, true)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			st, err := siteapi.FetchStatus(ctx, args[0], client)
			if err != nil {
				return fmt.Errorf("status of %s: %w", args[0], err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the home")
	cmd.Flags().StringVar(&charterFile, "charter", "", "the guest's charter, for --pin-site")
	cmd.Flags().StringVar(&pin, "pin-site", "", "trust only the TLS key the charter pins for this site id (a site serving with tls_key)")
	return cmd
}

func printStatus(w io.Writer, st *siteapi.ReplicationStatus) {
	fmt.Fprintf(w, "guest %s: home ledger holds %d entries\n\n", st.Guest, st.Size)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tRECEIPT\tRPO ENTRIES\tRPO\tCONNECTED\tSENT\tLAST ERROR")
	for _, l := range st.Sites {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%v\t%s\t%s\n", l.Site, l.Size, l.Entries,
			(time.Duration(l.Seconds * float64(time.Second))).Round(time.Millisecond), l.Connected, humanBytes(l.BytesSent), l.LastError)
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
