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
)

//go:embed demo.yaml
var demoYAML []byte

// DemoYAML returns the Demo Republic's procedures document (demo.yaml):
// the section a demo charter declares under services.procedures.
func DemoYAML() []byte { return append([]byte(nil), demoYAML...) }
