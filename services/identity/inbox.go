package identity

import (
	"context"
	"errors"
	"net/http"

	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/message"
)

// Inbox is where the signed-in citizen's messages are (services/message;
// the guest at the site that serves the issuer).
type Inbox interface {
	Inbox(ctx context.Context, person string) ([]message.Header, error)
	OpenMessage(ctx context.Context, person, id string) (*message.Message, error)
}

// WithInbox serves the signed-in citizen's inbox beside the issuer's
// paths: GET /inbox lists it, GET /inbox/{id} opens one message, which
// the inbox records as an access entry. Only the citizen the portal token
// was issued to is served: a relying party's token acts for the citizen
// but is not them (403), and no token is 401.
func (s *Service) WithInbox(in Inbox) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inbox", func(w http.ResponseWriter, r *http.Request) {
		person, ok := s.citizen(w, r)
		if !ok {
			return
		}
		hs, err := in.Inbox(r.Context(), person)
		if err != nil {
			s.inboxError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, hs)
	})
	mux.HandleFunc("GET /inbox/{id}", func(w http.ResponseWriter, r *http.Request) {
		person, ok := s.citizen(w, r)
		if !ok {
			return
		}
		m, err := in.OpenMessage(r.Context(), person, r.PathValue("id"))
		if err != nil {
			s.inboxError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, m)
	})
	mux.Handle("/", s)
	return mux
}

// citizen authenticates the portal token of a request: the citizen's
// person id, or the refusal answered and false.
func (s *Service) citizen(w http.ResponseWriter, r *http.Request) (string, bool) {
	w.Header().Set("Cache-Control", "no-store")
	if err := s.active(); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "this site does not serve the guest now: "+err.Error())
		return "", false
	}
	p, ok := s.reader(w, r, "", false)
	if !ok {
		return "", false
	}
	if p.Kind != access.KindCitizen {
		oauthError(w, http.StatusForbidden, "access_denied", "the inbox is served to the citizen (portal sign-in) only")
		return "", false
	}
	return p.ID, true
}

func (s *Service) inboxError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, message.ErrNoMessage):
		oauthError(w, http.StatusNotFound, "not_found", "no such message for this citizen")
	case errors.Is(err, message.ErrRefused):
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
	default:
		s.opts.Logger.Error("inbox", "error", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "the inbox is unavailable")
	}
}
