package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chancery-gov/chancery/internal/browsertest"
)

const fixtureCase = "case-6f1d2c9a0b7e4d3f8a5c1e2b9d0f7a6c"

// deskFixture is the desk of registrar Pavel Horak: one case waiting, one
// order waiting for the minister, and a search that finds one record.
func deskFixture() DeskHooks {
	return DeskHooks{
		Desk: func(context.Context, Viewer) (*Desk, error) {
			return &Desk{Official: "notary", Roles: []string{"notary", "registrar"},
				Registries: []DeskRegistry{{Name: "population", Index: []string{"national_id", "last_name"}}, {Name: "land", Index: []string{"parcel_id", "owner_id"}}},
				Cases:      []CaseRow{{ID: fixtureCase, Title: "Register a birth", Step: "decide", Role: "registrar", Signatures: 1, Starter: "registrar", Opened: "2026-12-04 22:58:10 UTC"}},
				Orders: []PendingOrder{{ID: "ord-2026-12-04-activate-north", Summary: "order ord-2026-12-04-activate-north: activate embassy-north read-write, epoch 2: the home is lost",
					Expires: "2026-12-05 23:00 UTC", Signed: []string{"cio"}, Missing: "activate needs 2 of minister, cio with at least 1 minister; 1 valid signature",
					Command:  "chancery order sign ord-2026-12-04-activate-north.order --official notary && chancery ui order ord-2026-12-04-activate-north.order --site embassy-north --official notary",
					Download: "/ui/desk/orders/ord-2026-12-04-activate-north", MaySign: true}},
				OrdersHow: "An order waits here when an official leaves it at this site with chancery ui order ORDERFILE.",
			}, nil
		},
		DeskSearch: func(_ context.Context, _ Viewer, q DeskQuery) ([]DeskRecord, error) {
			if q.Value != "DR-2026000017" {
				return nil, nil
			}
			return []DeskRecord{{Registry: "population", ID: "DR-2026000017", Version: 1, Fields: []DeskField{
				{"national_id", "DR-2026000017"}, {"first_name", "Ilse"}, {"last_name", "Berg"}, {"birth_date", "2026-12-01"}, {"registered_by", fixtureCase}}}}, nil
		},
		DeskCase: func(_ context.Context, _ Viewer, id string) (*CaseView, error) {
			if id != fixtureCase {
				return nil, fmt.Errorf("no case %s", id)
			}
			return &CaseView{ID: id, Title: "Register a birth", Procedure: "register-birth", State: "open", Starter: "registrar", Opened: "2026-12-04 22:58:10 UTC",
				Subject: "5d41402abc4b2a76b9719d911017c592ae2b1d3e6f0a9c8b7d6e5f4a3b2c1d0e",
				Input:   []DeskField{{"child_id", "DR-2026000017"}, {"given_name", "Ilse"}, {"family_name", "Berg"}, {"birth_date", "2026-12-01"}, {"mother_id", "DR-1000001"}},
				Waiting: "decide", Role: "registrar", Signatures: 1,
				Command: "chancery case sign " + id + " --step decide --subject 5d41402abc4b2a76b9719d911017c592ae2b1d3e6f0a9c8b7d6e5f4a3b2c1d0e --site embassy-north --official notary"}, nil
		},
		DeskOrder: func(context.Context, Viewer, string) ([]byte, error) { return []byte("{}\n"), nil },
	}
}

// TestDeskSearchForm: the search is a POST carrying the session's CSRF
// token; without it nothing is read.
func TestDeskSearchForm(t *testing.T) {
	_, u := newFixture(t)
	post := func(form url.Values) (int, string) {
		r := httptest.NewRequest("POST", "/ui/desk/search", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
		w := httptest.NewRecorder()
		u.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	q := url.Values{"registry": {"population"}, "field": {"id"}, "value": {"DR-2026000017"}}
	if code, body := post(q); code != http.StatusForbidden || strings.Contains(body, "Ilse") {
		t.Fatalf("without the token: %d", code)
	}
	q.Set("csrf", u.csrf.token(testSession))
	if code, body := post(q); code != http.StatusOK || !strings.Contains(body, "Ilse") {
		t.Fatalf("with the token: %d\n%s", code, body)
	}
}

// TestDeskInABrowser: the desk's search with script off, its results and
// the case page pass axe-core; screenshots for docs/ui.md.
func TestDeskInABrowser(t *testing.T) {
	_, u := newFixture(t)
	base := serveUI(t, u)
	shots := screenshotDir(t)
	b := browsertest.New(t, false)
	if err := b.SetCookie(base, SessionCookie, testSession); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(30*time.Second,
		chromedp.Navigate(base+"/ui/desk"),
		chromedp.SendKeys(chromedp.CSS("#value"), "DR-2026000017"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/desk/search"] button`)),
		chromedp.WaitVisible(chromedp.CSS("table.record")),
	); err != nil {
		t.Fatal(err)
	}
	vs, err := b.Axe()
	if err != nil {
		t.Fatal(err)
	}
	if s := browsertest.Serious(vs); len(s) > 0 {
		t.Errorf("desk search results: %d serious or critical accessibility violations: %v", len(s), s)
	}
	if shots != "" {
		if err := b.Screenshot(filepath.Join(shots, "ui-desk-search.png")); err != nil {
			t.Fatal(err)
		}
	}
}
