package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/site/ui"
)

func newBlobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "blobs",
		Short: "Upload and download records' attachments at a site, as an official",
		Long: `An attachment is uploaded first ("blobs put", which answers with a
reference valid for a while), then named in a record version ("records put
--attach NAME=REF"). "blobs get" downloads an attachment of a record
version. The flags are those of "chancery records".`,
	}
	cmd.AddCommand(newBlobsPutCmd(), newBlobsGetCmd())
	return cmd
}

func newBlobsPutCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "put REGISTRY FILE",
		Short: "Upload a file to attach to a record of a registry; prints its reference",
		Example: `  chancery blobs put land deed.pdf --state ./dr --official registrar
  chancery blobs put land deed.pdf --official registrar --json | jq -r .ref`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := os.Open(args[1])
			if err != nil {
				return fmt.Errorf("blobs put: %w", err)
			}
			defer file.Close()
			return f.run(cmd, func(ctx context.Context, t *target) error {
				res, err := t.client().PutBlob(ctx, args[0], file)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, res)
				}
				fmt.Fprintf(w, "uploaded %s (%s) to registry %s\nref %s (valid until %s): attach it with\n  chancery records put %s ID FILE.json --attach NAME=%s\n",
					args[1], ui.HumanBytes(res.Size), args[0], res.Ref, res.Expires.UTC().Format(time.RFC3339), args[0], res.Ref)
				return nil
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

func newBlobsGetCmd() *cobra.Command {
	var (
		f       siteFlags
		out     string
		atIndex uint64
	)
	cmd := &cobra.Command{
		Use:     "get REGISTRY ID NAME",
		Short:   "Download an attachment of a record (to stdout, or to --out FILE)",
		Example: `  chancery blobs get land P-1 deed.pdf --state ./dr --official registrar --out deed.pdf`,
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var at registry.AsOf
			if cmd.Flags().Changed("at-index") {
				at.Index = &atIndex
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				var w io.Writer = cmd.OutOrStdout()
				if out != "" {
					file, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
					if err != nil {
						return err
					}
					defer file.Close()
					w = file
				}
				n, err := t.client().GetAttachment(ctx, args[0], args[1], args[2], at, w)
				if err != nil {
					return err
				}
				if out != "" {
					if file, ok := w.(*os.File); ok {
						if err := file.Close(); err != nil {
							return fmt.Errorf("write %s: %w", out, err)
						}
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%s)\n", out, ui.HumanBytes(n))
				}
				return nil
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the attachment to this new file (mode 0600) instead of stdout")
	cmd.Flags().Uint64Var(&atIndex, "at-index", 0, "the version in force at this ledger index")
	return cmd
}
