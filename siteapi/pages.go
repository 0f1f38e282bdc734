package siteapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// UILogin is a site's answer to a signed page sign-in request: a
// single-use path under the site's URL that opens a browser session for
// the signer, valid until Expires.
type UILogin struct {
	Path    string    `json:"path"`
	Expires time.Time `json:"expires"`
}

// LoginPages asks the site at siteURL for a page sign-in link for guest,
// signed by s (an official of the guest's charter). The pages are then
// reached as that official, never more than the API allows them.
func LoginPages(ctx context.Context, hc *http.Client, siteURL, guest string, s Signer) (*UILogin, error) {
	sg, err := s.forGuest(guest)
	if err != nil {
		return nil, err
	}
	return loginPages(ctx, hc, strings.TrimSuffix(siteURL, "/")+"/ui/v1/guests/"+url.PathEscape(guest)+"/login", sg)
}

// LoginPages asks for a page sign-in link for the host's operator: the
// host console, showing what the operator API shows.
func (c *OperatorClient) LoginPages(ctx context.Context) (*UILogin, error) {
	sg, err := c.Signer.forGuest(c.Guest)
	if err != nil {
		return nil, err
	}
	return loginPages(ctx, c.HTTP, strings.TrimSuffix(c.BaseURL, "/")+"/ui/v1/operator/guests/"+url.PathEscape(c.Guest)+"/login", sg)
}

func loginPages(ctx context.Context, hc *http.Client, u string, s *Signer) (*UILogin, error) {
	req, err := signedRequest(ctx, s, http.MethodPost, u, nil)
	if err != nil {
		return nil, err
	}
	var out UILogin
	return &out, roundTrip(hc, req, &out)
}
