package ui

import (
	"fmt"
	"html/template"
	"time"
)

// Dashboard is what the continuity dashboard shows: where the state's data
// is, how fresh each copy is, and what waits for signatures.
type Dashboard struct {
	Guest  string
	Sites  []SiteRow
	Lag    []Line // recovery point in seconds over time, one line per site
	Orders []OrderRow
	Drills []DrillRow
	Ledger LedgerRow
	// Postgres is the guest's PostgreSQL connector here, if the site runs one.
	Postgres *ConnectorRow
}

// SiteRow is one site of the charter as the serving site sees it.
type SiteRow struct {
	ID          string
	Role        string // home, embassy
	Host        string // the host state, "" for the home
	Mode        string // standby, active, fenced, suspended, damaged, drill, unreachable
	Epoch       uint64
	LedgerSize  uint64
	LastReceipt time.Time // zero: none yet
	RPOEntries  uint64
	RPOSeconds  float64
	Problem     string // why the site is not well, in words
	// Reported is what the site says of itself when asked over the pinned
	// channel: its mode, epoch and writer ("unreachable" when it did not
	// answer), and when it last answered. Empty for the serving site.
	Reported       string
	ReportedEpoch  uint64
	ReportedWriter string
	Seen           time.Time
	Unreached      string // why the last request failed
}

// ReportedClass is the CSS class of the site's own report's badge.
func (s SiteRow) ReportedClass() string { return SiteRow{Mode: s.Reported}.ModeClass() }

// ModeClass is the CSS class of the site's mode badge.
func (s SiteRow) ModeClass() string {
	switch s.Mode {
	case "active":
		return "ok"
	case "standby", "drill":
		return "info"
	default:
		return "bad"
	}
}

// OrderRow is a continuity order and its signatures.
type OrderRow struct {
	ID     string
	Kind   string
	Site   string // the site it names, if any
	Signed []string
	Needs  string // the quorum rule, in words
	State  string // waiting, accepted, expired
	Index  uint64 // ledger index once accepted
}

// DrillRow is one drill and its report.
type DrillRow struct {
	Site       string
	Order      string
	When       time.Time
	RTOSeconds float64
	RPOEntries uint64
	Outcome    string
}

// LedgerRow is the ledger at the serving site.
type LedgerRow struct {
	Size       uint64
	Checkpoint uint64
	Epoch      uint64
	Writer     string
}

// HostConsole is what a host operator sees: its tenants' use of its
// resources, never their data. It holds only what the operator API may
// show under each guest's charter.
type HostConsole struct {
	Host     string
	Tenants  []TenantRow
	Refusals []Line // refused requests over time, one line per tenant
	// SuspendCommand, when the pages cannot serve a notice themselves (a
	// notice must carry the host's own signature, and the host's key is
	// not in the browser), is the command that serves one.
	SuspendCommand string
}

// TenantRow is one guest at this host's site.
type TenantRow struct {
	Guest      string
	Site       string
	Mode       string
	UsedBytes  int64
	QuotaBytes int64 // 0: none
	FreeBytes  int64
	Batches    int64
	Refused    int64
	LastBatch  time.Time
	Suspended  bool
	Suspension string // the notice in words, if one was served
	MaySuspend bool   // the charter lets the host suspend after notice
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Second:
		return "under a second ago"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h ago", d.Hours())
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// HumanBytes writes a size in binary units ("3.0 GiB"), as the pages and
// the CLI show sizes.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func pct(a, b int64) string {
	if b <= 0 {
		return "no quota"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
}

// LagPlot is the recovery point of every site over time.
func (d *Dashboard) LagPlot() template.HTML {
	return Plot{ID: "lag", Title: "Recovery point by site (seconds of writes a site would lose)", Unit: "s", Lines: d.Lag}.SVG()
}

// RefusalPlot is the refused requests of every tenant over time.
func (h *HostConsole) RefusalPlot() template.HTML {
	return Plot{ID: "refusals", Title: "Refused requests by guest", Lines: h.Refusals}.SVG()
}
