package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/siteapi"
)

const drillProcedure = `A drill rehearses the activation of an embassy without fencing the home and
without giving the embassy the root key: the custodians' shares are opened
at the site and each verified against the custody package until the
threshold is reached, but never combined; a random sample of up to 100
record entries is checked against the ledger's signed tree (keyless: no
record is decrypted); RPO is measured; the shares are wiped and the site
returns to standby. Its signed report (format chancery-drill-report/v2,
check "keyless") is recorded in the guest's ledger.

The procedure, step by step:

  1. Officials draft and sign a drill order for the site, in the current
     epoch (the quorum is the charter's quorum.drill):
       chancery order new --action drill --charter charter.yaml \
           --site embassy-north --epoch 1 --expires 12h --out drill.order
       chancery order sign drill.order --official cio --key cio.key
  2. It is submitted to the site that writes now (normally the home):
       chancery order submit --site home drill.order
     Replication brings it to the embassy, which enters drill mode: it
     keeps receiving, nothing is fenced, and it measures how far behind the
     writer it is (RPO).
  3. An official opens the drill's unseal session at the embassy:
       chancery drill --site embassy-north --official cio --key cio.key
     It prints a one-time recipient for the custodians and writes the
     site's signed statement of it to drill-recipient.json.
  4. Each custodian, on their own machine, checks the statement against
     the charter and reseals their share to it:
       chancery custody reseal --custody custody.json --charter charter.yaml \
           --custodian ID --identity ID.key --recipient drill-recipient.json --out ID.share
  5. The shares are submitted; at the threshold the sample is checked:
       chancery drill submit --site embassy-north \
           --recipient drill-recipient.json ID.share...
     The site signs the report with its checkpoint key and the writer
     appends it to the ledger. A keyless report has no RTO: nothing is
     read at the site.
  6. Anyone reads the reports from the ledger:
       chancery drill report --ledger https://home.example/ledger --charter charter.yaml`

func newDrillCmd() *cobra.Command {
	var f siteFlags
	var recipientOut string
	cmd := &cobra.Command{
		Use:   "drill --site ID --official ID --key FILE",
		Short: "Rehearse continuity at an embassy under a drill order: open its sandbox unseal session",
		Long: `Drill opens the unseal session of the drill running at an embassy (step 3
below): the site must hold a drill order naming it (steps 1 and 2). The
request is signed by an official of the charter. It prints the session's
one-time recipient and what each custodian runs next.

` + drillProcedure,
		Example: `  chancery drill --site embassy-north --official cio --key D/keys/official-cio.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := f.client(cmd, true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			r, err := c.OpenDrillUnseal(ctx)
			if err != nil {
				return fmt.Errorf("drill at %s: %w", t.name(), err)
			}
			st, err := c.Drill(ctx)
			if err != nil {
				return fmt.Errorf("drill at %s: %w", t.name(), err)
			}
			if err := writeRecipientStatement(recipientOut, t.charterFile, r); err != nil {
				return fmt.Errorf("drill at %s: %w", t.name(), err)
			}
			printDrillSession(cmd.OutOrStdout(), t, recipientOut, st, r)
			return nil
		},
	}
	f.register(cmd, "official")
	cmd.Flags().StringVar(&recipientOut, "recipient-out", "drill-recipient.json", "file to write the site's signed recipient statement to")
	cmd.AddCommand(newDrillSubmitCmd(), newDrillStatusCmd(), newDrillReportCmd())
	return cmd
}

func printDrillSession(w io.Writer, t *target, statement string, st *siteapi.DrillStatus, r *siteapi.UnsealResponse) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("drill of order %s at %s (guest %s): unseal session %s, %d of %d shares, expires %s\n",
		st.Order, st.Site, st.Guest, r.Session, r.Have, r.Need, r.Expires.UTC().Format(time.RFC3339))
	p("recipient %s\n\n", r.Recipient)
	p("The site's signed statement of it is in %s. Each custodian then runs, on their own machine:\n", statement)
	p("  chancery custody reseal --custody custody.json --charter charter.yaml --custodian ID --identity ID.key --recipient %s --out ID.share\n", statement)
	p("and the shares are submitted (at the threshold the drill runs):\n")
	p("  chancery drill submit %s --session %s ID.share...\n", t.again(), r.Session)
}

func newDrillSubmitCmd() *cobra.Command {
	var f siteFlags
	var session, recipient string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "submit --site ID [--session ID | --recipient FILE] SHARE...",
		Short: "Submit custodians' shares to the drill's session; at the threshold, wait for the report",
		Long: `Submit sends custodians' shares, each sealed to the drill session's one-time
recipient (chancery custody reseal), to the drilled site (step 5 below). At
the threshold the site rebuilds the root key in memory, checks its sample,
wipes the keys and returns to standby; submit waits for the report (unless
--no-wait) and prints it, with its entry in the writer's ledger once the
writer has recorded it.

` + drillProcedure,
		Example: `  chancery drill submit --site embassy-north --recipient drill-recipient.json share-c1.age share-c2.age share-c3.age
  chancery drill submit --site embassy-north --session 3f9c... share-c1.age`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, t, err := f.client(cmd, false)
			if err != nil {
				return err
			}
			if session, err = sessionOf(session, recipient, t); err != nil {
				return fmt.Errorf("drill submit: %w", err)
			}
			w := cmd.OutOrStdout()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := c.Drill(ctx)
			if err != nil {
				return err
			}
			if !st.Running {
				return fmt.Errorf("no drill is running for %s at %s", t.guest, t.name())
			}
			unsealed := false
			for _, p := range args {
				sealed, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				r, err := c.SubmitDrillShare(ctx, session, sealed)
				if err != nil {
					return fmt.Errorf("share %s: %w", p, err)
				}
				fmt.Fprintf(w, "share %s accepted: %d of %d\n", p, r.Have, r.Need)
				if r.Unsealed {
					unsealed = true
					fmt.Fprintf(w, "threshold reached: the shares are verified and wiped, the drill checks its sample at %s\n", t.name())
					break
				}
			}
			if !unsealed || noWait {
				return nil
			}
			rep, st, err := waitDrillReport(ctx, c, st.Order)
			if err != nil {
				return err
			}
			printDrillSummary(w, rep, st)
			return nil
		},
	}
	f.register(cmd, "")
	cmd.Flags().StringVar(&session, "session", "", "the drill session id chancery drill printed (default: the session of --recipient)")
	cmd.Flags().StringVar(&recipient, "recipient", "", "the site's signed recipient statement chancery drill wrote (drill-recipient.json): its session")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the shares are in; chancery drill status shows the report later")
	return cmd
}

// waitDrillReport waits until the drill of order has its report and the
// writer has recorded it (or said why not, or the context ends).
func waitDrillReport(ctx context.Context, c *siteapi.ContinuityClient, order string) (*continuity.DrillReport, *siteapi.DrillStatus, error) {
	var rep *continuity.DrillReport
	for {
		st, err := c.Drill(ctx)
		if err != nil {
			return nil, nil, err
		}
		if st.LastReport != nil && st.LastReport.Order == order {
			rep = st.LastReport
			if st.LastReportIndex != nil {
				return rep, st, nil
			}
		}
		select {
		case <-ctx.Done():
			if rep != nil {
				return rep, st, nil // printed with why it is not recorded yet
			}
			return nil, nil, fmt.Errorf("the drill of order %s has no report yet: %w", order, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printDrillSummary(w io.Writer, rep *continuity.DrillReport, st *siteapi.DrillStatus) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	how := "verified"
	if rep.Check == continuity.DrillCheckKeyless {
		how = "verified keyless (in the signed tree, sealed, committed; not decrypted: the root key was never rebuilt at the site)"
	}
	p("drill of order %s at %s: %d of %d sampled records %s (%d record entries in scope, registries %s), %d failed\n",
		rep.Order, rep.Site, rep.Verified, rep.SampleSize, how, rep.Records, strings.Join(rep.Registries, ","), len(rep.Failures))
	for _, f := range rep.Failures {
		p("  FAILED entry %d (%s): %s\n", f.Index, f.Registry, f.Reason)
	}
	if rep.Error != "" {
		p("  the drill did not finish: %s\n", rep.Error)
	}
	if rep.FirstRead != nil {
		p("RTO %s (from the later of the order's arrival and the threshold of shares to the first record served)\n", rtoText(rep))
	} else {
		p("RTO %s\n", rtoText(rep))
	}
	p("RPO %s\n", rpoText(rep))
	p("shares wiped; guest %s is %s at %s again\n", rep.Guest, st.Mode, rep.Site)
	switch {
	case st.LastReportIndex != nil:
		p("report signed by %s and recorded in the writer's ledger at entry %d\n", rep.Site, *st.LastReportIndex)
	case st.LastReportError != "":
		p("report NOT recorded in the writer's ledger yet (the site keeps trying): %s\n", st.LastReportError)
	default:
		p("report not recorded in the writer's ledger yet (the site keeps trying)\n")
	}
}

func rtoText(r *continuity.DrillReport) string {
	if r.FirstRead == nil {
		if r.Check == continuity.DrillCheckKeyless {
			return "not measured (a keyless drill serves no record)"
		}
		return "not measured (no record was served)"
	}
	return fmt.Sprintf("%.3fs", r.RTOSeconds)
}

func rpoText(r *continuity.DrillReport) string {
	if r.RPOBasis == continuity.RPOBasisOrder {
		return fmt.Sprintf("≥ %.3fs (the writer was not reachable: the order's own delay)", r.RPOSeconds)
	}
	return fmt.Sprintf("%d entries, %.3fs behind the writer", r.RPOEntries, r.RPOSeconds)
}

func newDrillStatusCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "status --site ID",
		Short: "Show the drill running at a site (session, shares) and its last report",
		Long: `Status prints, as JSON, the guest's drill at a site: whether a drill runs,
under which order, its unseal session and shares, whether the sandbox holds
keys now, and the last report with its entry in the writer's ledger (or why
it is not recorded yet).`,
		Example: `  chancery drill status --site embassy-north`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := f.client(cmd, false)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := c.Drill(ctx)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), st)
		},
	}
	f.register(cmd, "")
	return cmd
}

// drillReportOptions are the flags of `drill report`.
type drillReportOptions struct {
	Ledger   string
	Charters []string
	PinSite  string
	JSON     bool
}

func newDrillReportCmd() *cobra.Command {
	var o drillReportOptions
	cmd := &cobra.Command{
		Use:   "report --ledger DIR|URL [--charter FILE]...",
		Short: "Read the drill reports in a guest's ledger, check them and show them as a table",
		Long: `Report reads a guest's ledger (a ledger directory, D/sites/<site>/ledger, or
the URL a site serves it at), finds every drill-report entry (step 6 below)
and shows them: site, when, RTO, RPO, records sampled, verified and failed,
and each failure with the ledger entry it names.

Each report is checked: its signature by the drilled site's checkpoint key
in the charter, a drill order for that site earlier in the ledger, and the
entry's inclusion in the ledger's checkpoint, whose signature is checked
with the charter's site keys. The charter comes from --charter (every
version, oldest first) or, for a directory, from beside the ledger; without
one nothing is checked and the output says so. Run chancery verify to audit
the ledger as a whole.

Exits non-zero if a report does not check out.

` + drillProcedure,
		Example: `  chancery drill report --ledger D/sites/home/ledger
  chancery drill report --ledger https://home.example/ledger --charter charter.yaml --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrillReport(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Ledger, "ledger", "", "the ledger directory or URL (required)")
	fl.StringArrayVar(&o.Charters, "charter", nil, "charter file; repeat for every version of an amended charter, oldest first")
	fl.StringVar(&o.PinSite, "site", "", "for an https URL: the site's id in the charter (--charter); only the TLS key the charter pins for it is trusted")
	fl.StringVar(&o.PinSite, "pin-site", "", "old spelling of --site")
	aliasFlag(fl, "pin-site", "--site SITE-ID")
	fl.BoolVar(&o.JSON, "json", false, "print the reports and their checks as JSON")
	cmd.MarkFlagRequired("ledger")
	return cmd
}

func runDrillReport(ctx context.Context, w io.Writer, o drillReportOptions) error {
	l, err := audit.Open(audit.Source{Target: o.Ledger, Charters: o.Charters, PinSite: o.PinSite})
	if err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	a, err := l.DrillReports(ctx)
	if err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	if o.JSON {
		rows := a.Rows
		if rows == nil {
			rows = []*audit.DrillRow{}
		}
		if err := printJSON(w, rows); err != nil {
			return err
		}
	} else {
		renderDrillRows(w, a)
	}
	if a.Bad > 0 {
		return fmt.Errorf("drill report: %d of %d drill reports do not check out", a.Bad, len(a.Rows))
	}
	return nil
}

func renderDrillRows(w io.Writer, a *audit.DrillAudit) {
	cp, rows := a.Checkpoint, a.Rows
	cpNote := "signatures NOT CHECKED: no charter was given or found beside the ledger"
	if cp.Checked {
		cpNote = "checkpoint signed by " + strings.Join(cp.Signers, ", ")
	}
	fmt.Fprintf(w, "ledger %s: %d entries, %s\n", cp.Origin, cp.Size, cpNote)
	if len(rows) == 0 {
		fmt.Fprintf(w, "no drill report in the ledger\n")
		return
	}
	fmt.Fprintf(w, "%d drill report(s):\n\n", len(rows))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tFINISHED (UTC)\tORDER\tENTRY\tRTO\tRPO\tSAMPLE\tVERIFIED\tFAILED\tCHECK")
	for _, r := range rows {
		rep := r.Report
		if rep == nil {
			fmt.Fprintf(tw, "?\t%s\t?\t%d\t\t\t\t\t\t%s\n", r.Recorded.Format(time.DateTime), r.Index, short(r.Check, 60))
			continue
		}
		rto := "-"
		if rep.FirstRead != nil {
			rto = fmt.Sprintf("%.3fs", rep.RTOSeconds)
		}
		rpo := fmt.Sprintf("%d entries, %.3fs", rep.RPOEntries, rep.RPOSeconds)
		if rep.RPOBasis == continuity.RPOBasisOrder {
			rpo = fmt.Sprintf("≥ %.3fs (order)", rep.RPOSeconds)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", rep.Site, rep.Finished.UTC().Format(time.DateTime), short(rep.Order, 12),
			r.Index, rto, rpo, rep.SampleSize, rep.Verified, len(rep.Failures), short(r.Check, 60))
	}
	tw.Flush()
	for _, r := range rows {
		rep := r.Report
		if rep == nil || (len(rep.Failures) == 0 && rep.Error == "" && !r.Bad) {
			continue
		}
		fmt.Fprintf(w, "\n%s, drill order %s (entry %d):\n", rep.Site, rep.Order, r.Index)
		if r.Bad {
			fmt.Fprintf(w, "  check: %s\n", r.Check)
		}
		if rep.Error != "" {
			fmt.Fprintf(w, "  the drill did not finish: %s\n", rep.Error)
		}
		for _, f := range rep.Failures {
			fmt.Fprintf(w, "  FAILED entry %d (%s): %s\n", f.Index, f.Registry, f.Reason)
		}
	}
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
