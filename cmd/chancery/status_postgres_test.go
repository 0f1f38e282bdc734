package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/siteapi"
)

// TestStatusPrintsPostgresLine: chancery status prints one line per site
// whose status carries the guest's PostgreSQL connector: running, with its
// position and lag, or why not.
func TestStatusPrintsPostgresLine(t *testing.T) {
	rep := &statusReport{Guest: "demo-republic", Sites: []*siteReport{
		{Site: "home", Banner: "ACTIVE", Status: &siteapi.ContinuityStatus{Mode: siteapi.ModeActive, Epoch: 3, Writer: "home",
			Postgres: &siteapi.PostgresStatus{Running: true, Connected: true, Slot: "chancery_demo", Phase: "stream", LSN: "0/1931AC8", ServerLSN: "0/1931B00", LagBytes: 56, LagMillis: 12, Streamed: 40, Txns: 11}}},
		{Site: "embassy-north", Banner: "STANDBY", Status: &siteapi.ContinuityStatus{Mode: siteapi.ModeStandby, Epoch: 3, Writer: "home",
			Postgres: &siteapi.PostgresStatus{Slot: "chancery_demo", Note: "not running: this site is standby, not the guest's writer", LSN: "0/1930000"}}},
		{Site: "embassy-south", Banner: "STANDBY", Status: &siteapi.ContinuityStatus{Mode: siteapi.ModeStandby, Epoch: 3, Writer: "home"}},
	}}
	var b bytes.Buffer
	printStatusReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"home: postgres connector chancery_demo stream, connected, position 0/1931AC8 (source 0/1931B00), lag 56 bytes 12 ms",
		"embassy-north: postgres connector chancery_demo not running: this site is standby, not the guest's writer; last position 0/1930000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "embassy-south: postgres") {
		t.Errorf("a connector line for a site without one:\n%s", out)
	}
}
