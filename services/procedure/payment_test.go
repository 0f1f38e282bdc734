package procedure

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// startPayment seeds n old-age pensioners (and two people of another
// program, who must not be paid) and opens a payment run.
func (fx *fixture) startPayment(t testing.TB, n int) *Case {
	t.Helper()
	for i := range n {
		fx.put(t, "pensions", fmt.Sprintf("PEN-%06d", i), pensioner(i, "old-age", fmt.Sprintf("%d.%02d", 700+i%300, i%100)))
	}
	fx.put(t, "pensions", "SRV-1", pensioner(900001, "survivor", "400.00"))
	fx.put(t, "pensions", "SRV-2", pensioner(900002, "survivor", "410.00"))
	c, err := fx.eng.Start(context.Background(), StartRequest{Procedure: "benefit-payment-run", Official: "cio",
		Input: json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-28"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPaymentRunApprovedByQuorumAndCheckedByTheBank(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	c := fx.startPayment(t, 25)
	if c.Payment == nil || c.Payment.NbOfTxs != 25 || c.Subject != c.Payment.Digest {
		t.Fatalf("payment case: %+v %+v", c, c.Payment)
	}
	file, err := fx.eng.PaymentFile(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkPain001(t, file, 25)
	if _, err := fx.eng.Approval(ctx, c.ID); err == nil {
		t.Fatal("an approval was issued before the quorum signed")
	}
	if _, err := fx.eng.Advance(ctx, fx.sign(t, c, "approve", "min-interior", fx.keys["min-interior"])); err != nil {
		t.Fatal(err)
	}
	size := fx.log.Size()
	d, err := fx.eng.Advance(ctx, fx.sign(t, c, "approve", "min-justice", fx.keys["min-justice"]))
	if err != nil {
		t.Fatal(err)
	}
	if d.State != StateDecided || fx.log.Size()-size != 1 {
		t.Fatalf("approval: state %s, %d entries", d.State, fx.log.Size()-size)
	}
	fx.reopen(t)
	a, err := fx.eng.Approval(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != Digest(file) || a.Index != d.Index || a.NbOfTxs != 25 {
		t.Fatalf("approval: %+v", a)
	}
	// The bank, with the charter alone.
	if err := VerifyPaymentFile(fx.c, file, a); err != nil {
		t.Fatal(err)
	}
	if err := fx.eng.CheckPaymentFile(ctx, c.ID, file); err != nil {
		t.Fatal(err)
	}
	// A file whose digest differs is refused: one amount changed, and
	// every single byte flipped in turn over the first kilobyte.
	altered := bytes.Replace(file, []byte(">700.00<"), []byte(">7000.00<"), 1)
	if bytes.Equal(altered, file) {
		t.Fatal("test file has no 700.00 amount")
	}
	for _, f := range [][]byte{altered, append(bytes.Clone(file), ' ')} {
		if err := VerifyPaymentFile(fx.c, f, a); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("altered file: %v", err)
		}
		if err := fx.eng.CheckPaymentFile(ctx, c.ID, f); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("altered file at the site: %v", err)
		}
	}
	for i := 0; i < len(file) && i < 1024; i++ {
		f := bytes.Clone(file)
		f[i] ^= 0x01
		if err := VerifyPaymentFile(fx.c, f, a); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// An approval short of its quorum, or with a signature moved to
	// another digest, is refused even for the right file.
	short := *a
	short.Steps = []StepApproval{{Step: "approve", Signatures: a.Steps[0].Signatures[:1]}}
	if err := VerifyPaymentFile(fx.c, file, &short); err == nil || !strings.Contains(err.Error(), "need 2 of minister") {
		t.Fatalf("one minister's approval: %v", err)
	}
	forged := *a
	forged.Digest = Digest(altered)
	if err := VerifyPaymentFile(fx.c, altered, &forged); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("approval moved to another file: %v", err)
	}
}

func TestPaymentRunSelectsAsOfLedgerIndex(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	for i := range 5 {
		fx.put(t, "pensions", fmt.Sprintf("PEN-%06d", i), pensioner(i, "old-age", "100.00"))
	}
	asOf := fx.log.Size() - 1
	// After the index: one pensioner's amount rises, one moves to another
	// program, one is added. The run as of the index sees none of it.
	fx.put(t, "pensions", "PEN-000000", pensioner(0, "old-age", "999.99"))
	fx.put(t, "pensions", "PEN-000001", pensioner(1, "survivor", "100.00"))
	fx.put(t, "pensions", "PEN-000009", pensioner(9, "old-age", "100.00"))
	start := func(idx uint64) (*Case, error) {
		return fx.eng.Start(ctx, StartRequest{Procedure: "benefit-payment-run", Official: "min-interior",
			Input: json.RawMessage(fmt.Sprintf(`{"month":"2026-12","execution_date":"2026-12-28","as_of":%d}`, idx))})
	}
	c, err := start(asOf)
	if err != nil {
		t.Fatal(err)
	}
	if c.Payment.NbOfTxs != 5 || c.Payment.CtrlSum != "500.00" || c.Payment.AsOf != asOf {
		t.Fatalf("as of %d: %+v", asOf, c.Payment)
	}
	now, err := fx.eng.Start(ctx, StartRequest{Procedure: "benefit-payment-run", Official: "min-interior",
		Input: json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-28"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if now.Payment.NbOfTxs != 5 || now.Payment.CtrlSum != "1399.99" {
		t.Fatalf("latest: %+v", now.Payment)
	}
	size := fx.log.Size()
	_, err = start(size + 10)
	wantRefusal(t, err, "input.as_of")
	if fx.log.Size() != size {
		t.Fatal("a refused run was recorded")
	}
}

func TestPaymentRunRefusesBadBeneficiary(t *testing.T) {
	fx := newFixture(t)
	p := pensioner(1, "old-age", "100.00")
	iban := p["iban"].(string)
	p["iban"] = iban[:len(iban)-1] + string('0'+(iban[len(iban)-1]-'0'+1)%10)
	fx.put(t, "pensions", "PEN-BAD", p)
	fx.put(t, "pensions", "PEN-AMT", pensioner(2, "old-age", "12.345"))
	size := fx.log.Size()
	_, err := fx.eng.Start(context.Background(), StartRequest{Procedure: "benefit-payment-run", Official: "cio",
		Input: json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-28"}`)})
	wantRefusal(t, err, "pensions record PEN-AMT: monthly_amount")
	fx.put(t, "pensions", "PEN-AMT", pensioner(2, "old-age", "12.34"))
	size = fx.log.Size()
	_, err = fx.eng.Start(context.Background(), StartRequest{Procedure: "benefit-payment-run", Official: "cio",
		Input: json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-28"}`)})
	wantRefusal(t, err, "beneficiary PEN-BAD: iban")
	if fx.log.Size() != size {
		t.Fatal("a refused run was recorded")
	}
}

func TestIBAN(t *testing.T) {
	for _, ok := range []string{"GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606", MakeIBAN("DR", "TRSY00000000000001")} {
		if err := CheckIBAN(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"GB82WEST12345698765431", "GB28WEST12345698765432", "gb82WEST12345698765432", "GB82 WEST 1234 5698 7654 32", "GB82", ""} {
		if err := CheckIBAN(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckBIC("DEUTDEFF500"); err != nil {
		t.Error(err)
	}
	if err := CheckBIC("DEUT12FF"); err == nil {
		t.Error("BIC with digits in the country accepted")
	}
}

// checkPain001 validates a pain.001.001.09 file independently of the
// types that wrote it: well-formed XML, the namespace, the mandatory
// elements in order, every IBAN's mod-97, NbOfTxs and CtrlSum.
func checkPain001(t testing.TB, file []byte, want int) {
	t.Helper()
	type node struct {
		path  string
		text  string
		attrs []xml.Attr
	}
	var nodes []node
	var stack []string
	var text strings.Builder
	dec := xml.NewDecoder(bytes.NewReader(file))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 && (e.Name.Space != Pain001Namespace || e.Name.Local != "Document") {
				t.Fatalf("root %v, want Document in %s", e.Name, Pain001Namespace)
			}
			stack = append(stack, e.Name.Local)
			text.Reset()
			nodes = append(nodes, node{path: strings.Join(stack, "/"), attrs: e.Attr})
		case xml.CharData:
			text.Write(e)
		case xml.EndElement:
			p := strings.Join(stack, "/")
			for i := len(nodes) - 1; i >= 0; i-- {
				if nodes[i].path == p {
					nodes[i].text = strings.TrimSpace(text.String())
					break
				}
			}
			text.Reset()
			stack = stack[:len(stack)-1]
		}
	}
	all := func(p string) []node {
		var out []node
		for _, n := range nodes {
			if n.path == "Document/CstmrCdtTrfInitn/"+p {
				out = append(out, n)
			}
		}
		return out
	}
	one := func(p string) string {
		ns := all(p)
		if len(ns) != 1 || ns[0].text == "" {
			t.Fatalf("%s: %d elements, want exactly one with a value", p, len(ns))
		}
		return ns[0].text
	}
	for _, p := range []string{"GrpHdr/MsgId", "GrpHdr/CreDtTm", "GrpHdr/InitgPty/Nm", "PmtInf/PmtInfId", "PmtInf/ReqdExctnDt/Dt", "PmtInf/Dbtr/Nm"} {
		one(p)
	}
	if one("PmtInf/PmtMtd") != "TRF" {
		t.Fatal("PmtMtd is not TRF")
	}
	if err := CheckIBAN(one("PmtInf/DbtrAcct/Id/IBAN")); err != nil {
		t.Fatalf("debtor: %v", err)
	}
	if err := CheckBIC(one("PmtInf/DbtrAgt/FinInstnId/BICFI")); err != nil {
		t.Fatalf("debtor agent: %v", err)
	}
	txs := all("PmtInf/CdtTrfTxInf")
	ids, amts, ibans, names := all("PmtInf/CdtTrfTxInf/PmtId/EndToEndId"), all("PmtInf/CdtTrfTxInf/Amt/InstdAmt"), all("PmtInf/CdtTrfTxInf/CdtrAcct/Id/IBAN"), all("PmtInf/CdtTrfTxInf/Cdtr/Nm")
	if len(txs) != want || len(ids) != want || len(amts) != want || len(ibans) != want || len(names) != want {
		t.Fatalf("%d transactions, %d ids, %d amounts, %d IBANs, %d names; want %d each", len(txs), len(ids), len(amts), len(ibans), len(names), want)
	}
	var sum int64
	seen := map[string]bool{}
	for i := range txs {
		if seen[ids[i].text] || len(ids[i].text) > 35 {
			t.Fatalf("EndToEndId %q repeated or longer than 35", ids[i].text)
		}
		seen[ids[i].text] = true
		if err := CheckIBAN(ibans[i].text); err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if len(amts[i].attrs) != 1 || amts[i].attrs[0].Name.Local != "Ccy" || amts[i].attrs[0].Value != "EUR" {
			t.Fatalf("transaction %d: InstdAmt attributes %v", i, amts[i].attrs)
		}
		c, err := ParseAmount(amts[i].text)
		if err != nil || c <= 0 {
			t.Fatalf("transaction %d: amount %q: %v", i, amts[i].text, err)
		}
		sum += c
	}
	for _, p := range []string{"GrpHdr", "PmtInf"} {
		if n, _ := strconv.Atoi(one(p + "/NbOfTxs")); n != want {
			t.Fatalf("%s/NbOfTxs %d, want %d", p, n, want)
		}
		if got := one(p + "/CtrlSum"); got != formatAmount(sum) {
			t.Fatalf("%s/CtrlSum %s, the amounts sum to %s", p, got, formatAmount(sum))
		}
	}
	if len(one("GrpHdr/MsgId")) > 35 {
		t.Fatal("MsgId longer than 35")
	}
}

// TestDemoPensionRun is the demo's payment run: 1,000 pensioners written
// in one batch, the run opened, approved by two ministers, and the file a
// bank receives checked.
func TestDemoPensionRun(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.reg.Apply(ctx, DemoPensions(1000)); err != nil {
		t.Fatal(err)
	}
	c, err := fx.eng.Start(ctx, StartRequest{Procedure: "benefit-payment-run", Official: "min-interior",
		Input: json.RawMessage(`{"month":"2026-12","execution_date":"2026-12-28"}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"min-interior", "min-justice"} {
		if c, err = fx.eng.Advance(ctx, fx.sign(t, c, "approve", m, fx.keys[m])); err != nil {
			t.Fatal(err)
		}
	}
	file, err := fx.eng.PaymentFile(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkPain001(t, file, 1000)
	a, err := fx.eng.Approval(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyPaymentFile(fx.c, file, a); err != nil {
		t.Fatal(err)
	}
	if c.State != StateDecided || VerifyCase(fx.c, fx.eng.Procedures(), c) != nil {
		t.Fatalf("case: %+v", c)
	}
}
