package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/siteapi"
)

// as is the fixture's API client signing as official.
func (f *accessFixture) as(t *testing.T, official string) *siteapi.Client {
	c := *f.api
	c.Signer.Official = official
	c.Signer.Key = accessKey(t, state.Layout{Dir: f.dir}, official)
	return &c
}

// sign signs the step case r waits for, as official.
func (f *accessFixture) sign(t *testing.T, r *siteapi.CaseResponse, official string) *procedure.Submission {
	t.Helper()
	claim, err := r.Claim(official)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := procedure.SignStep(claim, accessKey(t, state.Layout{Dir: f.dir}, official))
	if err != nil {
		t.Fatal(err)
	}
	return &procedure.Submission{Case: claim.Case, Step: claim.Step, Official: official, Sig: sig}
}

// refused checks that err is an API error of status naming field, and
// that the ledger did not grow from size.
func (f *accessFixture) refused(t *testing.T, what string, err error, status int, field string, size uint64) {
	t.Helper()
	var ae *siteapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: %v, want an API error", what, err)
	}
	if ae.Status != status || ae.Field != field {
		t.Fatalf("%s: HTTP %d field %q (%s), want HTTP %d field %q", what, ae.Status, ae.Field, ae.ErrorBody.Error, status, field)
	}
	if got := f.tn.Ledger().Size(); got != size {
		t.Fatalf("%s: the refusal grew the ledger from %d to %d entries", what, size, got)
	}
}

// TestCasesThroughTheAPI: at an activated embassy, the registrar opens a
// birth case through the officials' API and finds it in the queue, and
// registers a business — open, sign, decided — whose record the decision
// writes. Bad input, a step by the wrong role, a forged signature and a
// step after the decision are each refused naming the field, with the
// right status, and append nothing; reading the case is one access entry.
func TestCasesThroughTheAPI(t *testing.T) {
	f := startAccessFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := f.api
	list, err := reg.Procedures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Procedures) != 6 || list.Procedures[0].ID != "register-birth" {
		t.Fatalf("procedures: %d, first %q", len(list.Procedures), list.Procedures[0].ID)
	}
	good := `{"child_id":"DR-2026000001","given_name":"Nova","family_name":"Access","birth_date":"2026-11-30","place_of_birth":"Northland","mother_id":"DR-0000001"}`
	size := f.tn.Ledger().Size()
	for _, tc := range []struct{ name, input, field string }{
		{"a required field missing", `{"child_id":"DR-2026000001","family_name":"Access","birth_date":"2026-11-30","place_of_birth":"Northland","mother_id":"DR-0000001"}`, "input.given_name"},
		{"not a date", strings.Replace(good, "2026-11-30", "2026-13-01", 1), "input.birth_date"},
		{"a field the procedure does not declare", strings.Replace(good, `"given_name"`, `"national_id":"DR-1","given_name"`, 1), "input.national_id"},
		{"an id against its pattern", strings.Replace(good, "DR-2026000001", "XX-1", 1), "input.child_id"},
	} {
		_, err := reg.StartCase(ctx, "register-birth", json.RawMessage(tc.input))
		f.refused(t, tc.name, err, http.StatusBadRequest, tc.field, size)
	}
	_, err = reg.StartCase(ctx, "register-death", json.RawMessage(good))
	f.refused(t, "an undeclared procedure", err, http.StatusBadRequest, "procedure", size)
	_, err = f.as(t, "cio").StartCase(ctx, "register-birth", json.RawMessage(good))
	f.refused(t, "a starter without the role", err, http.StatusForbidden, "starter", size)

	opened, err := reg.StartCase(ctx, "register-birth", json.RawMessage(good))
	if err != nil {
		t.Fatal(err)
	}
	if opened.Case.State != procedure.StateOpen || opened.Waiting == nil || opened.Waiting.ID != "decide" || opened.Version != 1 {
		t.Fatalf("opened: %+v waiting %+v", opened.Case, opened.Waiting)
	}
	if got := f.tn.Ledger().Size(); got != size+1 {
		t.Fatalf("opening appended %d entries, want 1", got-size)
	}
	q, err := reg.Queue(ctx, "registrar")
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Cases) != 1 || q.Cases[0].Case != opened.Case.ID || q.Cases[0].Step != "decide" {
		t.Fatalf("registrar's queue: %+v", q.Cases)
	}
	if q, err := reg.Queue(ctx, "minister"); err != nil || len(q.Cases) != 0 {
		t.Fatalf("minister's queue: %+v, %v", q, err)
	}

	size = f.tn.Ledger().Size()
	_, err = f.as(t, "cio").SubmitStep(ctx, f.sign(t, opened, "cio"))
	f.refused(t, "a step signed by the wrong role", err, http.StatusForbidden, "official", size)
	forged := f.sign(t, opened, "registrar")
	forged.Sig[0] ^= 1
	_, err = reg.SubmitStep(ctx, forged)
	f.refused(t, "a forged signature", err, http.StatusForbidden, "sig", size)
	_, err = f.as(t, "notary").SubmitStep(ctx, f.sign(t, opened, "registrar"))
	f.refused(t, "another official's signature", err, http.StatusForbidden, "official", size)

	// The population registry waits for a quorum of other sites, which
	// this fixture does not run (TestBirthCaseAtHome decides a birth
	// with embassy-north replicating): the decision here is a business's,
	// whose registry is asynchronous.
	opened, err = reg.StartCase(ctx, "register-business", json.RawMessage(`{"registration_no":"B-000777","name":"Access Bakery","founder_id":"DR-0000001","legal_form":"cooperative"}`))
	if err != nil {
		t.Fatal(err)
	}
	size = f.tn.Ledger().Size()
	decided, err := reg.SubmitStep(ctx, f.sign(t, opened, "registrar"))
	if err != nil {
		t.Fatal(err)
	}
	if decided.Case.State != procedure.StateDecided || decided.Waiting != nil || len(decided.Case.Decision.Effects) != 1 {
		t.Fatalf("decided: %+v", decided.Case)
	}
	if got := f.tn.Ledger().Size(); got != size+2 {
		t.Fatalf("the decision appended %d entries, want 2 (the case and the business, one batch)", got-size)
	}
	rec, err := reg.Get(ctx, "business", "B-000777", registry.AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec.Data), `"registered_by":"`+opened.Case.ID+`"`) {
		t.Fatalf("business record: %s", rec.Data)
	}

	size = f.tn.Ledger().Size()
	_, err = f.as(t, "notary").SubmitStep(ctx, f.sign(t, opened, "notary"))
	f.refused(t, "a step after the decision", err, http.StatusConflict, "step", size)

	e := f.oneEntry(t, procedure.CasesRegistry, []string{"Bakery", opened.Case.ID}, func() error {
		got, err := reg.Case(ctx, opened.Case.ID)
		if err == nil && got.Case.State != procedure.StateDecided {
			err = fmt.Errorf("case read back %s", got.Case.State)
		}
		return err
	})
	if b := f.keys(procedure.CasesRegistry).BlindID(opened.Case.ID); e.Kind != continuity.AccessRecord || string(e.BlindID) != string(b[:]) || e.Version != 2 {
		t.Fatalf("access entry of the case read: %+v", e)
	}
	size = f.tn.Ledger().Size()
	_, err = reg.Case(ctx, "case-00000000000000000000000000000000")
	var ae *siteapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Field != "case" {
		t.Fatalf("an unknown case: %v", err)
	}
	if got := f.tn.Ledger().Size(); got != size+1 {
		t.Fatalf("looking up an unknown case appended %d entries, want its access entry", got-size)
	}
}

// TestPaymentRunThroughTheAPI: the CIO runs a month of pensions; the
// file is fetched and checked before approval (not yet approved: 409),
// two ministers approve it, the site checks the file (and refuses a file
// one byte off, 422 naming the file), and the approval verifies offline
// with the charter alone.
func TestPaymentRunThroughTheAPI(t *testing.T) {
	f := startAccessFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, w := range procedure.DemoPensions(12) {
		if _, err := f.api.Put(ctx, w.Registry, w.ID, w.Data); err != nil {
			t.Fatal(err)
		}
	}
	cio := f.as(t, "cio")
	run, err := cio.StartCase(ctx, "benefit-payment-run", json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-20"}`))
	if err != nil {
		t.Fatal(err)
	}
	if run.Case.Payment == nil || run.Case.Payment.NbOfTxs != 12 || run.Waiting == nil || run.Waiting.ID != "approve" {
		t.Fatalf("run: %+v", run.Case)
	}
	file, err := cio.PaymentFile(ctx, run.Case.ID)
	if err != nil {
		t.Fatal(err)
	}
	if procedure.Digest(file) != run.Case.Subject {
		t.Fatal("the file served is not the one the approvers sign")
	}
	size := f.tn.Ledger().Size()
	_, err = cio.CheckPaymentFile(ctx, run.Case.ID, file)
	f.refused(t, "a check before approval", err, http.StatusConflict, "step", size)

	cur, err := f.as(t, "min-interior").SubmitStep(ctx, f.sign(t, run, "min-interior"))
	if err != nil {
		t.Fatal(err)
	}
	size = f.tn.Ledger().Size()
	_, err = f.as(t, "min-interior").SubmitStep(ctx, f.sign(t, run, "min-interior"))
	f.refused(t, "a step signed twice by the same official", err, http.StatusForbidden, "official", size)
	if cur, err = f.as(t, "min-justice").SubmitStep(ctx, f.sign(t, run, "min-justice")); err != nil {
		t.Fatal(err)
	}
	if cur.Case.State != procedure.StateDecided {
		t.Fatalf("after two ministers: %s", cur.Case.State)
	}
	ok, err := cio.CheckPaymentFile(ctx, run.Case.ID, file)
	if err != nil || !ok.Approved || ok.Digest != run.Case.Subject {
		t.Fatalf("check of the approved file: %+v, %v", ok, err)
	}
	bad := append([]byte(nil), file...)
	i := strings.Index(string(bad), "<InstdAmt")
	bad[i+len(`<InstdAmt Ccy="EUR">`)] ^= 1
	size = f.tn.Ledger().Size()
	_, err = cio.CheckPaymentFile(ctx, run.Case.ID, bad)
	f.refused(t, "an altered file", err, http.StatusUnprocessableEntity, "file", size)

	a, err := cio.Approval(ctx, run.Case.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := procedure.VerifyPaymentFile(f.tn.Charter(), file, a); err != nil {
		t.Fatalf("the bank's offline check: %v", err)
	}
	if err := procedure.VerifyPaymentFile(f.tn.Charter(), bad, a); !errors.Is(err, procedure.ErrDigestMismatch) {
		t.Fatalf("the bank's offline check of an altered file: %v", err)
	}
}

// TestCitizenSteps: the citizen path the portal calls (guest.Procedures
// with a signed-in citizen). A notary opens a parcel transfer; the
// seller's queue shows it; the buyer cannot consent for the seller; each
// consents in turn; the notary's signature decides it and the parcel's
// owner changes. A citizen reads a case that names them (one access
// entry, reader citizen, no person in clear) and is refused another's.
func TestCitizenSteps(t *testing.T) {
	f := startAccessFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := f.api.Put(ctx, "land", "P-77", json.RawMessage(`{"parcel_id":"P-77","owner_id":"DR-0000001"}`)); err != nil {
		t.Fatal(err)
	}
	procs, err := f.tn.Procedures()
	if err != nil {
		t.Fatal(err)
	}
	seller, buyer := guest.Actor{Citizen: "DR-0000001"}, guest.Actor{Citizen: "DR-0000002"}
	opened, err := f.as(t, "notary").StartCase(ctx, "transfer-parcel", json.RawMessage(`{"parcel_id":"P-77","seller_id":"DR-0000001","buyer_id":"DR-0000002","price":1000}`))
	if err != nil {
		t.Fatal(err)
	}
	q, err := procs.Queue(ctx, seller, "")
	if err != nil || len(q) != 1 || q[0].Case != opened.Case.ID || q[0].Step != "seller-consents" {
		t.Fatalf("the seller's queue: %+v, %v", q, err)
	}
	if q, err := procs.Queue(ctx, buyer, ""); err != nil || len(q) != 0 {
		t.Fatalf("the buyer's queue before the seller consents: %+v, %v", q, err)
	}
	size := f.tn.Ledger().Size()
	_, err = procs.Submit(ctx, buyer, &procedure.Submission{Case: opened.Case.ID, Step: "seller-consents"})
	var rf *procedure.Refusal
	if !errors.As(err, &rf) || rf.Field != "citizen" || f.tn.Ledger().Size() != size {
		t.Fatalf("the buyer consenting for the seller: %v", err)
	}
	for _, st := range []struct {
		who  guest.Actor
		step string
	}{{seller, "seller-consents"}, {buyer, "buyer-consents"}} {
		if _, err := procs.Submit(ctx, st.who, &procedure.Submission{Case: opened.Case.ID, Step: st.step}); err != nil {
			t.Fatalf("%s: %v", st.step, err)
		}
	}
	if q, err := f.as(t, "notary").Queue(ctx, "notary"); err != nil || len(q.Cases) != 1 || q.Cases[0].Step != "notarise" {
		t.Fatalf("the notary's queue: %+v, %v", q, err)
	}
	r, err := f.as(t, "notary").Case(ctx, opened.Case.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.as(t, "notary").SubmitStep(ctx, f.sign(t, r, "notary")); err != nil {
		t.Fatal(err)
	}
	rec, err := f.api.Get(ctx, "land", "P-77", registry.AsOf{})
	if err != nil || !strings.Contains(string(rec.Data), `"owner_id":"DR-0000002"`) || !strings.Contains(string(rec.Data), `"parcel_id":"P-77"`) {
		t.Fatalf("the parcel after the transfer: %s, %v", rec.Data, err)
	}

	from := f.tn.Ledger().Size()
	c, err := procs.Case(ctx, buyer, opened.Case.ID)
	if err != nil || c.State != procedure.StateDecided {
		t.Fatalf("the buyer reads the case: %+v, %v", c, err)
	}
	es, raws, size := f.entriesSince(t, from)
	if size != from+1 || len(es) != 1 || es[0].Reader != continuity.ReaderCitizen || es[0].Registry != procedure.CasesRegistry || strings.Contains(string(raws[0]), "DR-0000002") {
		t.Fatalf("the citizen's read appended %d entries: %+v", size-from, es)
	}
	if _, err := procs.Case(ctx, guest.Actor{Citizen: "DR-0000003"}, opened.Case.ID); !errors.Is(err, guest.ErrNotAllowed) {
		t.Fatalf("a citizen the case does not name: %v", err)
	}
}
