package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/site/ui"
	"github.com/chancery-gov/chancery/siteapi"
)

// Exit codes of chancery status (docs/cli.md).
const (
	exitDegraded = 2 // a site unreachable, fenced, suspended, damaged or not ready
	exitRPO      = 3 // a site's recovery point is beyond --max-rpo
)

// exitError is an error that asks main for a particular exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// siteReport is what status learned of one site.
type siteReport struct {
	Site   string `json:"site"`
	URL    string `json:"url"`
	Banner string `json:"banner"` // ACTIVE, STANDBY, DRILL, FENCED, SUSPENDED, DAMAGED, NOT READY, UNREACHABLE
	// Status is the guest's continuity status at the site (mode, epoch,
	// writer, RTO); nil when the site did not answer.
	Status *siteapi.ContinuityStatus `json:"status,omitempty"`
	// Reasons are why /readyz says the site is not ready.
	Reasons []string `json:"reasons,omitempty"`
	Error   string   `json:"error,omitempty"`
	// Replication is the writer's view of every other site (RPO).
	Replication *siteapi.ReplicationStatus `json:"replication,omitempty"`
}

// statusReport is the whole answer of chancery status.
type statusReport struct {
	Guest  string        `json:"guest"`
	Sites  []*siteReport `json:"sites"`
	MaxRPO string        `json:"max_rpo,omitempty"`
	// Exit is the exit code and Problems why it is not 0.
	Exit     int      `json:"exit"`
	Problems []string `json:"problems,omitempty"`
}

func newStatusCmd() *cobra.Command {
	var (
		f      siteFlags
		all    bool
		maxRPO time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [--site ID | --all] [--max-rpo DURATION]",
		Short: "Show a site's mode, epoch and readiness, and each site's recovery point (RPO); --all for every site",
		Long: `Status asks a site (--site, its id in the charter; default: the context's)
where the guest stands there: its mode, as a banner (ACTIVE, STANDBY, DRILL,
FENCED, SUSPENDED, DAMAGED, NOT READY, UNREACHABLE), epoch, writer, ledger
size, the RTO of its activation, and why it is not ready (/readyz). At the
site that writes, it also shows what every other site has acknowledged:
the ledger size its latest receipt covers, and the recovery point — how
many entries, and how much time of writes, that site would lose if the
writer were lost now.

--all asks every site of the charter, and the writer for the RPO table:
the overview in a crisis. It works whichever site is the writer, and with
sites down.

Exit codes, for scripts and alarms:
  0  every site asked is ready, and every RPO within --max-rpo
  1  the command could not run (flags, charter), or the one site asked
     did not answer
  2  degraded: a site unreachable, fenced, suspended, damaged or not ready
  3  a site's RPO is over --max-rpo (takes precedence over 2)

If a site's RPO grows, see docs/operations.md, "When a site falls behind".`,
		Example: `  chancery status --site home
  chancery status --all --max-rpo 30s
  chancery status --charter D/charter.yaml --site embassy-north --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				warnDeprecated(cmd.ErrOrStderr(), "chancery status URL", "chancery status --url URL (or --site SITE-ID)")
				if f.url == "" {
					f.url = args[0]
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			rep, err := runStatus(ctx, cmd, &f, all, maxRPO)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			w := cmd.OutOrStdout()
			if f.asJSON {
				if err := printJSON(w, rep); err != nil {
					return err
				}
			} else {
				printStatusReport(w, rep)
			}
			if rep.Exit != 0 {
				return &exitError{code: rep.Exit, err: fmt.Errorf("status: %s", strings.Join(rep.Problems, "; "))}
			}
			return nil
		},
	}
	f.register(cmd, "")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&all, "all", false, "ask every site of the charter")
	cmd.Flags().DurationVar(&maxRPO, "max-rpo", 0, "exit 3 if a site's recovery point is older than this (e.g. 30s; 0: no limit)")
	cmd.Flags().Lookup("timeout").DefValue = "10s"
	f.timeout = 10 * time.Second
	return cmd
}

// runStatus asks the site f names, or every site of the charter with all.
func runStatus(ctx context.Context, cmd *cobra.Command, f *siteFlags, all bool, maxRPO time.Duration) (*statusReport, error) {
	var targets []*target
	if all {
		if cmd.Flags().Changed("url") {
			return nil, fmt.Errorf("--all asks every site at the charter's addresses: give no --url")
		}
		c, _, err := f.charterOf()
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, fmt.Errorf("--all needs the charter: give --charter, --state or a context (chancery context add)")
		}
		// A context may give sites other addresses than the charter's.
		_, cc, err := selectedContext(cmd)
		if err != nil {
			return nil, err
		}
		one := *f
		one.siteID, one.pinSite = "", ""
		for _, id := range siteIDs(c) {
			one.site, one.url = id, ""
			if cc != nil {
				one.url = cc.URLs[id]
			}
			st, err := one.resolve(cmd, false)
			if err != nil {
				return nil, err
			}
			targets = append(targets, st)
		}
	} else {
		t, err := f.resolve(cmd, false)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	rep := &statusReport{Guest: targets[0].guest}
	if maxRPO > 0 {
		rep.MaxRPO = maxRPO.String()
	}
	degraded := func(format string, a ...any) {
		rep.Problems = append(rep.Problems, fmt.Sprintf(format, a...))
		rep.Exit = max(rep.Exit, exitDegraded)
	}
	answered := 0
	for _, t := range targets {
		sr := askSite(ctx, t)
		rep.Sites = append(rep.Sites, sr)
		if sr.Status != nil {
			answered++
		}
		switch sr.Banner {
		case "ACTIVE", "STANDBY", "DRILL":
		default:
			degraded("%s is %s", cmp.Or(sr.Site, sr.URL), strings.ToLower(sr.Banner))
		}
	}
	if answered == 0 && len(targets) == 1 {
		return rep, &exitError{code: 1, err: fmt.Errorf("%s did not answer: %s", targets[0].name(), rep.Sites[0].Error)}
	}
	// The RPO table is the writer's: the active site of the highest epoch.
	var writer *siteReport
	for _, sr := range rep.Sites {
		if sr.Status != nil && sr.Status.Mode == siteapi.ModeActive && sr.Status.Writer == sr.Status.Site &&
			(writer == nil || sr.Status.Epoch > writer.Status.Epoch) {
			writer = sr
		}
	}
	for _, sr := range rep.Sites {
		if sr != writer {
			sr.Replication = nil
		}
	}
	if writer != nil && writer.Replication != nil && maxRPO > 0 {
		for _, l := range writer.Replication.Sites {
			if d := time.Duration(l.Seconds * float64(time.Second)); d > maxRPO {
				rep.Problems = append(rep.Problems, fmt.Sprintf("the RPO of %s is %s (%d entries), over --max-rpo %s", l.Site, d.Round(time.Millisecond), l.Entries, maxRPO))
				rep.Exit = exitRPO
			}
		}
	}
	return rep, nil
}

// askSite asks one site for the guest's continuity status, its readiness
// and, where it writes, its replication status.
func askSite(ctx context.Context, t *target) *siteReport {
	sr := &siteReport{Site: t.siteID, URL: t.url}
	st, err := t.continuity().Status(ctx)
	if err != nil {
		sr.Banner, sr.Error = "UNREACHABLE", err.Error()
		return sr
	}
	sr.Status = st
	if sr.Site == "" {
		sr.Site = st.Site
	}
	sr.Reasons = readyReasons(ctx, t)
	sr.Banner = strings.ToUpper(string(st.Mode))
	for _, r := range sr.Reasons {
		switch {
		case strings.Contains(r, "suspended"):
			sr.Banner = "SUSPENDED"
		case strings.Contains(r, "ledger"):
			sr.Banner = "DAMAGED"
		case sr.Banner != "SUSPENDED" && sr.Banner != "DAMAGED" && sr.Banner != "FENCED":
			sr.Banner = "NOT READY"
		}
	}
	if st.Mode == siteapi.ModeActive && st.Writer == st.Site {
		if rs, err := siteapi.FetchStatus(ctx, t.url, t.http); err == nil {
			sr.Replication = rs
		} else if !errors.Is(err, siteapi.ErrNoReplication) {
			sr.Error = err.Error()
		}
	}
	return sr
}

// readyReasons reads the site's /readyz: nil when ready (or when the site
// predates /readyz), else each reason it gives.
func readyReasons(ctx context.Context, t *target) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/readyz", nil)
	if err != nil {
		return []string{err.Error()}
	}
	hc := cmp.Or(t.http, http.DefaultClient)
	resp, err := hc.Do(req)
	if err != nil {
		return []string{"readyz: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var body struct {
		Reasons []string `json:"reasons"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || len(body.Reasons) == 0 {
		return []string{"not ready: HTTP " + resp.Status}
	}
	return body.Reasons
}

func printStatusReport(w io.Writer, rep *statusReport) {
	fmt.Fprintf(w, "guest %s\n\n", rep.Guest)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSTATE\tEPOCH\tWRITER\tLEDGER\tRTO\tURL")
	for _, sr := range rep.Sites {
		if sr.Status == nil {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t%s\n", sr.Site, sr.Banner, sr.URL)
			continue
		}
		st, rto := sr.Status, "-"
		if st.RTOSeconds > 0 {
			rto = time.Duration(st.RTOSeconds * float64(time.Second)).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", sr.Site, sr.Banner, st.Epoch, st.Writer, st.Size, rto, sr.URL)
	}
	tw.Flush()
	for _, sr := range rep.Sites {
		if sr.Status != nil && sr.Status.Postgres != nil {
			printPostgresLine(w, sr.Site, sr.Status.Postgres)
		}
	}
	for _, sr := range rep.Sites {
		for _, r := range sr.Reasons {
			fmt.Fprintf(w, "%s: %s\n", sr.Site, r)
		}
		if sr.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", sr.Site, sr.Error)
		}
		if sr.Replication != nil {
			fmt.Fprintf(w, "\nrecovery points, as %s (the writer) sees them:\n", sr.Site)
			printStatus(w, sr.Replication)
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
}

func printStatus(w io.Writer, st *siteapi.ReplicationStatus) {
	fmt.Fprintf(w, "guest %s: the writer's ledger holds %d entries\n\n", st.Guest, st.Size)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tRECEIPT\tRPO ENTRIES\tRPO\tCONNECTED\tSENT\tLAST ERROR")
	for _, l := range st.Sites {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%v\t%s\t%s\n", l.Site, l.Size, l.Entries,
			(time.Duration(l.Seconds * float64(time.Second))).Round(time.Millisecond), l.Connected, ui.HumanBytes(l.BytesSent), l.LastError)
	}
	tw.Flush()
}

// printPostgresLine is the guest's PostgreSQL connector at one site, on
// one line: where it stands and how far behind the source it is.
func printPostgresLine(w io.Writer, site string, p *siteapi.PostgresStatus) {
	if !p.Running {
		fmt.Fprintf(w, "%s: postgres connector %s %s", site, p.Slot, p.Note)
		if p.LSN != "" {
			fmt.Fprintf(w, "; last position %s", p.LSN)
		}
	} else {
		conn := "connected"
		if !p.Connected {
			conn = "not connected"
		}
		fmt.Fprintf(w, "%s: postgres connector %s %s, %s, position %s (source %s), lag %d bytes %d ms, %d snapshot rows, %d changes in %d transactions, %d reconnects",
			site, p.Slot, p.Phase, conn, p.LSN, p.ServerLSN, p.LagBytes, p.LagMillis, p.Snapshot, p.Streamed, p.Txns, p.Retries)
	}
	if p.LastError != "" {
		fmt.Fprintf(w, "; last error: %s", p.LastError)
	}
	fmt.Fprintln(w)
}
