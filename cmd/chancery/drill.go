package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
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
       chancery order new --action drill --guest-charter charter.yaml \
           --site embassy-north --epoch 1 --expires 12h --out drill.order
       chancery order sign drill.order --official cio --key cio.key
  2. It is submitted to the site that writes now (normally the home):
       chancery order submit --site https://home.example drill.order
     Replication brings it to the embassy, which enters drill mode: it
     keeps receiving, nothing is fenced, and it measures how far behind the
     writer it is (RPO).
  3. An official opens the drill's unseal session at the embassy:
       chancery drill --site https://embassy-north.example --official cio \
           --key cio.key --site-id embassy-north
     It prints a one-time recipient for the custodians and writes the
     site's signed statement of it to drill-recipient.json.
  4. Each custodian, on their own machine, checks the statement against
     the charter and reseals their share to it:
       chancery custody reseal --custody custody.json --charter charter.yaml \
           --custodian ID --identity ID.key --recipient drill-recipient.json --out ID.share
  5. The shares are submitted; at the threshold the sample is checked:
       chancery drill submit --site https://embassy-north.example \
           --session SESSION ID.share...
     The site signs the report with its checkpoint key and the writer
     appends it to the ledger. A keyless report has no RTO: nothing is
     read at the site.
  6. Anyone reads the reports from the ledger:
       chancery drill report --ledger https://home.example/ledger --charter charter.yaml`

func newDrillCmd() *cobra.Command {
	var f siteFlags
	var recipientOut string
	cmd := &cobra.Command{
		Use:   "drill --site URL --official ID --key FILE --site-id ID",
		Short: "Rehearse continuity at an embassy under a drill order: open its sandbox unseal session",
		Long: `Drill opens the unseal session of the drill running at an embassy (step 3
below): the site must hold a drill order naming it (steps 1 and 2). The
request is signed by an official of the charter. It prints the session's
one-time recipient and what each custodian runs next.

` + drillProcedure,
		Example: `  chancery drill --site http://127.0.0.1:7102 --official cio --key D/keys/official-cio.key --site-id embassy-north`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			r, err := c.OpenDrillUnseal(ctx)
			if err != nil {
				return fmt.Errorf("drill at %s: %w", f.url, err)
			}
			st, err := c.Drill(ctx)
			if err != nil {
				return fmt.Errorf("drill at %s: %w", f.url, err)
			}
			if err := writeRecipientStatement(recipientOut, f.charter, r); err != nil {
				return fmt.Errorf("drill at %s: %w", f.url, err)
			}
			printDrillSession(cmd.OutOrStdout(), f.url, recipientOut, st, r)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&recipientOut, "recipient-out", "drill-recipient.json", "file to write the site's signed recipient statement to")
	cmd.AddCommand(newDrillSubmitCmd(), newDrillStatusCmd(), newDrillReportCmd())
	return cmd
}

func printDrillSession(w io.Writer, url, statement string, st *siteapi.DrillStatus, r *siteapi.UnsealResponse) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("drill of order %s at %s (guest %s): unseal session %s, %d of %d shares, expires %s\n",
		st.Order, st.Site, st.Guest, r.Session, r.Have, r.Need, r.Expires.UTC().Format(time.RFC3339))
	p("recipient %s\n\n", r.Recipient)
	p("The site's signed statement of it is in %s. Each custodian then runs, on their own machine:\n", statement)
	p("  chancery custody reseal --custody custody.json --charter charter.yaml --custodian ID --identity ID.key --recipient %s --out ID.share\n", statement)
	p("and the shares are submitted (at the threshold the drill runs):\n")
	p("  chancery drill submit --site %s --guest %s --session %s ID.share...\n", url, st.Guest, r.Session)
}

func newDrillSubmitCmd() *cobra.Command {
	var f siteFlags
	var session string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "submit --site URL --session ID SHARE...",
		Short: "Submit custodians' shares to the drill's session; at the threshold, wait for the report",
		Long: `Submit sends custodians' shares, each sealed to the drill session's one-time
recipient (chancery custody reseal), to the drilled site (step 5 below). At
the threshold the site rebuilds the root key in memory, checks its sample,
wipes the keys and returns to standby; submit waits for the report (unless
--no-wait) and prints it, with its entry in the writer's ledger once the
writer has recorded it.

` + drillProcedure,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(false)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := c.Drill(ctx)
			if err != nil {
				return err
			}
			if !st.Running {
				return fmt.Errorf("no drill is running for %s at %s", f.guest, f.url)
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
					fmt.Fprintf(w, "threshold reached: the shares are verified and wiped, the drill checks its sample at %s\n", f.url)
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
	f.register(cmd, false)
	cmd.Flags().StringVar(&session, "session", "", "the drill session id chancery drill printed (required)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the shares are in; chancery drill status shows the report later")
	cmd.MarkFlagRequired("session")
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
		Use:   "status --site URL",
		Short: "Show the drill running at a site (session, shares) and its last report",
		Long: `Status prints, as JSON, the guest's drill at a site: whether a drill runs,
under which order, its unseal session and shares, whether the sandbox holds
keys now, and the last report with its entry in the writer's ledger (or why
it is not recorded yet).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(false)
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
	f.register(cmd, false)
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
	fl.StringVar(&o.PinSite, "pin-site", "", "for an https URL: trust only the TLS key the charter pins for this site id")
	fl.BoolVar(&o.JSON, "json", false, "print the reports and their checks as JSON")
	cmd.MarkFlagRequired("ledger")
	return cmd
}

// drillRow is one drill-report entry and what its check found.
type drillRow struct {
	Index    uint64                  `json:"ledger_index"`
	Recorded time.Time               `json:"recorded_at"`
	Report   *continuity.DrillReport `json:"report,omitempty"`
	// Check is "ok", "unchecked" (no charter) or what is wrong.
	Check string `json:"check"`
	bad   bool
}

func runDrillReport(ctx context.Context, w io.Writer, o drillReportOptions) error {
	var f ledger.Fetcher
	isURL := strings.HasPrefix(o.Ledger, "http://") || strings.HasPrefix(o.Ledger, "https://")
	files := o.Charters
	if isURL {
		hf := ledger.HTTPFetcher{Base: o.Ledger}
		// Not mustPin: the reports and the ledger verify by their
		// signatures.
		c, err := siteClient(o.Ledger, lastOf(files), o.PinSite, false)
		if err != nil {
			return fmt.Errorf("drill report: %w", err)
		}
		hf.Client = c
		f = hf
	} else {
		if _, err := os.Stat(filepath.Join(o.Ledger, ledger.CheckpointPath)); err != nil {
			return fmt.Errorf("drill report: %s is not a ledger directory (no checkpoint): %w", o.Ledger, err)
		}
		f = ledger.DirFetcher(o.Ledger)
		if len(files) == 0 {
			p, err := state.FindCharter(o.Ledger)
			if err != nil {
				return err
			}
			if p != "" {
				files = []string{p}
			}
		}
	}
	var c *charter.Charter
	if len(files) > 0 {
		var err error
		if c, err = loadCharterChain(files); err != nil {
			return fmt.Errorf("drill report: %w", err)
		}
	}
	signed, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return fmt.Errorf("drill report: read the checkpoint: %w", err)
	}
	cp, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	cpNote := "signatures NOT CHECKED: no charter was given or found beside the ledger"
	if c != nil {
		v, err := c.CheckpointVerifiers()
		if err != nil {
			return fmt.Errorf("drill report: charter site keys: %w", err)
		}
		if _, _, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, v); err != nil {
			return fmt.Errorf("drill report: the ledger's checkpoint does not verify with charter %s v%d: %w", c.Guest.ID, c.Version, err)
		}
		cpNote = "checkpoint signed by " + strings.Join(state.CheckpointSigners(c, signed), ", ")
	}

	// Drill orders seen so far (id → site): a report must follow its order.
	orders := map[string]string{}
	var rows []*drillRow
	err = ledger.Scan(ctx, f, 0, cp.Size, func(idx uint64, raw []byte) error {
		if len(raw) < ledger.EntryHeaderSize {
			return nil
		}
		t := ledger.Type(raw[1])
		if t != ledger.TypeOrder && t != ledger.TypeDrillReport {
			return nil
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		if t == ledger.TypeOrder {
			if so, err := continuity.ParseSignedOrder(e.Payload); err == nil && so.Order.Action == charter.ActionDrill {
				orders[so.Order.ID] = so.Order.Site
			}
			return nil
		}
		rows = append(rows, checkDrillRow(c, orders, idx, e))
		return nil
	})
	if err != nil {
		return fmt.Errorf("drill report: read the ledger: %w", err)
	}
	if c != nil {
		prover := ledger.NewProver(f, 0)
		for _, r := range rows {
			if r.bad {
				continue
			}
			if err := checkInclusion(ctx, f, prover, cp, r.Index); err != nil {
				r.Check, r.bad = "NOT IN THE SIGNED TREE: "+err.Error(), true
			}
		}
	}

	bad := 0
	for _, r := range rows {
		if r.bad {
			bad++
		}
	}
	if o.JSON {
		if rows == nil {
			rows = []*drillRow{}
		}
		if err := printJSON(w, rows); err != nil {
			return err
		}
	} else {
		renderDrillRows(w, cp, cpNote, rows)
	}
	if bad > 0 {
		return fmt.Errorf("drill report: %d of %d drill reports do not check out", bad, len(rows))
	}
	return nil
}

func checkDrillRow(c *charter.Charter, orders map[string]string, idx uint64, e ledger.Entry) *drillRow {
	row := &drillRow{Index: idx, Recorded: e.Time.UTC(), Check: "unchecked"}
	if c == nil {
		r, _, _, err := continuity.ParseDrillReport(e.Payload)
		if err != nil {
			row.Check, row.bad = "UNREADABLE: "+err.Error(), true
		}
		row.Report = r
		return row
	}
	r, err := continuity.VerifyDrillReport(c, e.Payload)
	if err != nil {
		row.Check, row.bad = "BAD: "+err.Error(), true
		if r, _, _, err := continuity.ParseDrillReport(e.Payload); err == nil {
			row.Report = r
		}
		return row
	}
	row.Report = r
	switch s, ok := orders[r.Order]; {
	case !ok:
		row.Check, row.bad = fmt.Sprintf("BAD: no drill order %s before it in the ledger", r.Order), true
	case s != r.Site:
		row.Check, row.bad = fmt.Sprintf("BAD: drill order %s names site %s, not %s", r.Order, s, r.Site), true
	default:
		row.Check = "ok"
	}
	return row
}

func checkInclusion(ctx context.Context, f ledger.Fetcher, prover *ledger.Prover, cp ledger.Checkpoint, idx uint64) error {
	raw, err := ledger.ReadEntry(ctx, f, idx, cp.Size)
	if err != nil {
		return err
	}
	prf, err := prover.Inclusion(ctx, idx, cp.Size)
	if err != nil {
		return err
	}
	return ledger.VerifyInclusion(idx, cp.Size, ledger.LeafHash(raw), prf, cp.Root)
}

func renderDrillRows(w io.Writer, cp ledger.Checkpoint, cpNote string, rows []*drillRow) {
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
		if rep == nil || (len(rep.Failures) == 0 && rep.Error == "" && !r.bad) {
			continue
		}
		fmt.Fprintf(w, "\n%s, drill order %s (entry %d):\n", rep.Site, rep.Order, r.Index)
		if r.bad {
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
