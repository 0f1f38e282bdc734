package siteapi

import (
	"context"
	"net/url"
	"time"
)

// TrackerResponse is a citizen's data tracker as an auditor reads it:
// every read of the citizen's records, oldest first.
type TrackerResponse struct {
	Person string        `json:"person"`
	Reads  []TrackedRead `json:"reads"`
}

// TrackedRead is one read of a citizen's records (services/access.Seen
// on the wire).
type TrackedRead struct {
	Index    uint64    `json:"index"` // the access entry's ledger index
	Time     time.Time `json:"time"`
	Site     string    `json:"site"`
	Registry string    `json:"registry"`
	Kind     string    `json:"kind"`
	// Reader is official, citizen or client; Who the official's or
	// client's id, or "self" when the citizen read their own records.
	Reader  string `json:"reader"`
	Who     string `json:"who"`
	Purpose string `json:"purpose,omitempty"`
}

// Tracker reads a citizen's data tracker (GET /v1/tracker/{person}), for
// an official the charter names as an auditor. The read is itself an
// access entry with the purpose given.
func (c *Client) Tracker(ctx context.Context, person, purpose string) (*TrackerResponse, error) {
	var out TrackerResponse
	if err := c.do(ctx, "GET", c.url("/v1/tracker/"+url.PathEscape(person), url.Values{"purpose": {purpose}}), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
