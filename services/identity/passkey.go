package identity

import "net/http"

// passkeys is filled in by the passkey ceremony (below).
type passkeys struct{ s *Service }

func newPasskeys(s *Service) (*passkeys, error) { return &passkeys{s: s}, nil }

func (p *passkeys) routes(m *http.ServeMux) {}
