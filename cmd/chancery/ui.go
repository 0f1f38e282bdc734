package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/siteapi"
)

func newUICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Open the site's pages (/ui/) in a browser, signed in with your key",
		Long: `Every site serves pages under /ui/: the continuity dashboard for the
guest's officials, and the host console for the host's operator
(docs/ui.md). A browser session is opened by a request signed with the same
key as any API call: "ui login" asks the site for a single-use link, valid
for two minutes, and prints it; open it in a browser to start an eight-hour
session (an HttpOnly, Secure, SameSite=Strict cookie).`,
	}
	cmd.AddCommand(newUILoginCmd("login", "official"), newUILoginCmd("operator-login", "host"), newUIOrderCmd())
	return cmd
}

// newUIOrderCmd leaves an order at a site for the other officials to sign:
// the officials' desk lists it with who signed and who still must.
func newUIOrderCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "order ORDERFILE",
		Short: "Leave an order at a site, so the officials' desk shows who still must sign it",
		Long: `Order sends a continuity order file, signed by any number of officials
(even none), to the site in a request signed with your key. The site checks
every signature against the charter, merges them with those of copies left
before, and keeps the order in memory until it expires or is accepted. The
officials' desk (/ui/desk) lists it with who signed, what its quorum still
needs, and the command each official runs to sign it. Leave the file again
after signing it.`,
		Example: `  chancery ui order activate-north.order --site embassy-north --official min-interior`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			so, err := readOrderFile(args[0])
			if err != nil {
				return fmt.Errorf("ui order: %w", err)
			}
			raw, err := orderFileBytes(so)
			if err != nil {
				return fmt.Errorf("ui order %s: %w", args[0], err)
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				left, err := siteapi.LeaveOrder(ctx, t.http, t.url, t.guest, t.signer, raw)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, left)
				}
				fmt.Fprintf(w, "order %s waits at %s; signed by: %s\n", left.Order, strings.TrimSuffix(t.url, "/")+left.Desk, strings.Join(left.Signers, ", "))
				if left.Missing != "" {
					fmt.Fprintf(w, "still needed: %s\n", left.Missing)
				} else {
					fmt.Fprintf(w, "quorum met: submit it with chancery order submit %s\n", args[0])
				}
				return nil
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

func newUILoginCmd(use, who string) *cobra.Command {
	var f siteFlags
	short, example := "Print a single-use link that signs an official in to the site's pages",
		`  chancery ui login --site embassy-north --official min-interior
  chancery ui login --state ./dr --site home --official registrar`
	if who == "host" {
		short, example = "Print a single-use link that signs the host's operator in to the host console",
			`  chancery ui operator-login --state ./dr --site embassy-north`
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				var (
					l   *siteapi.UILogin
					err error
				)
				if who == "host" {
					l, err = t.operator().LoginPages(ctx)
				} else {
					l, err = siteapi.LoginPages(ctx, t.http, t.url, t.guest, t.signer)
				}
				if err != nil {
					return err
				}
				link := strings.TrimSuffix(t.url, "/") + l.Path
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, map[string]any{"url": link, "expires": l.Expires})
				}
				fmt.Fprintf(w, "Open this link in a browser before %s (it works once):\n\n  %s\n", l.Expires.Local().Format(time.Kitchen), link)
				return nil
			})
		},
	}
	f.register(cmd, who)
	return cmd
}
