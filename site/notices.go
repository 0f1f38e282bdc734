package site

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/services/notice"
	"github.com/chancery-gov/chancery/siteapi"
)

// Public notices, the online check of extracts and messages to citizens
// (docs/notices.md, siteapi/notices.go for the routes).
//
// The feeds and the online check are public: notices are public, and the
// check answers only with versions and ledger indexes that the ledger a
// host holds (and every site serves at …/ledger) already shows — never a
// record's contents. Both are served by every site of the guest in every
// mode, since they read only the ledger the site holds.

// mountPublic registers a guest's public notices and online extract
// check under prefix ("/guests/<guest>", or "" for a home's root).
func (s *Site) mountPublic(mux *http.ServeMux, prefix string, t *tenant) {
	mux.HandleFunc("GET "+prefix+"/notices.atom", s.serveFeed(t, prefix, "application/atom+xml", notice.Atom))
	mux.HandleFunc("GET "+prefix+"/notices.json", s.serveFeed(t, prefix, "application/feed+json", notice.JSON))
	mux.HandleFunc("GET "+prefix+"/extract-status", s.serveExtractStatus(t))
}

// serveFeed renders the guest's proven notices with render.
func (s *Site) serveFeed(t *tenant, prefix, ctype string, render func(notice.Feed, []*notice.Proven) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := t.PublicNotices(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, siteapi.ErrorBody{Error: "notices of " + t.ID() + ": " + err.Error()})
			return
		}
		f.Feed.URL = requestBase(r) + r.URL.Path
		b, err := render(f.Feed, f.Notices)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, siteapi.ErrorBody{Error: "notices of " + t.ID() + ": " + err.Error()})
			return
		}
		w.Header().Set("Content-Type", ctype)
		// How many notices await a cosigned checkpoint: a reader seeing
		// fewer notices here than elsewhere knows why.
		w.Header().Set("Chancery-Notices-Pending", strconv.Itoa(f.Pending))
		w.Header().Set("Cache-Control", "public, max-age=30")
		w.WriteHeader(http.StatusOK)
		w.Write(b)
	}
}

// requestBase is the scheme and host a request reached, for a feed's
// self link.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// parseExtractStatus reads the online check's query: the registry, the
// ledger index of the certified version's entry, and its version.
func parseExtractStatus(q url.Values) (reg string, index, version uint64, err error) {
	reg = q.Get("registry")
	if reg == "" || len(reg) > 255 {
		return "", 0, 0, errors.New("registry: required, at most 255 bytes")
	}
	if index, err = strconv.ParseUint(q.Get("record_index"), 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("record_index: %w", err)
	}
	if version, err = strconv.ParseUint(q.Get("version"), 10, 64); err != nil || version == 0 {
		return "", 0, 0, fmt.Errorf("version: a positive integer is required")
	}
	return reg, index, version, nil
}

// serveExtractStatus answers the online check of an extract.
func (s *Site) serveExtractStatus(t *tenant) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reg, index, version, err := parseExtractStatus(r.URL.Query())
		if err != nil {
			field, _, _ := strings.Cut(err.Error(), ":")
			writeJSON(w, http.StatusBadRequest, siteapi.ErrorBody{Error: err.Error(), Field: field})
			return
		}
		st, err := t.Supersession(r.Context(), reg, index, version)
		var re *guest.RefusedError
		switch {
		case errors.As(err, &re):
			writeJSON(w, http.StatusUnprocessableEntity, siteapi.ErrorBody{Error: re.Msg})
		case err != nil:
			s.log.Error("online extract check failed", "guest", t.ID(), "error", err)
			writeJSON(w, http.StatusInternalServerError, siteapi.ErrorBody{Error: "online check failed"})
		default:
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusOK, st)
		}
	}
}

// mountNotices registers the officials' routes that publish a notice
// and send a message to a citizen.
func (g *officialsAPI) mountNotices(mux *http.ServeMux, prefix string) {
	mux.Handle("POST "+prefix+"/notices", g.authed(ActionWrite, false, g.publishNotice))
	mux.Handle("POST "+prefix+"/messages", g.authed(ActionWrite, false, g.sendMessage))
}

// refused answers a guest's refusal as 422 naming what is wrong; other
// errors as the API's others.
func (g *officialsAPI) refused(w http.ResponseWriter, r *http.Request, err error) {
	var re *guest.RefusedError
	if errors.As(err, &re) {
		err = newHTTPError(http.StatusUnprocessableEntity, "", re.Msg)
	}
	g.fail(w, r, err, "", "")
}

// publishNotice serves POST …/v1/notices: the body is the signed notice.
// The official who posts it need not be a signer: the quorum is in the
// signatures.
func (g *officialsAPI) publishNotice(w http.ResponseWriter, r *http.Request, _ *charter.Official) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		g.fail(w, r, err, "", "")
		return
	}
	s, err := notice.Parse(bytes.TrimSpace(body))
	if err != nil {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "", err.Error()), "", "")
		return
	}
	idx, err := g.guest.PublishNotice(r.Context(), s)
	if err != nil {
		g.refused(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, siteapi.NoticeReceipt{ID: s.Notice.ID, Index: idx})
}

// parseMessageRequest decodes POST …/v1/messages strictly.
func parseMessageRequest(b []byte) (*siteapi.MessageRequest, error) {
	var m siteapi.MessageRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return nil, errors.New("request body: more than one JSON value")
	}
	if m.Person == "" {
		return nil, errors.New("person: required, the citizen's person id")
	}
	return &m, nil
}

// sendMessage serves POST …/v1/messages.
func (g *officialsAPI) sendMessage(w http.ResponseWriter, r *http.Request, o *charter.Official) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		g.fail(w, r, err, "", "")
		return
	}
	m, err := parseMessageRequest(body)
	if err != nil {
		g.fail(w, r, newHTTPError(http.StatusBadRequest, "", err.Error()), "", "")
		return
	}
	h, err := g.guest.DeliverMessage(r.Context(), o.ID, m.Person, guest.MessageDraft{Subject: m.Subject, Body: m.Body, Lang: m.Lang})
	if err != nil {
		g.refused(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, siteapi.MessageReceipt{ID: h.ID, Version: h.Version, Index: h.Index, SealedToCitizen: h.SealedToCitizen})
}
