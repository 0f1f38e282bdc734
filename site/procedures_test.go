package site_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/procedure"
)

// TestBirthCaseAtHome: the registrar registers a birth through the home's
// API with embassy-north replicating (the population registry waits for a
// quorum of one other site): opened, signed, decided, and the child's
// record written by the decision, with the case named in it.
func TestBirthCaseAtHome(t *testing.T) {
	dc := startDrillCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opened, err := dc.registrar.StartCase(ctx, "register-birth", json.RawMessage(`{"child_id":"DR-2026000002","given_name":"Nova","family_name":"Home","birth_date":"2026-11-30","place_of_birth":"Capital","mother_id":"DR-0000001","father_id":"DR-0000002"}`))
	if err != nil {
		t.Fatal(err)
	}
	claim, err := opened.Claim("registrar")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := procedure.SignStep(claim, officialKey(t, dc.dir, "registrar"))
	if err != nil {
		t.Fatal(err)
	}
	decided, err := dc.registrar.SubmitStep(ctx, &procedure.Submission{Case: claim.Case, Step: claim.Step, Official: "registrar", Sig: sig})
	if err != nil {
		t.Fatal(err)
	}
	if decided.Case.State != procedure.StateDecided || decided.Index <= opened.Index {
		t.Fatalf("decided: %+v at %d", decided.Case, decided.Index)
	}
	rec, err := dc.registrar.Get(ctx, "population", "DR-2026000002", registry.AsOf{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Index != decided.Index+1 || !strings.Contains(string(rec.Data), `"registered_by":"`+opened.Case.ID+`"`) || !strings.Contains(string(rec.Data), `"first_name":"Nova"`) {
		t.Fatalf("birth record at %d (case decided at %d): %s", rec.Index, decided.Index, rec.Data)
	}
	got, err := dc.registrar.Case(ctx, opened.Case.ID)
	if err != nil || got.Case.State != procedure.StateDecided || got.Version != 2 {
		t.Fatalf("case read back: %+v, %v", got, err)
	}
	if err := procedure.VerifyCase(dc.c, mustProcedures(t, dc), got.Case); err != nil {
		t.Fatalf("the case does not verify offline: %v", err)
	}
}

func mustProcedures(t *testing.T, dc *drillCluster) *procedure.Document {
	t.Helper()
	d, err := procedure.FromCharter(dc.c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
