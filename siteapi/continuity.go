package siteapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/replica"
)

// Mode is the state a guest is in at a site.
type Mode string

// Modes (docs/continuity.md). A home site's guest is active until another
// site is activated.
const (
	ModeStandby Mode = "standby" // sealed mirror: no keys, no API
	ModeDrill   Mode = "drill"   // unsealed into a sandbox: reads only
	ModeActive  Mode = "active"  // unsealed and serving
	ModeFenced  Mode = "fenced"  // a newer epoch has another writer: no writes
)

// ContinuityStatus is GET /continuity/v1/guests/{guest}/status.
type ContinuityStatus struct {
	Guest     string     `json:"guest"`
	Site      string     `json:"site"`
	Mode      Mode       `json:"mode"`
	Epoch     uint64     `json:"epoch"`
	Writer    string     `json:"writer"`
	Size      uint64     `json:"ledger_size"`
	Unsealed  bool       `json:"unsealed"`
	ReadOnly  bool       `json:"read_only,omitempty"`
	Order     string     `json:"order,omitempty"`
	Session   string     `json:"unseal_session,omitempty"`
	Shares    int        `json:"shares,omitempty"`
	Threshold int        `json:"threshold,omitempty"`
	Accepted  *time.Time `json:"accepted_at,omitempty"`
	Unsealed_ *time.Time `json:"unsealed_at,omitempty"`
	Indexed   *time.Time `json:"indexed_at,omitempty"`
	FirstRead *time.Time `json:"first_read_at,omitempty"`
	// RTOSeconds is the recovery time: from the moment the site held both
	// a valid order and the threshold of shares to its first served read.
	RTOSeconds float64  `json:"rto_seconds,omitempty"`
	Registries []string `json:"registries,omitempty"`
	// Postgres is the guest's PostgreSQL connector at this site, when
	// this site's config names its database (docs/postgres.md).
	Postgres *PostgresStatus `json:"postgres,omitempty"`
}

// UnsealResponse answers POST .../unseal and .../unseal/{session}.
type UnsealResponse struct {
	Session   string `json:"session"`
	Recipient string `json:"recipient"` // the one-time hybrid age recipient custodians seal their shares to
	// RecipientStatement is the site's signed continuity.RecipientStatement
	// of the session: custodians seal to Recipient only after checking it
	// against the charter (continuity.VerifyRecipient).
	RecipientStatement json.RawMessage `json:"recipient_statement,omitempty"`
	Expires            time.Time       `json:"expires"`
	Have               int             `json:"have"`
	Need               int             `json:"need"`
	Unsealed           bool            `json:"unsealed"`
}

// OrderResponse answers a submitted order.
type OrderResponse struct {
	Order  string            `json:"order"`
	Index  uint64            `json:"ledger_index"`
	Status ContinuityStatus  `json:"status"`
	Parsed *continuity.Order `json:"parsed,omitempty"`
}

// DrillStatus is GET /continuity/v1/guests/{guest}/drill.
type DrillStatus struct {
	Guest      string     `json:"guest"`
	Site       string     `json:"site"`
	Mode       Mode       `json:"mode"`
	Running    bool       `json:"running"`
	Order      string     `json:"order,omitempty"`
	OrderIndex uint64     `json:"order_index,omitempty"`
	Started    *time.Time `json:"started_at,omitempty"`
	Expires    *time.Time `json:"order_expires,omitempty"`
	Session    string     `json:"unseal_session,omitempty"`
	Recipient  string     `json:"recipient,omitempty"`
	// RecipientStatement: as in UnsealResponse.
	RecipientStatement json.RawMessage `json:"recipient_statement,omitempty"`
	Shares             int             `json:"shares,omitempty"`
	Threshold          int             `json:"threshold,omitempty"`
	// Unsealed: the threshold of verified shares was reached and the
	// shares wiped (the sample is being checked). A drilled site never
	// rebuilds the root key.
	Unsealed bool `json:"unsealed"`
	// LastReport is the last drill's report; LastReportIndex its entry in
	// the writer's ledger once recorded, LastReportError why it is not yet.
	LastReport      *continuity.DrillReport `json:"last_report,omitempty"`
	LastReportIndex *uint64                 `json:"last_report_index,omitempty"`
	LastReportError string                  `json:"last_report_error,omitempty"`
}

// DrillReportReceipt answers POST .../drill-reports.
type DrillReportReceipt struct {
	Order string `json:"order"`
	Index uint64 `json:"ledger_index"`
	// Duplicate: this very report was recorded before, at Index.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ContinuityClient speaks to a site's continuity API for one guest: order
// submission, fences, unseal sessions, sealing, drills and status.
// Opening a session, handing over a site key and sealing are signed by an
// official (Signer); orders and shares carry their own authority.
type ContinuityClient struct {
	BaseURL string
	Guest   string
	Signer  *Signer // for unseal and seal
	HTTP    *http.Client
	// AcceptUnfenced submits an activation even if embassies that might
	// alone hold quorum writes cannot be fenced (docs/continuity.md).
	AcceptUnfenced bool
}

func (c *ContinuityClient) url(path string) string {
	return strings.TrimSuffix(c.BaseURL, "/") + "/continuity/v1/guests/" + url.PathEscape(c.Guest) + path
}

func (c *ContinuityClient) do(ctx context.Context, method, path string, body []byte, sign bool, out any) error {
	var s *Signer
	if sign {
		if c.Signer == nil {
			return fmt.Errorf("%s %s needs an official's signature", method, path)
		}
		var err error
		if s, err = c.Signer.forGuest(c.Guest); err != nil {
			return err
		}
	}
	req, err := signedRequest(ctx, s, method, c.url(path), body)
	if err != nil {
		return err
	}
	return roundTrip(c.HTTP, req, out)
}

// Submit sends a signed order (its file bytes).
func (c *ContinuityClient) Submit(ctx context.Context, signedOrder []byte) (*OrderResponse, error) {
	var out OrderResponse
	path := "/orders"
	if c.AcceptUnfenced {
		path += "?accept_unfenced=true"
	}
	return &out, c.do(ctx, http.MethodPost, path, signedOrder, false, &out)
}

// Fence shows a signed activation order of another site to this one,
// which fences itself against older epochs and reports what it holds.
func (c *ContinuityClient) Fence(ctx context.Context, signedOrder []byte) (*replica.State, error) {
	var out replica.State
	return &out, c.do(ctx, http.MethodPost, "/fence", signedOrder, false, &out)
}

// Status reads the guest's continuity status at the site.
func (c *ContinuityClient) Status(ctx context.Context) (*ContinuityStatus, error) {
	var out ContinuityStatus
	return &out, c.do(ctx, http.MethodGet, "/status", nil, false, &out)
}

// OpenUnseal opens (or returns the open) unseal session.
func (c *ContinuityClient) OpenUnseal(ctx context.Context) (*UnsealResponse, error) {
	var out UnsealResponse
	return &out, c.do(ctx, http.MethodPost, "/unseal", nil, true, &out)
}

// SubmitShare sends one custodian's share, sealed to the session.
func (c *ContinuityClient) SubmitShare(ctx context.Context, session string, sealed []byte) (*UnsealResponse, error) {
	var out UnsealResponse
	return &out, c.do(ctx, http.MethodPost, "/unseal/"+url.PathEscape(session), sealed, false, &out)
}

// Seal wipes the guest's keys at the site.
func (c *ContinuityClient) Seal(ctx context.Context) (*ContinuityStatus, error) {
	var out ContinuityStatus
	return &out, c.do(ctx, http.MethodPost, "/seal", nil, true, &out)
}

// SubmitSiteKey hands a site's wrapped outer key from the escrow to the
// session st names (a statement the caller has verified with
// continuity.VerifyRecipient): sealed to the session's recipient, so that
// it never crosses the network in clear, and signed by an official
// (Signer), so that no one else can replace it.
func (c *ContinuityClient) SubmitSiteKey(ctx context.Context, st *continuity.RecipientStatement, site string, wrapped []byte) error {
	if st.Guest != c.Guest {
		return fmt.Errorf("site key for %s: the session is for guest %s", c.Guest, st.Guest)
	}
	sealed, err := continuity.SealSiteKey(st, site, wrapped)
	if err != nil {
		return err
	}
	var out UnsealResponse
	return c.do(ctx, http.MethodPost, "/unseal/"+url.PathEscape(st.Session)+"/site-keys/"+url.PathEscape(site), sealed, true, &out)
}

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
