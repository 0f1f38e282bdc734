package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/access"
)

// Passkeys: a citizen signed in to the portal registers a passkey at
// home; the credential (public key, sign count, flags) is a record of the
// passkey registry, replicated sealed like any record, keyed by the
// credential id and indexed by person id. Any active site checks an
// assertion against the charter's RP id and origins, refuses a sign count
// that did not go up (a cloned authenticator), and writes the new count
// back as a new version of the record so the next site knows it.

// ErrCloned is the refusal of an assertion whose sign count did not go up.
var ErrCloned = errors.New("passkey sign count went backwards or stood still: the authenticator may be cloned")

// maxWebAuthnBody bounds a ceremony's JSON.
const maxWebAuthnBody = 64 << 10

// PasskeyRecord is the record of one passkey in the passkey registry.
type PasskeyRecord struct {
	PersonID   string              `json:"person_id"`
	Credential webauthn.Credential `json:"credential"`
}

type passkeys struct {
	s  *Service
	wa *webauthn.WebAuthn

	mu       sync.Mutex
	sessions map[string]pkSession // by registration session id or authorization request id
}

type pkSession struct {
	person string // registration: the citizen registering
	data   webauthn.SessionData
}

type pkUser struct {
	person string
	creds  []webauthn.Credential
}

func (u *pkUser) WebAuthnID() []byte                         { return []byte(u.person) }
func (u *pkUser) WebAuthnName() string                       { return u.person }
func (u *pkUser) WebAuthnDisplayName() string                { return u.person }
func (u *pkUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func newPasskeys(s *Service) (*passkeys, error) {
	p := s.cfg.Portal
	wa, err := webauthn.New(&webauthn.Config{RPID: p.RPID, RPDisplayName: p.RPName, RPOrigins: p.Origins})
	if err != nil {
		return nil, fmt.Errorf("services.identity.portal: %w", err)
	}
	if wa.Config.RPDisplayName == "" {
		wa.Config.RPDisplayName = p.RPID
	}
	return &passkeys{s: s, wa: wa, sessions: map[string]pkSession{}}, nil
}

func (p *passkeys) routes(m *http.ServeMux) {
	m.HandleFunc("POST /passkey/register/begin", p.registerBegin)
	m.HandleFunc("POST /passkey/register/finish", p.registerFinish)
	m.HandleFunc("POST /passkey/login/begin", p.loginBegin)
	m.HandleFunc("POST /passkey/login/finish", p.loginFinish)
}

func (p *passkeys) put(key string, s pkSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sessions) >= maxChallenges {
		now := p.s.now()
		for k, v := range p.sessions {
			if now.After(v.data.Expires) {
				delete(p.sessions, k)
			}
		}
	}
	p.sessions[key] = s
}

// take consumes a ceremony's session: single use.
func (p *passkeys) take(key string) (pkSession, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[key]
	delete(p.sessions, key)
	if ok && !s.data.Expires.IsZero() && p.s.now().After(s.data.Expires) {
		return pkSession{}, false
	}
	return s, ok
}

// Begin responses carry the ceremony's key and the options for
// navigator.credentials.create / get.
type passkeyBegin struct {
	Session string `json:"session,omitempty"`
	Options any    `json:"options"`
}

func (p *passkeys) registerBegin(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.s.reader(w, r, "", false)
	if !ok {
		return
	}
	if pr.Kind != access.KindCitizen {
		oauthError(w, http.StatusForbidden, "access_denied", "passkeys are registered by the citizen through the portal")
		return
	}
	existing, err := p.credentialsOf(r.Context(), pr.ID)
	if err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	user := &pkUser{person: pr.ID, creds: existing}
	opts, data, err := p.wa.BeginRegistration(user, webauthn.WithExclusions(webauthn.Credentials(existing).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	id := newID()
	p.put(id, pkSession{person: pr.ID, data: *data})
	writeJSON(w, http.StatusOK, passkeyBegin{Session: id, Options: opts})
}

func (p *passkeys) registerFinish(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.s.reader(w, r, "", false)
	if !ok {
		return
	}
	sess, ok := p.take(r.URL.Query().Get("session"))
	if !ok || pr.Kind != access.KindCitizen || sess.person != pr.ID {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unknown, expired or another citizen's registration")
		return
	}
	parsed, err := ParseRegistration(r.Body)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	cred, err := p.wa.CreateCredential(&pkUser{person: pr.ID}, sess.data, parsed)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "passkey registration: "+describe(err))
		return
	}
	if err := p.save(r.Context(), pr.ID, cred); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": base64.RawURLEncoding.EncodeToString(cred.ID)})
}

func (p *passkeys) loginBegin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if _, err := p.s.store.AuthRequestByID(r.Context(), id); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	opts, data, err := p.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	p.put(id, pkSession{data: *data})
	writeJSON(w, http.StatusOK, passkeyBegin{Options: opts})
}

func (p *passkeys) loginFinish(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	sess, ok := p.take(id)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "access_denied", "unknown, expired or used passkey challenge")
		return
	}
	parsed, err := ParseAssertion(r.Body)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	var rec *PasskeyRecord
	user, cred, err := p.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		pr, err := p.load(r.Context(), rawID)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(userHandle, []byte(pr.PersonID)) {
			return nil, errors.New("user handle is not the passkey's citizen")
		}
		rec = pr
		return &pkUser{person: pr.PersonID, creds: []webauthn.Credential{pr.Credential}}, nil
	}, sess.data, parsed)
	if err != nil {
		oauthError(w, http.StatusUnauthorized, "access_denied", "passkey: "+describe(err))
		return
	}
	if cred.Authenticator.CloneWarning {
		oauthError(w, http.StatusUnauthorized, "access_denied", fmt.Sprintf("%v (stored %d)", ErrCloned, rec.Credential.Authenticator.SignCount))
		return
	}
	person := user.(*pkUser).person
	// The new count is written before the sign-in completes, so that a
	// replayed or cloned assertion fails at whichever site comes next.
	if err := p.save(r.Context(), person, cred); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", err.Error())
		return
	}
	p.s.completeSignIn(w, r, id, person, []string{"hwk", "user"})
}

func (p *passkeys) registry() string { return p.s.cfg.Portal.PasskeyRegistry }

func (p *passkeys) save(ctx context.Context, person string, cred *webauthn.Credential) error {
	data, err := json.Marshal(PasskeyRecord{PersonID: person, Credential: *cred})
	if err != nil {
		return err
	}
	if _, err := p.s.opts.Registries.Put(ctx, p.registry(), base64.RawURLEncoding.EncodeToString(cred.ID), data, nil); err != nil {
		return fmt.Errorf("store passkey in registry %s: %w", p.registry(), err)
	}
	return nil
}

func (p *passkeys) load(ctx context.Context, rawID []byte) (*PasskeyRecord, error) {
	rec, err := p.s.opts.Registries.Get(ctx, p.registry(), base64.RawURLEncoding.EncodeToString(rawID), registry.AsOf{})
	if err != nil || rec.Deleted {
		return nil, errors.New("unknown passkey")
	}
	var pr PasskeyRecord
	if err := json.Unmarshal(rec.Data, &pr); err != nil {
		return nil, fmt.Errorf("passkey record: %w", err)
	}
	return &pr, nil
}

func (p *passkeys) credentialsOf(ctx context.Context, person string) ([]webauthn.Credential, error) {
	recs, err := p.s.opts.Registries.Find(ctx, p.registry(), "person_id", person)
	if err != nil {
		return nil, fmt.Errorf("passkeys of a citizen: %w", err)
	}
	var out []webauthn.Credential
	for _, rec := range recs {
		var pr PasskeyRecord
		if json.Unmarshal(rec.Data, &pr) == nil {
			out = append(out, pr.Credential)
		}
	}
	return out, nil
}

// ParseRegistration parses a registration ceremony's JSON (the
// PublicKeyCredential the browser returns), bounded in size.
func ParseRegistration(r io.Reader) (*protocol.ParsedCredentialCreationData, error) {
	b, err := readBounded(r, "passkey registration")
	if err != nil {
		return nil, err
	}
	pcc, err := protocol.ParseCredentialCreationResponseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("passkey registration: %s", describe(err))
	}
	return pcc, nil
}

// ParseAssertion parses an authentication ceremony's JSON, bounded in size.
func ParseAssertion(r io.Reader) (*protocol.ParsedCredentialAssertionData, error) {
	b, err := readBounded(r, "passkey assertion")
	if err != nil {
		return nil, err
	}
	par, err := protocol.ParseCredentialRequestResponseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("passkey assertion: %s", describe(err))
	}
	return par, nil
}

// readBounded reads a ceremony's body, refusing more than maxWebAuthnBody.
func readBounded(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxWebAuthnBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > maxWebAuthnBody {
		return nil, fmt.Errorf("%s: more than %d bytes", what, maxWebAuthnBody)
	}
	return b, nil
}

// describe includes the library's detail, which names what failed (the
// origin, the RP id hash, the signature).
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return pe.Details + ": " + pe.DevInfo
	}
	return err.Error()
}
