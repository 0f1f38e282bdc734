package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestCaseAndPaymentCommands works a birth case end to end with the
// officials' commands against a real home over pinned TLS — start, queue,
// sign, show, the child's record — then a month of pensions: the run
// started, its file fetched and its digest signed by two ministers, the
// approval written, the file checked offline with the charter alone and
// at the site; an altered file and a bad input are refused naming what
// failed.
func TestCaseAndPaymentCommands(t *testing.T) {
	dir, url := startHome(t)
	as := func(official string) []string {
		return []string{"--state", dir, "--site", "home", "--url", url, "--official", official}
	}
	run := func(official, stdin string, args ...string) string {
		t.Helper()
		out, err := chancery(t, stdin, append(args, as(official)...)...)
		if err != nil {
			t.Fatalf("chancery %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	caseOf := func(out string) siteapi.CaseResponse {
		t.Helper()
		var r siteapi.CaseResponse
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Case == nil {
			t.Fatalf("output is not a case in JSON: %v\n%s", err, out)
		}
		return r
	}

	_, err := chancery(t, "", append([]string{"case", "start", "register-birth", "--input-json", `{"child_id":"DR-2026000009","family_name":"Cli"}`}, as("registrar")...)...)
	if err == nil || !strings.Contains(err.Error(), "input.birth_date") && !strings.Contains(err.Error(), "input.given_name") {
		t.Fatalf("a bad input: %v", err)
	}
	birth := `{"child_id":"DR-2026000009","given_name":"Iva","family_name":"Cli","birth_date":"2026-12-01","place_of_birth":"Capital","mother_id":"DR-0000001"}`
	opened := caseOf(run("registrar", birth, "case", "start", "register-birth", "--input", "-"))
	if opened.Waiting == nil || opened.Waiting.ID != "decide" {
		t.Fatalf("opened: %+v", opened)
	}
	var q siteapi.QueueResponse
	if err := json.Unmarshal([]byte(run("registrar", "", "case", "queue", "--role", "registrar")), &q); err != nil || len(q.Cases) != 1 || q.Cases[0].Case != opened.Case.ID {
		t.Fatalf("queue: %+v, %v", q, err)
	}
	if _, err := chancery(t, "", append([]string{"case", "sign", opened.Case.ID, "--step", "approve"}, as("registrar")...)...); err == nil || !strings.Contains(err.Error(), "waits for step decide") {
		t.Fatalf("sign with the wrong --step: %v", err)
	}
	decided := caseOf(run("registrar", "", "case", "sign", opened.Case.ID, "--step", "decide"))
	if decided.Case.State != procedure.StateDecided {
		t.Fatalf("after sign: %s", decided.Case.State)
	}
	if shown := caseOf(run("notary", "", "case", "show", opened.Case.ID)); shown.Case.State != procedure.StateDecided || len(shown.Case.Steps) != 1 || shown.Case.Steps[0].Official != "registrar" {
		t.Fatalf("show: %+v", shown.Case)
	}
	if rec := run("registrar", "", "records", "get", "population", "DR-2026000009"); !strings.Contains(rec, opened.Case.ID) {
		t.Fatalf("the child's record does not name the case: %s", rec)
	}

	for _, w := range procedure.DemoPensions(7) {
		run("registrar", string(w.Data), "records", "put", w.Registry, w.ID, "-")
	}
	pay := caseOf(run("cio", "", "case", "start", "benefit-payment-run", "--input-json", `{"month":"2026-12","execution_date":"2026-12-20"}`))
	tmp := t.TempDir()
	file, approval := filepath.Join(tmp, "pensions.xml"), filepath.Join(tmp, "approval.json")
	if out := run("cio", "", "payment", "file", pay.Case.ID, "--out", file); !strings.Contains(out, pay.Case.Subject) {
		t.Fatalf("payment file prints %q, want the digest %s", out, pay.Case.Subject)
	}
	for _, m := range []string{"min-interior", "min-justice"} {
		run(m, "", "case", "sign", pay.Case.ID, "--subject", pay.Case.Subject)
	}
	run("cio", "", "payment", "file", pay.Case.ID, "--out", file, "--approval", approval)
	charterFile := state.Layout{Dir: dir}.Charter()
	out, err := chancery(t, "", "payment", "check", file, "--approval", approval, "--charter", charterFile)
	if err != nil || !strings.Contains(out, "APPROVED") || !strings.Contains(out, "7 transfers") {
		t.Fatalf("offline check: %v\n%s", err, out)
	}
	if out := run("cio", "", "payment", "check", file, "--case", pay.Case.ID); !strings.Contains(out, "APPROVED") {
		t.Fatalf("online check: %s", out)
	}
	b, _ := os.ReadFile(file)
	bad := filepath.Join(tmp, "altered.xml")
	os.WriteFile(bad, []byte(strings.Replace(string(b), "Pensioner 000001", "Pensioner 000009", 1)), 0o600)
	if _, err := chancery(t, "", "payment", "check", bad, "--approval", approval, "--charter", charterFile); err == nil || !strings.Contains(err.Error(), "NOT the approved file") {
		t.Fatalf("offline check of an altered file: %v", err)
	}
	if _, err := chancery(t, "", append([]string{"payment", "check", bad, "--case", pay.Case.ID}, as("cio")...)...); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("online check of an altered file: %v", err)
	}
}
