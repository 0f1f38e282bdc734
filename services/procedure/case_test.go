package procedure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chancery-gov/chancery/registry"
)

func TestRegisterBirthDecisionAndEffectLandTogether(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	in := `{"child_id":"DR-2026000001","given_name":"Nia","family_name":"Okafor","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1990000042"}`
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-birth", Input: json.RawMessage(in), Official: "registrar"})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != StateOpen || c.Version != 1 {
		t.Fatalf("opened: %+v", c)
	}
	// Nothing is in the population register before the decision.
	if _, err := fx.reg.Get(ctx, "population", "DR-2026000001", registry.AsOf{}); err == nil {
		t.Fatal("the birth was registered before the registrar decided")
	}
	size := fx.log.Size()
	d, err := fx.eng.Advance(ctx, fx.sign(t, c, "decide", "registrar", fx.keys["registrar"]))
	if err != nil {
		t.Fatal(err)
	}
	if d.State != StateDecided || d.Decision == nil || len(d.Decision.Effects) != 1 {
		t.Fatalf("decided: %+v", d)
	}
	if got := fx.log.Size() - size; got != 2 {
		t.Fatalf("the decision appended %d entries, want 2 (the case and its effect)", got)
	}
	h, err := fx.reg.History(ctx, "population", "DR-2026000001")
	if err != nil || len(h) != 1 || h[0].Index != d.Index+1 {
		t.Fatalf("effect at %+v, case decided at %d: one batch puts the effect right after the case (%v)", h, d.Index, err)
	}
	// Durable: it all reads back after a restart, from the ledger alone.
	fx.reopen(t)
	p := fx.get(t, "population", "DR-2026000001")
	if p["first_name"] != "Nia" || p["registered_by"] != c.ID || p["national_id"] != "DR-2026000001" {
		t.Fatalf("population record: %v", p)
	}
	if _, ok := p["father_id"]; ok {
		t.Fatalf("an optional input left out wrote a field: %v", p)
	}
	back, err := fx.eng.Case(ctx, c.ID)
	if err != nil || back.State != StateDecided || len(back.Steps) != 1 || back.Steps[0].Official != "registrar" {
		t.Fatalf("case after reopen: %v %+v", err, back)
	}
}

func TestChangeOfAddressIsAutomaticAndMerges(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.put(t, "population", "DR-1990000042", person("DR-1990000042", "Ana", "Okafor"))
	in := `{"person_id":"DR-1990000042","street":"3 Harbour Road","city":"Northport","postcode":"12345"}`
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "change-address", Input: json.RawMessage(in), Citizen: "DR-1990000042"})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != StateDecided {
		t.Fatalf("a procedure without steps decides on opening: %+v", c)
	}
	p := fx.get(t, "population", "DR-1990000042")
	if p["address"] != "3 Harbour Road, 12345 Northport" || p["first_name"] != "Ana" || p["address_since"] != "2026-12-04" {
		t.Fatalf("merged record: %v", p)
	}
	// A citizen changes their own address, not a neighbour's.
	_, err = fx.eng.Start(ctx, StartRequest{Procedure: "change-address", Input: json.RawMessage(in), Citizen: "DR-1990000043"})
	wantRefusal(t, err, "input.person_id")
}

func TestTransferParcelNeedsBothConsentsThenTheNotary(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.put(t, "land", "P-17", map[string]any{"parcel_id": "P-17", "owner_id": "DR-1000000001", "area_m2": 812})
	in := `{"parcel_id":"P-17","seller_id":"DR-1000000001","buyer_id":"DR-1000000002","price":125000}`
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "transfer-parcel", Input: json.RawMessage(in), Citizen: "DR-1000000001"})
	if err != nil {
		t.Fatal(err)
	}
	// The buyer cannot consent before the seller, nor the notary decide.
	_, err = fx.eng.Advance(ctx, &Submission{Case: c.ID, Step: "buyer-consents", Citizen: "DR-1000000002"})
	wantRefusal(t, err, "the case waits for step seller-consents")
	_, err = fx.eng.Advance(ctx, &Submission{Case: c.ID, Step: "seller-consents", Citizen: "DR-1000000002"})
	wantRefusal(t, err, "step seller-consents")
	if c, err = fx.eng.Advance(ctx, &Submission{Case: c.ID, Step: "seller-consents", Citizen: "DR-1000000001"}); err != nil {
		t.Fatal(err)
	}
	if c, err = fx.eng.Advance(ctx, &Submission{Case: c.ID, Step: "buyer-consents", Citizen: "DR-1000000002"}); err != nil {
		t.Fatal(err)
	}
	if fx.get(t, "land", "P-17")["owner_id"] != "DR-1000000001" {
		t.Fatal("the parcel moved before the notary decided")
	}
	// The registrar is not a notary.
	_, err = fx.eng.Advance(ctx, fx.sign(t, c, "notarise", "registrar", fx.keys["registrar"]))
	wantRefusal(t, err, "does not hold role notary")
	d, err := fx.eng.Advance(ctx, fx.sign(t, c, "notarise", "notary", fx.keys["notary"]))
	if err != nil {
		t.Fatal(err)
	}
	land := fx.get(t, "land", "P-17")
	if d.State != StateDecided || land["owner_id"] != "DR-1000000002" || land["area_m2"] != float64(812) || land["price"] != float64(125000) {
		t.Fatalf("after the decision: %+v %v", d.Decision, land)
	}
	if got, _ := fx.reg.Find(ctx, "land", "owner_id", "DR-1000000002"); len(got) != 1 {
		t.Fatalf("the new owner's index finds %d parcels", len(got))
	}
}

func TestRegisterBusinessAndCertifiedExtract(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	in := `{"registration_no":"B-000042","name":"Harbour Bakery","founder_id":"DR-1000000001","legal_form":"cooperative","capital":2500.5}`
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-business", Input: json.RawMessage(in), Citizen: "DR-1000000001"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.eng.Advance(ctx, fx.sign(t, c, "decide", "notary", fx.keys["notary"])); err != nil {
		t.Fatal(err) // the notary holds registrar too
	}
	b := fx.get(t, "business", "B-000042")
	if b["name"] != "Harbour Bakery" || b["capital"] != 2500.5 || b["registered_by"] != c.ID {
		t.Fatalf("business: %v", b)
	}

	x, err := fx.eng.Start(ctx, StartRequest{Procedure: "certified-extract", Input: json.RawMessage(`{"person_id":"DR-1000000001","purpose":"visa"}`), Citizen: "DR-1000000001"})
	if err != nil {
		t.Fatal(err)
	}
	want := ExtractRequest{Case: x.ID, Registry: "population", ID: "DR-1000000001", Requester: "citizen:DR-1000000001"}
	if x.State != StateDecided || x.Decision.Extract == nil || *x.Decision.Extract != want {
		t.Fatalf("extract request: %+v", x.Decision)
	}
}

// TestBadInputRefusedAndNothingRecorded is the "Bad input" list
// for procedures: each is refused naming the field or step, and the
// ledger does not grow.
func TestBadInputRefusedAndNothingRecorded(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	birth := func(in string) StartRequest {
		return StartRequest{Procedure: "register-birth", Input: json.RawMessage(in), Official: "registrar"}
	}
	good := `{"child_id":"DR-2026000001","given_name":"Nia","family_name":"Okafor","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1990000042"}`
	open, err := fx.eng.Start(ctx, birth(good))
	if err != nil {
		t.Fatal(err)
	}
	decided, err := fx.eng.Start(ctx, birth(strings.Replace(good, "2026000001", "2026000002", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if decided, err = fx.eng.Advance(ctx, fx.sign(t, decided, "decide", "registrar", fx.keys["registrar"])); err != nil {
		t.Fatal(err)
	}
	pay := fx.startPayment(t, 3)
	if _, err := fx.eng.Advance(ctx, fx.sign(t, pay, "approve", "min-interior", fx.keys["min-interior"])); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"unknown procedure", func() error {
			_, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-death", Input: json.RawMessage(`{}`), Official: "registrar"})
			return err
		}, `procedure: "register-death" is not a declared procedure`},
		{"schema: bad date", func() error {
			_, err := fx.eng.Start(ctx, birth(strings.Replace(good, "2026-12-01", "2026-13-01", 1)))
			return err
		}, "input.birth_date"},
		{"schema: required field missing", func() error {
			_, err := fx.eng.Start(ctx, birth(`{"child_id":"DR-2026000001"}`))
			return err
		}, "input.given_name: required"},
		{"schema: pattern", func() error {
			_, err := fx.eng.Start(ctx, birth(strings.Replace(good, "DR-1990000042", "XX-1", 1)))
			return err
		}, "input.mother_id: does not match"},
		{"schema: undeclared field", func() error {
			_, err := fx.eng.Start(ctx, birth(strings.Replace(good, "{", `{"national_id":"DR-1",`, 1)))
			return err
		}, "input.national_id: not a field"},
		{"schema: repeated member", func() error {
			_, err := fx.eng.Start(ctx, birth(strings.Replace(good, "{", `{"given_name":"X",`, 1)))
			return err
		}, `member "given_name" appears twice`},
		{"schema: wrong type", func() error {
			_, err := fx.eng.Start(ctx, StartRequest{Procedure: "transfer-parcel", Official: "notary",
				Input: json.RawMessage(`{"parcel_id":"P-1","seller_id":"DR-1000000001","buyer_id":"DR-1000000002","price":"free"}`)})
			return err
		}, "input.price: want integer, have string"},
		{"starter without the role", func() error {
			_, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-birth", Input: json.RawMessage(good), Official: "cio"})
			return err
		}, "starter: official cio holds none of the roles"},
		{"citizen may not start", func() error {
			_, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-birth", Input: json.RawMessage(good), Citizen: "DR-1990000042"})
			return err
		}, "starter: a citizen may not start it"},
		{"step signed by the wrong role", func() error {
			_, err := fx.eng.Advance(ctx, fx.sign(t, open, "decide", "cio", fx.keys["cio"]))
			return err
		}, "step decide: official: official cio does not hold role registrar"},
		{"step signed twice by the same official", func() error {
			_, err := fx.eng.Advance(ctx, fx.sign(t, pay, "approve", "min-interior", fx.keys["min-interior"]))
			return err
		}, "step approve: official: official min-interior has already signed this step"},
		{"step advanced after the decision", func() error {
			_, err := fx.eng.Advance(ctx, fx.sign(t, decided, "decide", "notary", fx.keys["notary"]))
			return err
		}, "step decide: the case was decided at"},
		{"signature by another official's key", func() error {
			_, err := fx.eng.Advance(ctx, fx.sign(t, open, "decide", "registrar", fx.keys["notary"]))
			return err
		}, "step decide: sig: the signature of official registrar does not verify"},
		{"signature for another case", func() error {
			sub := fx.sign(t, decided, "decide", "registrar", fx.keys["registrar"])
			sub.Case = open.ID
			_, err := fx.eng.Advance(ctx, sub)
			return err
		}, "step decide: sig:"},
		{"unknown step", func() error {
			_, err := fx.eng.Advance(ctx, fx.sign(t, open, "approve", "registrar", fx.keys["registrar"]))
			return err
		}, "step approve: step: not a step of procedure register-birth"},
		{"unknown case", func() error {
			sub := fx.sign(t, open, "decide", "registrar", fx.keys["registrar"])
			sub.Case = "case-00000000000000000000000000000000"
			_, err := fx.eng.Advance(ctx, sub)
			return err
		}, "case: no such case"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := fx.log.Size()
			err := tc.do()
			wantRefusal(t, err, tc.want)
			if got := fx.log.Size(); got != size {
				t.Fatalf("a refusal appended %d ledger entries", got-size)
			}
		})
	}
	// The refused steps left the open cases as they were.
	if c, err := fx.eng.Case(ctx, open.ID); err != nil || c.Version != 1 || len(c.Steps) != 0 {
		t.Fatalf("open case after refusals: %v %+v", err, c)
	}
}

func wantRefusal(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want a refusal naming %q", want)
	}
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("error %v is not a refusal", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q does not say %q", err, want)
	}
}

func TestAmendedProcedureRefusesOpenCase(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	good := `{"child_id":"DR-2026000001","given_name":"Nia","family_name":"Okafor","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1990000042"}`
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-birth", Input: json.RawMessage(good), Official: "registrar"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := FromCharter(fx.c)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := doc.Lookup("register-birth")
	p.Steps[0].Signatures = 2
	if err := doc.Check(fx.c); err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{Charter: fx.c, Registries: fx.reg, Log: fx.log, Procedures: doc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = eng.Advance(ctx, fx.sign(t, c, "decide", "registrar", fx.keys["registrar"]))
	wantRefusal(t, err, "procedure: procedure register-birth was amended")
}

// TestCachedCaseNotUsedOnceStale: an engine's cache of open cases is used
// only while the registry still names the version cached; a step another
// engine wrote in between is read from the ledger.
func TestCachedCaseNotUsedOnceStale(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	c := fx.startPayment(t, 2) // cached in fx.eng
	other, err := New(Options{Charter: fx.c, Registries: fx.reg, Log: fx.log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Advance(ctx, fx.sign(t, c, "approve", "min-interior", fx.keys["min-interior"])); err != nil {
		t.Fatal(err)
	}
	// The same official again, through the first engine: refused, because
	// it sees the signature the other engine recorded.
	_, err = fx.eng.Advance(ctx, fx.sign(t, c, "approve", "min-interior", fx.keys["min-interior"]))
	wantRefusal(t, err, "already signed")
	d, err := fx.eng.Advance(ctx, fx.sign(t, c, "approve", "min-justice", fx.keys["min-justice"]))
	if err != nil || d.State != StateDecided {
		t.Fatalf("second minister: %v %+v", err, d)
	}
}

// TestCasesLeakNothingToTheHost: a host reads every byte of the ledger;
// a case's input, its procedure and its officials are in none of them.
func TestCasesLeakNothingToTheHost(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	in := `{"child_id":"DR-2026000001","given_name":"Zephyrine","family_name":"Quixotic","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1990000042"}`
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "register-birth", Input: json.RawMessage(in), Official: "registrar"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.eng.Advance(ctx, fx.sign(t, c, "decide", "registrar", fx.keys["registrar"])); err != nil {
		t.Fatal(err)
	}
	fx.close(t) // everything on disk
	secrets := []string{"Zephyrine", "Quixotic", "Northport", "DR-2026000001", "register-birth", strings.TrimPrefix(c.ID, "case-"), `"registrar"`}
	n := 0
	err = filepath.WalkDir(fx.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n += len(b)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in the clear", path, s)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walked %d bytes: %v", n, err)
	}
}

// TestDecisionIsAllOrNothing: when one effect of a decision cannot be
// written (here the second lacks the population register's index field
// last_name), neither the decision nor the first effect lands, and the
// case stays open at its version.
func TestDecisionIsAllOrNothing(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	doc, err := ParseDocument([]byte(`
procedures:
  - id: register-twins
    title: Register twins
    start: {roles: [registrar]}
    input:
      type: object
      required: [first, second, family_name]
      properties:
        first: {type: string}
        second: {type: string}
        family_name: {type: string}
    steps:
      - {id: decide, role: registrar, signatures: 1}
    effects:
      - registry: population
        id: "{input.first}"
        fields: {national_id: "{input.first}", last_name: "{input.family_name}"}
      - registry: population
        id: "{input.second}"
        fields: {national_id: "{input.second}"}
      - registry: land
        id: "P-{input.first}"
        merge: true
        fields: {owner_id: "{input.first}"}
    output: {kind: decision}
`), fx.c)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{Charter: fx.c, Registries: fx.reg, Log: fx.log, Procedures: doc})
	if err != nil {
		t.Fatal(err)
	}
	c, err := eng.Start(ctx, StartRequest{Procedure: "register-twins", Official: "registrar",
		Input: json.RawMessage(`{"first":"DR-1","second":"DR-2","family_name":"Okafor"}`)})
	if err != nil {
		t.Fatal(err)
	}
	// The merge into a parcel that does not exist is refused before
	// anything is written, naming the effect.
	size := fx.log.Size()
	_, err = eng.Advance(ctx, fx.sign(t, c, "decide", "registrar", fx.keys["registrar"]))
	wantRefusal(t, err, "effects[2]: land record P-DR-1: merge")
	if fx.log.Size() != size {
		t.Fatal("a refused decision was recorded")
	}
	fx.put(t, "land", "P-DR-1", map[string]any{"parcel_id": "P-DR-1", "owner_id": "DR-9"})
	size = fx.log.Size()
	// Now the batch itself is refused by the registry, whole.
	_, err = eng.Advance(ctx, fx.sign(t, c, "decide", "registrar", fx.keys["registrar"]))
	if err == nil || !strings.Contains(err.Error(), "apply write 2") || !strings.Contains(err.Error(), "last_name") {
		t.Fatalf("decision with a bad effect: %v", err)
	}
	if fx.log.Size() != size {
		t.Fatalf("a refused decision appended %d entries", fx.log.Size()-size)
	}
	if _, err := fx.reg.Get(ctx, "population", "DR-1", registry.AsOf{}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("the first effect landed without the decision: %v", err)
	}
	got, err := eng.Case(ctx, c.ID)
	if err != nil || got.State != StateOpen || got.Version != 1 || len(got.Steps) != 0 {
		t.Fatalf("case after the failed decision: %v %+v", err, got)
	}
}

func TestVerifyCase(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	fx.put(t, "land", "P-17", map[string]any{"parcel_id": "P-17", "owner_id": "DR-1000000001"})
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "transfer-parcel", Official: "notary",
		Input: json.RawMessage(`{"parcel_id":"P-17","seller_id":"DR-1000000001","buyer_id":"DR-1000000002","price":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"DR-1000000001", "DR-1000000002"} {
		if c, err = fx.eng.Advance(ctx, &Submission{Case: c.ID, Step: map[string]string{"DR-1000000001": "seller-consents", "DR-1000000002": "buyer-consents"}[p], Citizen: p}); err != nil {
			t.Fatal(err)
		}
	}
	if c, err = fx.eng.Advance(ctx, fx.sign(t, c, "notarise", "notary", fx.keys["notary"])); err != nil {
		t.Fatal(err)
	}
	fx.reopen(t)
	c, err = fx.eng.Case(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	doc := fx.eng.Procedures()
	if err := VerifyCase(fx.c, doc, c); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mut  func(k *Case)
		want string
	}{
		"signature altered":  {func(k *Case) { k.Steps[2].Sig[0] ^= 1 }, "steps[2] (notarise): the signature of official notary does not verify"},
		"subject altered":    {func(k *Case) { k.Subject = strings.Repeat("0", 64) }, "does not verify"},
		"consent moved":      {func(k *Case) { k.Steps[1].Citizen = "DR-1000000003" }, "steps[1] (buyer-consents): consent by"},
		"step dropped":       {func(k *Case) { k.Steps = k.Steps[:2] }, "decided with steps incomplete"},
		"input altered":      {func(k *Case) { k.Input = json.RawMessage(`{"parcel_id":"P-17"}`) }, "input.seller_id: required"},
		"procedure replaced": {func(k *Case) { k.ProcedureHash = strings.Repeat("a", 64) }, "is not declared"},
	} {
		k := *c
		k.Steps = slices.Clone(c.Steps)
		for i := range k.Steps {
			k.Steps[i].Sig = bytes.Clone(c.Steps[i].Sig)
		}
		tc.mut(&k)
		if err := VerifyCase(fx.c, doc, &k); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestConcurrentStepsOnOneCase: the same official's signature submitted
// eight times at once counts once; the others are refused as repeats.
func TestConcurrentStepsOnOneCase(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	c := fx.startPayment(t, 2)
	sub := fx.sign(t, c, "approve", "min-interior", fx.keys["min-interior"])
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = fx.eng.Advance(ctx, sub)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !strings.Contains(err.Error(), "already signed") {
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 8 identical signatures accepted, want 1", ok)
	}
	got, err := fx.eng.Case(ctx, c.ID)
	if err != nil || len(got.Steps) != 1 || got.Version != 2 {
		t.Fatalf("case: %v %+v", err, got)
	}
}

func TestInputThatGrowsWhenEncodedIsRefused(t *testing.T) {
	fx := newFixture(t)
	doc, err := ParseDocument([]byte(`
procedures:
  - id: note
    title: File a note
    start: {citizen: true}
    input:
      type: object
      properties:
        text: {type: string}
    output: {kind: decision}
`), fx.c)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := New(Options{Charter: fx.c, Registries: fx.reg, Log: fx.log, Procedures: doc})
	if err != nil {
		t.Fatal(err)
	}
	// U+2028 is 3 bytes in the submission and 6 ("\u2028") once encoded:
	// a submission under the limit would make a case record too large
	// for one ledger entry.
	text := strings.Repeat("\u2028", 10900)
	size := fx.log.Size()
	_, err = eng.Start(context.Background(), StartRequest{Procedure: "note", Citizen: "DR-1000000001",
		Input: json.RawMessage(`{"text":"` + text + `"}`)})
	wantRefusal(t, err, "input: 65")
	if fx.log.Size() != size {
		t.Fatal("recorded")
	}
}
