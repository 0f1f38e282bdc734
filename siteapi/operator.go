package siteapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// OperatorStatus is what the host operator sees of one guest: sizes,
// counts and health, never content.
type OperatorStatus struct {
	Guest        string      `json:"guest"`
	Site         string      `json:"site"`
	Mode         Mode        `json:"mode"`
	Entries      uint64      `json:"ledger_entries"`
	Epoch        uint64      `json:"epoch"`
	Checkpoint   uint64      `json:"checkpoint_size"`
	UsedBytes    int64       `json:"used_bytes"`
	QuotaBytes   int64       `json:"quota_bytes"` // 0: none
	FreeBytes    int64       `json:"disk_free_bytes"`
	LastBatch    *time.Time  `json:"last_batch,omitempty"`
	SinceBatch   float64     `json:"seconds_since_last_batch,omitempty"`
	Batches      int64       `json:"batches"`
	Objects      int64       `json:"packs"`
	Refused      int64       `json:"refused"`
	Suspension   *Suspension `json:"suspension,omitempty"`
	SuspendedNow bool        `json:"suspended"`
}

// SuspendRequest is the body of POST /operator/v1/guests/{guest}/suspend.
type SuspendRequest struct {
	Reason string `json:"reason"`
}

// Suspension is a host's notice that it will suspend a guest at a site.
// It carries the host's signed request itself, so that the writer, and any
// auditor after it, can check that the host gave it.
type Suspension struct {
	Guest       string        `json:"guest"`
	Site        string        `json:"site"`       // the site id in the guest's charter
	Host        string        `json:"host"`       // the host that gave notice
	Signed      string        `json:"signed_for"` // the site name the host signed for
	Reason      string        `json:"reason"`
	GivenAt     time.Time     `json:"given_at"`
	EffectiveAt time.Time     `json:"effective_at"`
	Request     SignedRequest `json:"request"`
	// RecordedAt is the ledger index of the writer's notice entry for it,
	// once the site holds that entry; the suspension takes effect only
	// then, and not before EffectiveAt.
	RecordedAt *uint64 `json:"recorded_at,omitempty"`
}

// SignedRequest is an HTTP request as it was signed (SigningString).
type SignedRequest struct {
	Method    string `json:"method"`
	Target    string `json:"target"`
	Signature string `json:"signature"` // the Chancery-Signature header
	Body      []byte `json:"body"`
}

// Digest names a suspension in the ledger's notice.
func (sp *Suspension) Digest() string {
	h := sha256.New()
	h.Write([]byte(sp.Request.Method + "\n" + sp.Request.Target + "\n" + sp.Request.Signature + "\n"))
	h.Write(sp.Request.Body)
	return hex.EncodeToString(h.Sum(nil))
}

// OperatorClient calls a site's host-operator API for one guest, signing
// as the host (Signer.Official is the host's id in the guest's charter,
// Signer.Site the site's own name).
type OperatorClient struct {
	BaseURL string
	Guest   string
	Signer  Signer
	HTTP    *http.Client
}

func (c *OperatorClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	u := strings.TrimSuffix(c.BaseURL, "/") + "/operator/v1/guests/" + url.PathEscape(c.Guest) + path
	sg, err := c.Signer.forGuest(c.Guest)
	if err != nil {
		return err
	}
	req, err := signedRequest(ctx, sg, method, u, body)
	if err != nil {
		return err
	}
	return roundTrip(c.HTTP, req, out)
}

// Status reads what the host may see of the guest at its site.
func (c *OperatorClient) Status(ctx context.Context) (*OperatorStatus, error) {
	var out OperatorStatus
	return &out, c.do(ctx, http.MethodGet, "/status", nil, &out)
}

// Suspend gives notice that the host will suspend the guest at its site,
// for reason. The site answers with the notice; it takes effect once the
// guest's writer has recorded it and the charter's notice period has run.
func (c *OperatorClient) Suspend(ctx context.Context, reason string) (*Suspension, error) {
	body, err := json.Marshal(SuspendRequest{Reason: reason})
	if err != nil {
		return nil, err
	}
	var out Suspension
	return &out, c.do(ctx, http.MethodPost, "/suspend", body, &out)
}
