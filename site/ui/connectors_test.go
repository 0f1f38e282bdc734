package ui

import (
	"strings"
	"testing"
)

// TestDashboardShowsConnector: the dashboard has a PostgreSQL connector
// section when the site runs one, with its phase, position and lag, and
// none when it does not.
func TestDashboardShowsConnector(t *testing.T) {
	f, u := newFixture(t)
	if b := body(t, get(t, u, "/ui/dashboard", true)); strings.Contains(b, "PostgreSQL connector") {
		t.Fatal("a connector section on a site that runs none")
	}
	f.mu.Lock()
	f.dash.Postgres = &ConnectorRow{Slot: "chancery_demo", Running: true, Connected: true, Phase: "stream", LSN: "0/1931AC8", ServerLSN: "0/1931B00",
		LagBytes: 56, LagMillis: 12, Snapshot: 200, Streamed: 40, Txns: 11, LastError: "connection reset <script>"}
	f.mu.Unlock()
	b := body(t, get(t, u, "/ui/dashboard", true))
	for _, want := range []string{"PostgreSQL connector", "chancery_demo", "STREAM", "0/1931AC8", "56 bytes, 12 ms", "40 changes in 11 transactions", "connection reset &lt;script&gt;"} {
		if !strings.Contains(b, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
}
