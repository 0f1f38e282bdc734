package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/siteapi"
)

func newCaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "case",
		Short: "Declared procedures: open a case, sign its steps, show it, list a role's queue",
		Long: `A case is one run of a procedure the charter declares (services.procedures,
docs/procedures.md): it opens with a validated input, each step is signed
by officials holding the step's role, and the decision lands in the ledger
with every record it writes as one batch. These commands act at the site
where the guest is active, signed as the official.`,
	}
	cmd.AddCommand(newCaseStartCmd(), newCaseSignCmd(), newCaseShowCmd(), newCaseQueueCmd())
	return cmd
}

// readInput reads a case's input: the --input file ("-" for stdin) or the
// --input-json text.
func readInput(cmd *cobra.Command, file, text string) (json.RawMessage, error) {
	switch {
	case file != "" && text != "":
		return nil, fmt.Errorf("give --input or --input-json, not both")
	case text != "":
		return json.RawMessage(text), nil
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
		return b, err
	case file != "":
		return os.ReadFile(file)
	}
	return nil, fmt.Errorf("--input FILE or --input-json JSON is required: the case's input")
}

func newCaseStartCmd() *cobra.Command {
	var (
		f           siteFlags
		input, text string
	)
	cmd := &cobra.Command{
		Use:   "start PROCEDURE --input FILE",
		Short: "Open a case of a declared procedure",
		Long: `Start opens a case of PROCEDURE with the input given as JSON (--input FILE,
"-" for stdin, or --input-json). The site validates the input against the
procedure's schema and refuses it naming the field, recording nothing;
the official who signs the request must hold one of the roles that may
start the procedure. It prints the case id and the step it waits for,
and the command that signs it.`,
		Example: `  chancery case start register-birth --input-json '{"child_id":"DR-2026000001","given_name":"Nova","family_name":"Horak","birth_date":"2026-11-30","place_of_birth":"Northland","mother_id":"DR-0000001"}' --site embassy-north --official registrar`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readInput(cmd, input, text)
			if err != nil {
				return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				r, err := t.client().StartCase(ctx, args[0], in)
				if err != nil {
					return err
				}
				return f.printCase(cmd.OutOrStdout(), t, r)
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&input, "input", "", `file holding the case's input as a JSON object ("-": stdin)`)
	cmd.Flags().StringVar(&text, "input-json", "", "the case's input as JSON text")
	return cmd
}

func newCaseSignCmd() *cobra.Command {
	var (
		f             siteFlags
		step, subject string
	)
	cmd := &cobra.Command{
		Use:   "sign CASE",
		Short: "Sign the step a case waits for, with the official's key",
		Long: `Sign reads the case (an access entry where reads are recorded), shows
what is signed — the procedure, the step, the subject (for a payment run,
the SHA-256 of its pain.001 file) — and signs the step with the official's
Ed25519 key, as orders are signed ("chancery-case-step/v1", then the
claim's canonical JSON: docs/procedures.md). The site checks the signature
against the charter and that the official holds the step's role and has
not signed it before; the signature that completes the last step decides
the case, its effects landing in the same ledger batch.

--step and --subject make the signature conditional: it is not made when
the case waits for another step, or when its subject is not the one the
official reviewed (e.g. the digest "chancery payment file" printed).`,
		Example: `  chancery case sign case-0123456789abcdef0123456789abcdef --site embassy-north --official registrar
  chancery case sign case-0123456789abcdef0123456789abcdef --subject 9f0c… --official min-interior`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				cl := t.client()
				r, err := cl.Case(ctx, args[0])
				if err != nil {
					return err
				}
				claim, err := r.Claim(t.signer.Official)
				if err != nil {
					return fmt.Errorf("case %s is %s: %w", args[0], r.Case.State, err)
				}
				if step != "" && claim.Step != step {
					return fmt.Errorf("case %s waits for step %s, not %s: nothing signed", args[0], claim.Step, step)
				}
				if subject != "" && !strings.EqualFold(claim.Subject, subject) {
					return fmt.Errorf("case %s: subject is %s, not the %s given: nothing signed", args[0], claim.Subject, subject)
				}
				sig, err := procedure.SignStep(claim, t.signer.Key)
				if err != nil {
					return err
				}
				if !f.jsonOutput(cmd.OutOrStdout()) {
					fmt.Fprintf(cmd.OutOrStdout(), "signing step %s of %s (%s) as %s, subject %s\n", claim.Step, claim.Case, claim.Procedure, claim.Official, claim.Subject)
				}
				out, err := cl.SubmitStep(ctx, &procedure.Submission{Case: claim.Case, Step: claim.Step, Official: claim.Official, Sig: sig})
				if err != nil {
					return err
				}
				return f.printCase(cmd.OutOrStdout(), t, out)
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&step, "step", "", "sign only if the case waits for this step")
	cmd.Flags().StringVar(&subject, "subject", "", "sign only if the case's subject (hex SHA-256) is this")
	return cmd
}

func newCaseShowCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "show CASE",
		Short: "Show a case: its state, input, steps and decision",
		Long: `Show reads a case's latest version (an access entry where reads are
recorded) and prints its state, input, the signatures of its steps, the
step it waits for and, once decided, the records the decision wrote.`,
		Example: `  chancery case show case-0123456789abcdef0123456789abcdef --site embassy-north --official registrar`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, t *target) error {
				r, err := t.client().Case(ctx, args[0])
				if err != nil {
					return err
				}
				return f.printCase(cmd.OutOrStdout(), t, r)
			})
		},
	}
	f.register(cmd, "official")
	return cmd
}

func newCaseQueueCmd() *cobra.Command {
	var (
		f    siteFlags
		role string
	)
	cmd := &cobra.Command{
		Use:   "queue --role ROLE",
		Short: "List the open cases waiting for a step a role signs",
		Long: `Queue lists the open cases whose next step is signed by officials holding
ROLE, oldest first, with the signatures the step has and needs. Listing
is recorded like a search where reads are recorded.`,
		Example: `  chancery case queue --role registrar --site embassy-north --official registrar`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return fmt.Errorf("%s: --role is required", cmd.CommandPath())
			}
			return f.run(cmd, func(ctx context.Context, t *target) error {
				q, err := t.client().Queue(ctx, role)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if f.jsonOutput(w) {
					return printJSON(w, q)
				}
				if len(q.Cases) == 0 {
					fmt.Fprintf(w, "no open case waits for role %s\n", role)
					return nil
				}
				for _, c := range q.Cases {
					fmt.Fprintf(w, "%s  %-20s step %-10s %d/%d signatures  opened %s by %s\n", c.Case, c.Procedure, c.Step, c.Signed, c.Signatures, c.Opened, c.Starter)
				}
				return nil
			})
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&role, "role", "", "the role whose queue to list")
	return cmd
}

// printCase prints a case: JSON for a program, lines for a person, with
// the command that signs its next step.
func (f *siteFlags) printCase(w io.Writer, t *target, r *siteapi.CaseResponse) error {
	if f.jsonOutput(w) {
		return printJSON(w, r)
	}
	c := r.Case
	fmt.Fprintf(w, "%s  %s  %s (version %d, ledger index %d)\n", c.ID, c.Procedure, c.State, r.Version, r.Index)
	fmt.Fprintf(w, "  opened %s by %s\n  input %s\n  subject %s\n", c.Opened.UTC().Format("2006-01-02T15:04:05Z"), c.Starter, c.Input, c.Subject)
	if p := c.Payment; p != nil {
		fmt.Fprintf(w, "  payment %s: %d transfers, total %s, as of ledger index %d, file digest %s\n", p.MsgID, p.NbOfTxs, p.CtrlSum, p.AsOf, p.Digest)
	}
	for _, s := range c.Steps {
		who := "official " + s.Official
		if s.Citizen != "" {
			who = "citizen " + s.Citizen
		}
		fmt.Fprintf(w, "  step %s signed by %s at %s\n", s.Step, who, s.At.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if d := c.Decision; d != nil {
		fmt.Fprintf(w, "  decided at %s, output %s\n", d.At.UTC().Format("2006-01-02T15:04:05Z"), d.Output)
		for _, e := range d.Effects {
			fmt.Fprintf(w, "    wrote %s/%s\n", e.Registry, e.ID)
		}
	}
	if s := r.Waiting; s != nil {
		who := "an official with role " + s.Role
		if s.Citizen != "" {
			who = "the citizen named in input." + s.Citizen
		}
		fmt.Fprintf(w, "  waits for step %s: %s (%d of %d signatures)\n", s.ID, who, procedure.Signed(c, s.ID), max(s.Signatures, 1))
		if s.Role != "" {
			fmt.Fprintf(w, "next: chancery case sign %s %s --official OFFICIAL\n", c.ID, t.again())
		}
	}
	return nil
}
