package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// portalFixture is a citizen's portal over figures the test controls: a
// person with a few records, a long data tracker, an inbox, notices and
// procedures; it counts the extracts it is asked for.
type portalFixture struct {
	mu       sync.Mutex
	extracts []string
}

func (f *portalFixture) portal(now time.Time) *Portal {
	recs := &MyRecords{Person: "DR-0000101", Name: "Alice Varga", Records: []RecordView{
		{Registry: "population", ID: "DR-0000101", Version: 3, Fields: []Field{{"address", "12 Harbour Street, 10115 Northland"}, {"birth_date", "1980-02-03"}, {"first_name", "Alice"}, {"last_name", "Varga"}, {"national_id", "DR-0000101"}}},
		{Registry: "land", ID: "P-101", Version: 1, Fields: []Field{{"area_m2", "812"}, {"owner_id", "DR-0000101"}, {"parcel_id", "P-101"}}},
		{Registry: "business", ID: "B-000101", Version: 1, Fields: []Field{{"name", "Varga Bakery"}, {"owner_id", "DR-0000101"}, {"registration_no", "B-000101"}}},
	}}
	var track []TrackRow
	for i := range 200 {
		track = append(track, TrackRow{When: now.Add(-time.Duration(i) * time.Hour), Site: "embassy-north", Registry: "population", Kind: "record",
			Reader: "official", Who: fmt.Sprintf("registrar-%d", i%7), Purpose: "benefit eligibility check"})
	}
	return &Portal{
		Begin: func(context.Context) (*SignIn, error) {
			return &SignIn{Flow: "flow-1", Issuer: "https://id.demo-republic.example", AuthRequest: "ar-1", Challenge: "Y2hhbGxlbmdl", Message: []byte("chancery eid sign-in v1\x00"), Expires: now.Add(2 * time.Minute), Passkey: true}, nil
		},
		EID: func(context.Context, string, EIDAnswer) (string, error) { return "", errors.New("no eID here") },
		Finish: func(context.Context, string, url.Values) (string, time.Duration, error) {
			return "", 0, errors.New("no sign-in here")
		},
		SignOut: func(string) {},
		Records: func(context.Context, Viewer) (*MyRecords, error) { return recs, nil },
		Tracker: func(context.Context, Viewer) ([]TrackRow, error) { return track, nil },
		Extract: func(_ context.Context, _ Viewer, reg, id string, fields []string) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.extracts = append(f.extracts, reg+"/"+id)
			return "x1", nil
		},
		Issued: func(_ context.Context, _ Viewer, id string) (*IssuedExtract, error) {
			if id != "x1" {
				return nil, errors.New("no such extract")
			}
			return &IssuedExtract{ID: "x1", Registry: "land", Record: "P-101", Version: 1, Fields: []string{"owner_id", "parcel_id"}, Issued: now, QRPNG: []byte("\x89PNG"), PDF: []byte("%PDF-1.4")}, nil
		},
		Passkey: func(context.Context, Viewer, string, string, io.Reader) ([]byte, error) { return []byte(`{}`), nil },
		Acts: PortalActs{
			Notices: func(context.Context) ([]Notice, error) {
				return []Notice{{ID: "n-1", Class: "emergency", Title: "The government is operating from abroad", Body: "Services continue from embassy-north.", Site: "embassy-north", Issued: now, Index: 1201}}, nil
			},
			Inbox: func(context.Context, Viewer) ([]MessageRow, error) {
				return []MessageRow{{ID: "m-1", From: "registrar", Subject: "Your passport renewal", Sent: now}}, nil
			},
			Message: func(context.Context, Viewer, string) (*MessageView, error) {
				return &MessageView{MessageRow: MessageRow{ID: "m-1", From: "registrar", Subject: "Your passport renewal", Sent: now}, Body: "Ready at the embassy."}, nil
			},
			Procedures: func(context.Context, Viewer) (*ProceduresView, error) {
				return &ProceduresView{Forms: []ProcedureForm{{ID: "change-address", Title: "Change of address", Fields: []InputField{
					{Name: "person_id", Label: "person id", Type: "text", Value: "DR-0000101", Fixed: true},
					{Name: "street", Label: "street", Type: "text", Required: true},
					{Name: "postcode", Label: "postcode", Type: "text", Pattern: "^[0-9]{5}$", Required: true},
				}}}, Waiting: []Waiting{{Case: "case-1", Title: "Transfer a parcel", Step: "buyer-consents", Starter: "citizen:DR-0000102", Opened: "2026-12-04T22:00:00Z",
					Input: []Field{{"parcel_id", "P-102"}, {"price", "25000"}}}}}, nil
			},
			Start:   func(context.Context, Viewer, string, url.Values) (string, error) { return "case-2", nil },
			Consent: func(context.Context, Viewer, string, string) error { return nil },
			Case: func(context.Context, Viewer, string) (*CitizenCase, error) {
				return &CitizenCase{ID: "case-2", Title: "Change of address", State: "decided", Decision: "decision; wrote population record DR-0000101"}, nil
			},
		},
	}
}

// portalPages are the portal's pages a signed-in citizen sees.
var portalPages = []string{"/portal/", "/portal/signin", "/portal/records", "/portal/tracker", "/portal/extracts/x1", "/portal/notices",
	"/portal/inbox", "/portal/inbox/m-1", "/portal/procedures", "/portal/cases/case-2"}

func TestPortalPagesAreStrict(t *testing.T) {
	_, u := newFixture(t)
	for _, p := range portalPages {
		res := get(t, u, p, true)
		b := body(t, res)
		want := http.StatusOK
		if p == "/portal/" {
			want = http.StatusSeeOther // signed in: to the records
		}
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", p, res.StatusCode, want)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", p, res.Header)
		}
		if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`).MatchString(b) || strings.Contains(b, " style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(b) {
			t.Errorf("%s has inline script, style or an event handler attribute", p)
		}
		if strings.Contains(b, "/ui/static/") {
			t.Errorf("%s loads assets from /ui/static/, which the issuer's name does not serve", p)
		}
	}
	// Signed out, the pages say to sign in and show nothing.
	for _, p := range []string{"/portal/records", "/portal/tracker", "/portal/inbox", "/portal/procedures"} {
		res := get(t, u, p, false)
		if b := body(t, res); res.StatusCode != http.StatusForbidden || strings.Contains(b, "Varga") || strings.Contains(b, "passport") {
			t.Errorf("%s signed out: %d", p, res.StatusCode)
		}
	}
	// The sign-in page sets the flow cookie as the session cookie is set.
	res := get(t, u, "/portal/signin", false)
	c := res.Cookies()
	if len(c) != 1 || c[0].Name != FlowCookie || !c[0].HttpOnly || !c[0].Secure || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("flow cookie %v", c)
	}
}

func TestPortalFormsNeedTheirCSRFToken(t *testing.T) {
	f, u := newFixture(t)
	form := url.Values{"registry": {"land"}, "record": {"P-101"}, "field": {"owner_id"}}
	for _, tok := range []string{"", "forged", u.csrf.token("another-session"), u.csrf.token(flowBinding(testSession))} {
		form.Set("csrf", tok)
		if res := post(t, u, "/portal/extracts", form, true); res.StatusCode != http.StatusForbidden {
			t.Errorf("token %q: %d", tok, res.StatusCode)
		}
	}
	if len(f.portal.extracts) != 0 {
		t.Fatalf("a refused form issued an extract: %v", f.portal.extracts)
	}
	form.Set("csrf", u.csrf.token(testSession))
	if res := post(t, u, "/portal/extracts", form, true); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/portal/extracts/x1" {
		t.Fatalf("valid form: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	// The eID form is bound to the sign-in flow in its cookie, not to a session.
	r := httptest.NewRequest("POST", "/portal/signin/eid", strings.NewReader(url.Values{"csrf": {u.csrf.token(testSession)}, "certificate": {"x"}, "signature": {"y"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(&http.Cookie{Name: FlowCookie, Value: "flow-1"})
	w := httptest.NewRecorder()
	u.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("an eID form with the session's token, not the flow's: %d", w.Code)
	}
	// The passkey script's calls carry the token in a header.
	r = httptest.NewRequest("POST", "/portal/passkeys/begin", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
	w = httptest.NewRecorder()
	u.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("a passkey call without the token: %d", w.Code)
	}
}

func TestPortalPageWeight(t *testing.T) {
	_, u := newFixture(t)
	assets := len(body(t, get(t, u, "/portal/static/style.css", false))) + len(body(t, get(t, u, "/portal/static/portal.js", false)))
	for _, p := range portalPages[1:] {
		n := len(body(t, get(t, u, p, true))) + assets
		if n > 100<<10 {
			t.Errorf("%s weighs %d bytes with its assets, more than 100 KB", p, n)
		}
		t.Logf("%s: %d bytes with assets", p, n)
	}
}
