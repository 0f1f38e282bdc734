package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
)

// The pages' security rules, the same on every page:
//
//   - a strict Content-Security-Policy: scripts, styles and images only
//     from the site itself, no inline script or style, no plugins, no
//     framing (and X-Frame-Options for older browsers), forms post only
//     back to the site;
//   - the session cookie is HttpOnly, Secure and SameSite=Strict;
//   - every form carries a CSRF token bound to the session, checked in
//     constant time before anything changes.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// SessionCookie is the name of the pages' session cookie.
const SessionCookie = "__Host-chancery-session"

// csrf makes and checks the per-session form tokens: HMAC-SHA-256 of the
// session id under a key drawn at start, so tokens need no storage and die
// with the process, as the sessions do.
type csrf struct{ key [32]byte }

func newCSRF() (*csrf, error) {
	c := &csrf{}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *csrf) token(session string) string {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte("chancery-ui-csrf/v1\x00"))
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errCSRF = errors.New("the form's security token is missing or does not match this session: reload the page and submit the form again")

func (c *csrf) check(session, got string) error {
	want := c.token(session)
	if session == "" || !hmac.Equal([]byte(want), []byte(got)) {
		return errCSRF
	}
	return nil
}

// SetSession sets the session cookie, with the attributes the pages'
// rules require. The value is an opaque id the site's sign-in chose.
func SetSession(w http.ResponseWriter, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// session is the session id the request carries, or "".
func session(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}
