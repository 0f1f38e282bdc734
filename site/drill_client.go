package site

import (
	"context"
	"net/http"
	"net/url"
)

// OpenDrillUnseal opens (or returns the open) unseal session of the drill
// running at the site; the request is signed by an official (Signer).
func (c *ContinuityClient) OpenDrillUnseal(ctx context.Context) (*UnsealResponse, error) {
	var out UnsealResponse
	return &out, c.do(ctx, http.MethodPost, "/drill/unseal", nil, true, &out)
}

// SubmitDrillShare sends one custodian's share, sealed to the drill's
// session. At the threshold the answer says Unsealed and the drill runs;
// Drill shows its report when it is done.
func (c *ContinuityClient) SubmitDrillShare(ctx context.Context, session string, sealed []byte) (*UnsealResponse, error) {
	var out UnsealResponse
	return &out, c.do(ctx, http.MethodPost, "/drill/unseal/"+url.PathEscape(session), sealed, false, &out)
}

// Drill reads the guest's drill status at the site, with the last report.
func (c *ContinuityClient) Drill(ctx context.Context) (*DrillStatus, error) {
	var out DrillStatus
	return &out, c.do(ctx, http.MethodGet, "/drill", nil, false, &out)
}

// RecordDrillReport sends a signed drill report to the site that writes
// the guest's ledger, which appends it (what a drilled site does itself).
func (c *ContinuityClient) RecordDrillReport(ctx context.Context, signed []byte) (*DrillReportReceipt, error) {
	var out DrillReportReceipt
	return &out, c.do(ctx, http.MethodPost, "/drill-reports", signed, false, &out)
}
