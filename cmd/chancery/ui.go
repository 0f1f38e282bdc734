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
	cmd.AddCommand(newUILoginCmd("login", "official"), newUILoginCmd("operator-login", "host"))
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
