package siteapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// LeftOrder answers an order left at a site for signatures.
type LeftOrder struct {
	Order   string   `json:"order"`
	Signers []string `json:"signers"`
	// Missing is what the order's quorum still needs; empty when met.
	Missing string `json:"missing,omitempty"`
	// Desk is the page where the officials see it.
	Desk string `json:"desk"`
}

// LeaveOrder leaves a continuity order (its file bytes, signed by any
// number of officials, even none) at a site, so that the officials' desk
// shows it with who signed and who still must. The request is signed by
// an official; the site keeps the order in memory, merging the
// signatures of copies of the same order.
func LeaveOrder(ctx context.Context, hc *http.Client, siteURL, guest string, s Signer, order []byte) (*LeftOrder, error) {
	sg, err := s.forGuest(guest)
	if err != nil {
		return nil, err
	}
	req, err := signedRequest(ctx, sg, http.MethodPost, strings.TrimSuffix(siteURL, "/")+"/ui/v1/guests/"+url.PathEscape(guest)+"/orders", order)
	if err != nil {
		return nil, err
	}
	var out LeftOrder
	return &out, roundTrip(hc, req, &out)
}
