package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

func newExtractCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Certified extracts: issue one at the active site, verify one offline",
	}
	cmd.AddCommand(newExtractIssueCmd(), newExtractVerifyCmd())
	return cmd
}

func newExtractIssueCmd() *cobra.Command {
	var (
		f      siteFlags
		fields []string
		out    string
	)
	cmd := &cobra.Command{
		Use:   "issue REGISTRY ID --field NAME... --out PREFIX",
		Short: "Issue a certified extract of a record at the site where the guest is active",
		Long: `Issue asks the site where the guest is active (home, or an activated
embassy) for a certified extract of a record's latest version, certifying
the fields named with --field, signed as the official. The read is an
access entry; the act is recorded in the ledger; the site waits until
other sites have cosigned a checkpoint that covers it. It writes
PREFIX.cose (the COSE_Sign1 with its receipt), PREFIX.qr.txt (the QR
code's text), PREFIX.qr.png and PREFIX.pdf, each of which
"chancery extract verify" checks offline (docs/extracts.md).`,
		Example: `  chancery extract issue population DR-0001 --field national_id --field last_name --out dr-0001 --site home --official registrar
  chancery extract verify dr-0001.pdf --charter charter.yaml`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(fields) == 0 || out == "" {
				return fmt.Errorf("%s: --field (at least one) and --out are required", cmd.CommandPath())
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				ex, err := t.client().Extract(ctx, args[0], args[1], fields...)
				if err != nil {
					return err
				}
				for _, o := range []struct {
					ext  string
					data []byte
				}{{".cose", ex.COSE}, {".qr.txt", []byte(ex.QRText + "\n")}, {".qr.png", ex.QRPNG}, {".pdf", ex.PDF}} {
					if err := os.WriteFile(out+o.ext, o.data, 0o644); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "wrote %s%s (%d bytes)\n", out, o.ext, len(o.data))
				}
				return nil
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringArrayVar(&fields, "field", nil, "a field of the record the extract certifies (repeatable)")
	cmd.Flags().StringVar(&out, "out", "", "prefix of the files written: PREFIX.cose, PREFIX.qr.txt, PREFIX.qr.png, PREFIX.pdf")
	return cmd
}

type extractVerifyOptions struct {
	file        string
	charterFile string
	online      string // a site id or URL: also ask it whether a later version supersedes the extract
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
the record supersedes the extract needs a site. With --online SITE (a site
id of the charter, reached with its pinned TLS key, or the guest's URL at a
site) verify also asks that site, any site of the guest, standby included,
and fails if the extract is superseded (docs/extracts.md, online check).

Exit status is non-zero when any check fails; the message names it.`,
		Example: `  chancery extract verify birth-certificate.pdf --charter charter.yaml
  chancery extract verify qr.png --charter charter.yaml
  chancery extract verify qr.png --charter charter.yaml --online embassy-south`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return runExtractVerify(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.charterFile, "charter", "", "the guest's charter (default: the context's)")
	tieContext(cmd.Flags(), "charter", "charter")
	cmd.Flags().StringVar(&o.online, "online", "", "also ask this site (a site id of the charter, or a URL) whether a later version supersedes the extract")
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
		if o.online != "" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return checkOnline(ctx, w, c, o.online, r.Claims)
		}
	} else {
		fmt.Fprintln(w, "VALID")
	}
	return nil
}
