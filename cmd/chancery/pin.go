package main

import (
	"net/http"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
)

// pinnedClient is an HTTPS client that trusts only the TLS key the charter
// pins for a site: how a command reaches a site that serves with tls_key,
// whose certificate no authority signed.
func pinnedClient(charterFile, siteID string) (*http.Client, error) {
	c, err := charter.ReadVerified(charterFile)
	if err != nil {
		return nil, err
	}
	return audit.PinnedClient(c, siteID)
}
