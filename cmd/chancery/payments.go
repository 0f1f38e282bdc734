package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/services/procedure"
)

func newPaymentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "payment",
		Short: "Benefit payment runs: fetch a run's pain.001 file, check a file against its approval",
		Long: `A benefit payment run is a case of a procedure whose output is an ISO 20022
pain.001.001.09 file (docs/procedures.md): "chancery case start" opens it,
officials approve it with "chancery case sign" over the file's SHA-256,
and the approval is recorded in the ledger. These commands fetch the file
and check a file against the approval, at a site or offline.`,
	}
	cmd.AddCommand(newPaymentFileCmd(), newPaymentCheckCmd())
	return cmd
}

func newPaymentFileCmd() *cobra.Command {
	var (
		f             siteFlags
		out, approval string
	)
	cmd := &cobra.Command{
		Use:   "file CASE --out FILE",
		Short: "Download a payment run's pain.001 file (and, once approved, its approval)",
		Long: `File downloads the pain.001.001.09 file of payment run CASE to --out and
prints its SHA-256, the digest the approvers sign (give it to
"chancery case sign --subject" to sign only that file). Once the run is
approved, --approval writes the approval (JSON: the digest, the totals
and every approver's signature), which the bank checks the file against
with "chancery payment check FILE --approval APPROVAL --charter CHARTER",
offline. The download is an access entry where reads are recorded.`,
		Example: `  chancery payment file case-0123456789abcdef0123456789abcdef --out pensions.xml --approval pensions.approval.json --site embassy-north --official cio`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("%s: --out is required", cmd.CommandPath())
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				cl := t.client()
				file, err := cl.PaymentFile(ctx, args[0])
				if err != nil {
					return err
				}
				if err := os.WriteFile(out, file, 0o600); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "wrote %s (%d bytes), SHA-256 %s\n", out, len(file), procedure.Digest(file))
				if approval == "" {
					return nil
				}
				a, err := cl.Approval(ctx, args[0])
				if err != nil {
					return fmt.Errorf("approval (the file was written): %w", err)
				}
				b, err := json.MarshalIndent(a, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(approval, append(b, '\n'), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %s: approved at ledger index %d, %d transfers, total %s\n", approval, a.Index, a.NbOfTxs, a.CtrlSum)
				return nil
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&out, "out", "", "where to write the pain.001 file")
	cmd.Flags().StringVar(&approval, "approval", "", "also write the run's approval (JSON) here; the run must be approved")
	return cmd
}

func newPaymentCheckCmd() *cobra.Command {
	var (
		f                siteFlags
		caseID, approval string
	)
	cmd := &cobra.Command{
		Use:   "check FILE (--approval APPROVAL --charter CHARTER | --case CASE)",
		Short: "Check that a pain.001 file is the one officials approved",
		Long: `Check is the bank's check of a payment file it received.

Offline, with --approval: the file's SHA-256 must be the approval's
digest, and each step of the charter's payment procedure must carry valid
Ed25519 signatures over that digest by enough distinct officials holding
the step's role, verified against the charter alone (read with its
history, its signatures checked). No network is used.

Online, with --case: the site where the guest is active checks the file
against the approval recorded in its ledger.

Exit status is non-zero when the file is not the approved one; the
message says which check failed.`,
		Example: `  chancery payment check pensions.xml --approval pensions.approval.json --charter charter.yaml
  chancery payment check pensions.xml --case case-0123456789abcdef0123456789abcdef --site embassy-north --official cio`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
			}
			w := cmd.OutOrStdout()
			switch {
			case approval != "" && caseID != "":
				return fmt.Errorf("%s: give --approval (offline) or --case (at a site), not both", cmd.CommandPath())
			case approval != "":
				charterFile := f.charter
				if charterFile == "" && f.stateDir != "" {
					charterFile = state.Layout{Dir: f.stateDir}.Charter()
				}
				return checkPaymentOffline(w, args[0], file, approval, charterFile)
			case caseID != "":
				return f.run(cmd, func(ctx context.Context, t *target) error {
					r, err := t.client().CheckPaymentFile(ctx, caseID, file)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "APPROVED: %s (SHA-256 %s) is the file approved in case %s at ledger index %d: %d transfers, total %s\n",
						args[0], r.Digest, caseID, r.Approval.Index, r.Approval.NbOfTxs, r.Approval.CtrlSum)
					return nil
				})
			}
			return fmt.Errorf("%s: --approval FILE (offline, with --charter) or --case CASE (at a site) is required", cmd.CommandPath())
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&caseID, "case", "", "check at the site against the approval its ledger records for this case")
	cmd.Flags().StringVar(&approval, "approval", "", "check offline against this approval (JSON, from chancery payment file --approval)")
	return cmd
}

// checkPaymentOffline is the bank's offline check of a payment file.
func checkPaymentOffline(w io.Writer, name string, file []byte, approvalFile, charterFile string) error {
	if charterFile == "" {
		return fmt.Errorf("payment check: no charter: give --charter FILE (or a context that names one)")
	}
	c, err := charter.ReadVerified(charterFile)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(approvalFile)
	if err != nil {
		return err
	}
	var a procedure.Approval
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return fmt.Errorf("approval %s: %w", approvalFile, err)
	}
	fmt.Fprintf(w, "charter: %s v%d, signatures verified\n", c.Guest.ID, c.Version)
	if err := procedure.VerifyPaymentFile(c, file, &a); err != nil {
		return fmt.Errorf("%s: NOT the approved file: %w", name, err)
	}
	signers := 0
	for _, s := range a.Steps {
		signers += len(s.Signatures)
	}
	fmt.Fprintf(w, "ok  SHA-256 of %s is the approved digest %s\n", name, a.Digest)
	fmt.Fprintf(w, "ok  %d approvers' signatures verify under the charter's keys and satisfy procedure %s's steps\n", signers, a.Procedure)
	fmt.Fprintf(w, "APPROVED: case %s, message %s, %d transfers, total %s\n", a.Case, a.MsgID, a.NbOfTxs, a.CtrlSum)
	return nil
}
