package site

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/chancery-gov/chancery/replica"
)

// ContinuityClient speaks to a site's continuity API for one guest: order
// submission, unseal sessions, sealing and status. Opening a session and
// sealing are signed by an official (Signer); orders and shares carry
// their own authority.
type ContinuityClient struct {
	BaseURL string
	Guest   string
	Signer  *Signer // for unseal and seal
	HTTP    *http.Client
	// AcceptUnfenced submits an activation even if embassies that might
	// alone hold quorum writes cannot be fenced (see site/fence.go).
	AcceptUnfenced bool
}

func (c *ContinuityClient) url(path string) string {
	return strings.TrimSuffix(c.BaseURL, "/") + "/continuity/v1/guests/" + url.PathEscape(c.Guest) + path
}

func (c *ContinuityClient) do(ctx context.Context, method, path string, body []byte, sign bool, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	if sign {
		if c.Signer == nil {
			return fmt.Errorf("%s %s needs an official's signature", method, path)
		}
		if err := c.Signer.Sign(req); err != nil {
			return err
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return &APIError{Status: resp.StatusCode, ErrorBody: eb}
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// OrderResponse answers a submitted order.
type OrderResponse struct {
	Order  string           `json:"order"`
	Index  uint64           `json:"ledger_index"`
	Status ContinuityStatus `json:"status"`
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
// session.
func (c *ContinuityClient) SubmitSiteKey(ctx context.Context, session, site string, wrapped []byte) error {
	var out UnsealResponse
	return c.do(ctx, http.MethodPost, "/unseal/"+url.PathEscape(session)+"/site-keys/"+url.PathEscape(site), wrapped, false, &out)
}
