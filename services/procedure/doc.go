// Package procedure runs the guest state's declared legal administrative
// procedures: the procedures themselves are data, declared in the charter's
// services.procedures section (so the amend quorum signs and amends them);
// a case is a sequence of signed steps kept as sealed record versions in
// the cases registry; the decision and all its effects land in one ledger
// batch (registry.Apply). A benefit payment run is a procedure whose
// output is an ISO 20022 pain.001.001.09 file, approved by officials'
// signatures over its SHA-256, which a bank checks with VerifyPaymentFile.
// docs/procedures.md gives the formats.
package procedure

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/registry"
)

//go:embed demo.yaml
var demoYAML []byte

// DemoYAML returns the Demo Republic's procedures document (demo.yaml):
// the section a demo charter declares under services.procedures.
func DemoYAML() []byte { return append([]byte(nil), demoYAML...) }

// DemoRegistries are the registries the demo procedures need beyond the
// Demo Republic's five: the cases themselves, and the pensions register a
// benefit payment run pays from. sites are the sites that hold them.
func DemoRegistries(sites []string) []charter.Registry {
	return []charter.Registry{
		{Name: CasesRegistry, Classification: charter.ClassSecret, Sites: sites, Index: []string{"procedure"}, Sync: charter.SyncAsync},
		{Name: "pensions", Classification: charter.ClassSecret, Sites: sites, Index: []string{"program"}, Sync: charter.SyncAsync},
	}
}

// DemoPensions are n deterministic records of the pensions register, all
// of the old-age programme, with valid IBANs and amounts from 650.00 to
// 1,149.99: the beneficiaries of the demo's payment run.
func DemoPensions(n int) []registry.Write {
	ws := make([]registry.Write, n)
	for i := range ws {
		id := fmt.Sprintf("PEN-%06d", i+1)
		rec := map[string]string{
			"pension_id":     id,
			"program":        "old-age",
			"name":           fmt.Sprintf("Pensioner %06d", i+1),
			"iban":           MakeIBAN("DR", fmt.Sprintf("BANK%014d", i+1)),
			"monthly_amount": formatAmount(65000 + int64(i*7919)%50000),
		}
		b, _ := json.Marshal(rec) // strings only: cannot fail
		ws[i] = registry.Write{Registry: "pensions", ID: id, Data: b}
	}
	return ws
}
