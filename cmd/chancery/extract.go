package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

func newExtractCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Certified extracts: verify one offline",
	}
	cmd.AddCommand(newExtractVerifyCmd())
	return cmd
}

type extractVerifyOptions struct {
	file        string
	charterFile string
}

func newExtractVerifyCmd() *cobra.Command {
	var o extractVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify FILE|QR.png|PDF --charter charter.yaml",
		Short: "Verify a certified extract offline, with the charter alone",
		Long: `Verify checks a certified extract without a network: the state's
signature (the extract key the charter publishes, of the generation the
extract names, valid in its epoch), the certified claims, the inclusion
proof of the act's ledger entry in the receipt's checkpoint, that
checkpoint's signature by a site's log key and the cosignatures of at
least the number of other sites the charter requires.

FILE is a PDF issued with the extract (the extract is embedded in it), a
PNG of its QR code, a file holding the QR code's text ("CX1:..."), the
COSE_Sign1 bytes, or an SD-JWT VC of the extract.

The charter is read with its history (charter.v1.yaml ... beside it) and
its signatures are checked first. Every check made is printed. "As of
checkpoint N" is what an offline check can say: whether a later version of
the record supersedes the extract needs a site (the online check).

Exit status is non-zero when any check fails; the message names it.`,
		Example: `  chancery extract verify birth-certificate.pdf --charter charter.yaml
  chancery extract verify qr.png --charter charter.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return runExtractVerify(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.charterFile, "charter", "", "the guest's charter (default: the context's)")
	tieContext(cmd.Flags(), "charter", "charter")
	return cmd
}

func runExtractVerify(o extractVerifyOptions, w io.Writer) error {
	if o.charterFile == "" {
		return fmt.Errorf("extract verify: no charter: give --charter FILE (or a context that names one)")
	}
	c, err := charter.ReadVerified(o.charterFile)
	if err != nil {
		return err
	}
	v, err := offline.NewVerifier(c)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(o.file)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "charter: %s v%d, signatures verified\n", c.Guest.ID, c.Version)
	r, _, err := extract.VerifyFile(v, data)
	if r != nil {
		for _, ch := range r.Checks {
			fmt.Fprintf(w, "ok  %s\n", ch)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	if r.Claims != nil {
		fmt.Fprintf(w, "\ncertified: %s/%s version %d\n", r.Claims.Registry, r.Claims.Record, r.Claims.Version)
		keys := make([]string, 0, len(r.Claims.Fields))
		for k := range r.Claims.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %v\n", k, r.Claims.Fields[k])
		}
		fmt.Fprintf(w, "VALID as of checkpoint %d (epoch %d), written by %s, cosigned by %v\n", r.Checkpoint.Size, r.Checkpoint.Epoch, r.Writer, r.Cosigners)
	} else {
		fmt.Fprintln(w, "VALID")
	}
	return nil
}
