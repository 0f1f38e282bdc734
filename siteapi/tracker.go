package siteapi

import (
	"context"
	"net/url"

	"github.com/chancery-gov/chancery/services/access"
)

// TrackerResponse is a citizen's data tracker as an auditor reads it:
// every read of the citizen's records, oldest first.
type TrackerResponse struct {
	Person string        `json:"person"`
	Reads  []access.Seen `json:"reads"`
}

// Tracker reads a citizen's data tracker (GET /v1/tracker/{person}), for an
// official the charter names as an auditor. The read is itself an access
// entry with the purpose given.
func (c *Client) Tracker(ctx context.Context, person, purpose string) (*TrackerResponse, error) {
	var out TrackerResponse
	if err := c.do(ctx, "GET", c.url("/v1/tracker/"+url.PathEscape(person), url.Values{"purpose": {purpose}}), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
