package main

import (
	"fmt"
	"net/http"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/pintls"
)

// pinnedClient is an HTTPS client that trusts only the TLS key the charter
// pins for a site: how a command reaches a site that serves with tls_key,
// whose certificate no authority signed.
func pinnedClient(charterFile, siteID string) (*http.Client, error) {
	c, err := charter.ReadVerified(charterFile)
	if err != nil {
		return nil, err
	}
	s, ok := c.Site(siteID)
	if !ok {
		return nil, fmt.Errorf("--pin-site %q is not a site of %s's charter", siteID, c.Guest.ID)
	}
	pub, err := s.TLSPublicKey()
	if err != nil {
		return nil, fmt.Errorf("tls key of site %s: %w", siteID, err)
	}
	cfg, err := pintls.ClientConfig(nil, pub)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: pintls.Transport(cfg)}, nil
}
