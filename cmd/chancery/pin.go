package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

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

// siteClient is the HTTP client a command reaches rawURL with: pinned to
// the charter's TLS key for site pinSite when given (it needs
// charterFile), else one that trusts the system's authorities and says how
// to pin when a site's certificate fails that check. With mustPin — every
// command that talks to a site, whose answers it acts on — an address that
// is not loopback must be https and pinned: a certificate authority that
// a host state can compel would otherwise let it sit in the middle, and
// give custodians its own unseal recipient. Loopback is this machine:
// demos, tests, and an operator on the site's own host.
func siteClient(rawURL, charterFile, pinSite string, mustPin bool) (*http.Client, error) {
	if pinSite == "" {
		if !mustPin || isLoopbackURL(rawURL) {
			return unpinnedClient(), nil
		}
		return nil, fmt.Errorf("%s is not on this machine: name it by its id with the charter (--site SITE-ID and --charter, or a context), so that only the TLS key the charter pins for the site is trusted (never a certificate authority)", rawURL)
	}
	if charterFile == "" {
		return nil, fmt.Errorf("--site needs --charter")
	}
	if mustPin && !strings.HasPrefix(rawURL, "https://") && !isLoopbackURL(rawURL) {
		return nil, fmt.Errorf("%s is not on this machine: reach it over https, pinned", rawURL)
	}
	return pinnedClient(charterFile, pinSite)
}

// unpinnedClient is the client of a site reached without a pin (loopback,
// a ledger mirror): the default transport, but a certificate no authority
// signed, which is what every site serving with tls_key presents, is
// answered with the flags that pin it rather than a bare x509 error.
func unpinnedClient() *http.Client {
	return &http.Client{Transport: hintTransport{http.DefaultTransport}}
}

// hintTransport adds to a failed certificate check how to pin the site.
type hintTransport struct{ next http.RoundTripper }

func (h hintTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	var cv *tls.CertificateVerificationError
	if err != nil && errors.As(err, &cv) {
		return nil, fmt.Errorf("%w\n%s serves a certificate no authority signed: Chancery sites are reached pinned to the TLS key their charter gives them. Name the site by its id with the charter: --site SITE-ID --charter charter.yaml (or a context: chancery context add)", err, req.URL.Host)
	}
	return resp, err
}

// isLoopbackURL reports whether rawURL names this machine: localhost or a
// loopback address.
func isLoopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
