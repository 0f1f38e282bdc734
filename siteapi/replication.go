package siteapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/chancery-gov/chancery/replica"
)

// ReplicationStatus is GET /replica/v1/status at the writer: how far each
// site is behind it.
type ReplicationStatus struct {
	Guest string        `json:"guest"`
	Size  uint64        `json:"ledger_size"`
	Sites []replica.Lag `json:"sites"`
}

// ErrNoReplication is returned by FetchStatus from a site that ships to
// no other.
var ErrNoReplication = errors.New("no replication at this site")

// FetchStatus reads a home's replication status (chancery status).
func FetchStatus(ctx context.Context, base string, client *http.Client) (*ReplicationStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/replica/v1/status", nil)
	if err != nil {
		return nil, err
	}
	var st ReplicationStatus
	if err := roundTrip(client, req, &st); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, ErrNoReplication
		}
		return nil, fmt.Errorf("replication status of %s: %w", base, err)
	}
	return &st, nil
}
