package procedure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chancery-gov/chancery/charter"
)

// Pain001Namespace is the XML namespace of ISO 20022
// CustomerCreditTransferInitiationV09.
const Pain001Namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"

// ErrDigestMismatch is wrapped when a payment file is not the approved one.
var ErrDigestMismatch = errors.New("payment file digest differs from the approved digest")

// Pain001 is the subset of pain.001.001.09 a payment run writes: one
// group header, one payment information block, one credit transfer per
// beneficiary. Element order follows the XSD's sequences.
type Pain001 struct {
	XMLName xml.Name `xml:"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09 Document"`
	Init    struct {
		GrpHdr GroupHeader `xml:"GrpHdr"`
		PmtInf PaymentInfo `xml:"PmtInf"`
	} `xml:"CstmrCdtTrfInitn"`
}

// GroupHeader is GrpHdr.
type GroupHeader struct {
	MsgID    string `xml:"MsgId"`
	CreDtTm  string `xml:"CreDtTm"`
	NbOfTxs  string `xml:"NbOfTxs"`
	CtrlSum  string `xml:"CtrlSum"`
	InitgPty Party  `xml:"InitgPty"`
}

// Party is a party identified by name (Nm).
type Party struct {
	Nm string `xml:"Nm"`
}

// Account is an account identified by IBAN (Id/IBAN).
type Account struct {
	IBAN string `xml:"Id>IBAN"`
}

// PaymentInfo is PmtInf.
type PaymentInfo struct {
	PmtInfID    string `xml:"PmtInfId"`
	PmtMtd      string `xml:"PmtMtd"`
	NbOfTxs     string `xml:"NbOfTxs"`
	CtrlSum     string `xml:"CtrlSum"`
	ReqdExctnDt string `xml:"ReqdExctnDt>Dt"`
	Dbtr        Party  `xml:"Dbtr"`
	DbtrAcct    Account
	DbtrAgt     string           `xml:"DbtrAgt>FinInstnId>BICFI"`
	ChrgBr      string           `xml:"ChrgBr"`
	CdtTrfTxInf []CreditTransfer `xml:"CdtTrfTxInf"`
}

// CreditTransfer is one CdtTrfTxInf.
type CreditTransfer struct {
	EndToEndID string         `xml:"PmtId>EndToEndId"`
	InstdAmt   InstructedAmnt `xml:"Amt>InstdAmt"`
	Cdtr       Party          `xml:"Cdtr"`
	CdtrAcct   Account        `xml:"CdtrAcct"`
	Ustrd      string         `xml:"RmtInf>Ustrd,omitempty"`
}

// InstructedAmnt is InstdAmt with its currency attribute.
type InstructedAmnt struct {
	Ccy   string `xml:"Ccy,attr"`
	Value string `xml:",chardata"`
}

// Beneficiary is one payee of a run.
type Beneficiary struct {
	ID     string // the record id, for error messages and EndToEndId
	Name   string
	IBAN   string
	Amount int64 // minor units (cents)
}

// PaymentRun is everything a pain.001 file is built from.
type PaymentRun struct {
	MsgID         string
	Created       time.Time
	ExecutionDate string // YYYY-MM-DD
	Initiator     string
	DebtorName    string
	DebtorIBAN    string
	DebtorBIC     string
	Currency      string
	Remittance    string
	Beneficiaries []Beneficiary
}

// BuildPain001 writes the run's pain.001.001.09 file. It refuses a run
// with no beneficiary, an invalid IBAN, BIC or name, or a non-positive
// amount, naming the beneficiary.
func BuildPain001(r *PaymentRun) ([]byte, error) {
	if len(r.Beneficiaries) == 0 {
		return nil, errors.New("payment run: no beneficiaries")
	}
	if err := checkMaxText(r.MsgID, 35); err != nil {
		return nil, fmt.Errorf("payment run: MsgId: %w", err)
	}
	if _, err := time.Parse(time.DateOnly, r.ExecutionDate); err != nil {
		return nil, fmt.Errorf("payment run: ReqdExctnDt %q: not a date", abbreviate(r.ExecutionDate))
	}
	var doc Pain001
	var sum int64
	txs := make([]CreditTransfer, len(r.Beneficiaries))
	for i, b := range r.Beneficiaries {
		if err := checkName(b.Name); err != nil {
			return nil, fmt.Errorf("payment run: beneficiary %s: name: %w", b.ID, err)
		}
		if err := CheckIBAN(b.IBAN); err != nil {
			return nil, fmt.Errorf("payment run: beneficiary %s: iban: %w", b.ID, err)
		}
		if b.Amount <= 0 || b.Amount > 1e15 {
			return nil, fmt.Errorf("payment run: beneficiary %s: amount %s is not a positive amount", b.ID, formatAmount(b.Amount))
		}
		sum += b.Amount
		txs[i] = CreditTransfer{
			EndToEndID: endToEndID(r.MsgID, i),
			InstdAmt:   InstructedAmnt{Ccy: r.Currency, Value: formatAmount(b.Amount)},
			Cdtr:       Party{Nm: b.Name},
			CdtrAcct:   Account{IBAN: b.IBAN},
			Ustrd:      r.Remittance,
		}
	}
	n := strconv.Itoa(len(txs))
	doc.Init.GrpHdr = GroupHeader{
		MsgID:    r.MsgID,
		CreDtTm:  r.Created.UTC().Format("2006-01-02T15:04:05Z"),
		NbOfTxs:  n,
		CtrlSum:  formatAmount(sum),
		InitgPty: Party{Nm: r.Initiator},
	}
	doc.Init.PmtInf = PaymentInfo{
		PmtInfID: r.MsgID, PmtMtd: "TRF", NbOfTxs: n, CtrlSum: formatAmount(sum),
		ReqdExctnDt: r.ExecutionDate,
		Dbtr:        Party{Nm: r.DebtorName}, DbtrAcct: Account{IBAN: r.DebtorIBAN}, DbtrAgt: r.DebtorBIC,
		ChrgBr: "SLEV", CdtTrfTxInf: txs,
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", " ")
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("payment run %s: encode: %w", r.MsgID, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// endToEndID is MsgId-N, cut to the 35 characters the field allows while
// keeping the sequence number that makes it unique.
func endToEndID(msgID string, i int) string {
	suffix := "-" + strconv.Itoa(i+1)
	if len(msgID)+len(suffix) > 35 {
		msgID = msgID[:35-len(suffix)]
	}
	return msgID + suffix
}

// formatAmount writes minor units as a decimal with two fraction digits.
func formatAmount(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

var amountRe = regexp.MustCompile(`^(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?$`)

// ParseAmount reads a decimal amount with at most two fraction digits
// into minor units.
func ParseAmount(s string) (int64, error) {
	if !amountRe.MatchString(s) {
		return 0, fmt.Errorf("%q is not an amount (digits, at most two decimals)", abbreviate(s))
	}
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f, nil
}

var (
	ibanRe = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
	bicRe  = regexp.MustCompile(`^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$`)
)

// CheckIBAN checks an IBAN's form (country, check digits, 11 to 30
// alphanumerics, no spaces) and its ISO 13616 mod-97 check. It does not
// check the country's own length or BBAN structure.
func CheckIBAN(iban string) error {
	if !ibanRe.MatchString(iban) {
		return fmt.Errorf("%q is not an IBAN (two letters, two digits, 11 to 30 capitals or digits)", abbreviate(iban))
	}
	if mod97(iban[4:]+iban[:4]) != 1 {
		return fmt.Errorf("%s fails the mod-97 check", iban)
	}
	return nil
}

// mod97 is the remainder of s read as a number, letters counting as 10..35.
func mod97(s string) int {
	r := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			v := int(c-'A') + 10
			r = (r*100 + v) % 97
		} else {
			r = (r*10 + int(c-'0')) % 97
		}
	}
	return r
}

// MakeIBAN completes country and bban with the check digits that make a
// valid IBAN (demo data and tests use it).
func MakeIBAN(country, bban string) string {
	check := 98 - mod97(bban+country+"00")
	return fmt.Sprintf("%s%02d%s", country, check, bban)
}

// CheckBIC checks a BIC's form (ISO 9362: 8 or 11 characters, letters for
// the country code).
func CheckBIC(bic string) error {
	if !bicRe.MatchString(bic) {
		return fmt.Errorf("%q is not a BIC (8 or 11 capitals or digits)", abbreviate(bic))
	}
	return nil
}

// checkName checks a Max140Text name.
func checkName(s string) error {
	if s == "" || strings.TrimSpace(s) != s {
		return errors.New("empty or surrounded by spaces")
	}
	return checkMaxText(s, 140)
}

func checkMaxText(s string, n int) error {
	if s == "" || utf8.RuneCountInString(s) > n || !utf8.ValidString(s) {
		return fmt.Errorf("%q must be 1 to %d characters", abbreviate(s), n)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q holds a control character", abbreviate(s))
		}
	}
	return nil
}

// Digest is the lowercase hex SHA-256 of a payment file: what officials
// sign and the ledger records.
func Digest(file []byte) string {
	sum := sha256.Sum256(file)
	return hex.EncodeToString(sum[:])
}

// Approval is what a bank receives with a payment file: the case, the
// approved digest, and every signed step. With the charter alone it shows
// that the officials the procedure names approved exactly this file.
type Approval struct {
	Guest     string         `json:"guest"`
	Case      string         `json:"case"`
	Procedure string         `json:"procedure"`
	Digest    string         `json:"digest"`
	MsgID     string         `json:"msg_id"`
	NbOfTxs   int            `json:"nb_of_txs"`
	CtrlSum   string         `json:"ctrl_sum"`
	Steps     []StepApproval `json:"steps"`
	// Index is the ledger index of the case's decided version, where the
	// digest is recorded (0 in an approval not yet decided).
	Index uint64 `json:"ledger_index"`
}

// StepApproval is one step's signatures.
type StepApproval struct {
	Step       string          `json:"step"`
	Signatures []StepSignature `json:"signatures"`
}

// StepSignature is one official's signature on a step.
type StepSignature struct {
	Official string `json:"official"`
	Sig      []byte `json:"sig"`
}

// VerifyPaymentFile is the bank's check, pure and offline: file's SHA-256
// must be the approved digest (else the error wraps ErrDigestMismatch),
// and every step of the charter's payment procedure must carry enough
// valid signatures of distinct officials holding its role over that
// digest. c must be a verified charter (charter.VerifyChain).
func VerifyPaymentFile(c *charter.Charter, file []byte, a *Approval) error {
	if c == nil || a == nil {
		return errors.New("verify payment file: no charter or no approval")
	}
	if got := Digest(file); got != a.Digest {
		return fmt.Errorf("verify payment file of case %s: %w: file %s, approved %s", a.Case, ErrDigestMismatch, got, abbreviate(a.Digest))
	}
	if a.Guest != c.Guest.ID {
		return fmt.Errorf("verify payment file of case %s: approved for guest %q, the charter is %s's", a.Case, abbreviate(a.Guest), c.Guest.ID)
	}
	doc, err := FromCharter(c)
	if err != nil {
		return fmt.Errorf("verify payment file of case %s: %w", a.Case, err)
	}
	p, ok := doc.Lookup(a.Procedure)
	if !ok || p.Output.Kind != OutputPayment {
		return fmt.Errorf("verify payment file of case %s: procedure %q is not a payment procedure of charter v%d", a.Case, abbreviate(a.Procedure), c.Version)
	}
	for _, st := range p.Steps {
		var sa *StepApproval
		for i := range a.Steps {
			if a.Steps[i].Step == st.ID {
				sa = &a.Steps[i]
			}
		}
		if sa == nil {
			return fmt.Errorf("verify payment file of case %s: step %s: not approved", a.Case, st.ID)
		}
		var signers []charter.Official
		for _, s := range sa.Signatures {
			claim := StepClaim{Guest: c.Guest.ID, Case: a.Case, Procedure: p.ID, Step: st.ID, Subject: a.Digest, Official: s.Official}
			o, err := verifyStep(c, claim, s.Sig)
			if err != nil {
				return fmt.Errorf("verify payment file of case %s: step %s: %w", a.Case, st.ID, err)
			}
			signers = append(signers, *o)
		}
		if err := stepRule(st).Satisfied(signers); err != nil {
			return fmt.Errorf("verify payment file of case %s: step %s: %w", a.Case, st.ID, err)
		}
	}
	return nil
}

// stepRule is a signed step as a charter quorum rule: Signatures distinct
// officials holding Role.
func stepRule(s Step) charter.Rule {
	return charter.Rule{Threshold: s.Signatures, Of: []string{s.Role}}
}
