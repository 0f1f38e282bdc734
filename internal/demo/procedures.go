package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/siteapi"
)

// The demo's declared procedures (services/procedure, docs/procedures.md):
// the home keeps a pensions register; after activation embassy-north
// registers a birth through the register-birth procedure and pays one
// month's old-age pensions through the benefit-payment-run procedure, all
// over the officials' API, each step signed with the official's key.

// demoPensioners is how many beneficiaries the demo's payment run pays.
const demoPensioners = 1000

// loadPensions writes the pensions register at home, demoPensioners
// records with valid IBANs, as one ledger batch: the beneficiaries a
// payment run abroad selects from the replicated register.
func loadPensions(ctx context.Context, loc *guest.Local, say func(string, ...any)) error {
	start := time.Now()
	recs, err := loc.Registries.Apply(ctx, procedure.DemoPensions(demoPensioners))
	if err != nil {
		return fmt.Errorf("demo: pensions register: %w", err)
	}
	say("   pensions register: %d old-age pensioners with their IBANs, sealed and ledgered as one batch (entries %d–%d) in %v",
		len(recs), recs[0].Index, recs[len(recs)-1].Index, time.Since(start).Round(time.Millisecond))
	return nil
}

// procedureClients are the officials' API clients at one site, each
// signing as its official, and the keys they sign case steps with.
type procedureClients struct {
	c    *charter.Charter
	base string
	site string
	l    state.Layout
	pass []byte
}

func (pc procedureClients) as(official string) (*siteapi.Client, error) {
	key, err := keyfile.ReadEd25519(pc.l.Key("official", official), keyfile.Protector{Passphrase: pc.pass})
	if err != nil {
		return nil, fmt.Errorf("demo: official %s's key: %w", official, err)
	}
	return &siteapi.Client{BaseURL: pc.base, Signer: siteapi.Signer{Guest: pc.c.Guest.ID, Site: pc.site, Official: official, Key: key}}, nil
}

// signStep signs the step case r waits for as cl's official and submits
// it.
func signStep(ctx context.Context, cl *siteapi.Client, r *siteapi.CaseResponse) (*siteapi.CaseResponse, error) {
	claim, err := r.Claim(cl.Signer.Official)
	if err != nil {
		return nil, err
	}
	sig, err := procedure.SignStep(claim, cl.Signer.Key)
	if err != nil {
		return nil, err
	}
	return cl.SubmitStep(ctx, &procedure.Submission{Case: claim.Case, Step: claim.Step, Official: claim.Official, Sig: sig})
}

// demoChildID is the child the embassy registers: a national id of the
// form the procedure's schema asks for, outside the generated population's.
const demoChildID = "DR-9999000001"

// registerBirth registers a birth at the activated embassy through the
// register-birth procedure: the registrar opens the case with the
// child's particulars, then signs its decide step; the decision and the
// child's population record land as one ledger batch, cosigned by
// embassy-south before it is acknowledged (population waits for a quorum).
// It returns the child's national id.
func registerBirth(ctx context.Context, c *charter.Charter, base string, l state.Layout, pass []byte, motherID string, say func(string, ...any)) (string, error) {
	reg, err := procedureClients{c: c, base: base, site: "embassy-north", l: l, pass: pass}.as("registrar")
	if err != nil {
		return "", err
	}
	in, err := json.Marshal(map[string]string{"child_id": demoChildID, "given_name": "Born", "family_name": "Abroad",
		"birth_date": time.Now().UTC().Format(time.DateOnly), "place_of_birth": "Northland", "mother_id": motherID})
	if err != nil {
		return "", err
	}
	start := time.Now()
	opened, err := reg.StartCase(ctx, "register-birth", in)
	if err != nil {
		return "", fmt.Errorf("demo: open the birth case at embassy-north: %w", err)
	}
	decided, err := signStep(ctx, reg, opened)
	if err != nil {
		return "", fmt.Errorf("demo: the registrar's decision on %s: %w", opened.Case.ID, err)
	}
	if decided.Case.State != procedure.StateDecided {
		return "", fmt.Errorf("demo: birth case %s is %s after the registrar signed", opened.Case.ID, decided.Case.State)
	}
	say("   a birth is registered at the embassy through the register-birth procedure in %v: case %s opened (entry %d), then the registrar's signed decision and the child's record %s as one batch (entries %d–%d), cosigned by embassy-south before it was acknowledged",
		time.Since(start).Round(time.Millisecond), opened.Case.ID, opened.Index, demoChildID, decided.Index, decided.Index+1)
	return demoChildID, nil
}

// payPensions pays one month's old-age pensions from embassy-north: the
// CIO opens the payment run (the site selects the beneficiaries as of the
// ledger's last index and builds the pain.001 file), two ministers sign
// its SHA-256, and the approved file and its approval are written to the
// demo directory, then checked the way a bank does, offline, with the
// charter alone.
func payPensions(ctx context.Context, c *charter.Charter, base string, l state.Layout, pass []byte, dir string, say func(string, ...any)) error {
	pc := procedureClients{c: c, base: base, site: "embassy-north", l: l, pass: pass}
	cio, err := pc.as("cio")
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	in, err := json.Marshal(map[string]string{"month": now.Format("2006-01"), "execution_date": now.AddDate(0, 0, 1).Format(time.DateOnly)})
	if err != nil {
		return err
	}
	start := time.Now()
	run, err := cio.StartCase(ctx, "benefit-payment-run", in)
	if err != nil {
		return fmt.Errorf("demo: open the payment run at embassy-north: %w", err)
	}
	built := time.Since(start)
	p := run.Case.Payment
	say("   the CIO opens a payment run: %d pensioners as of ledger index %d, total EUR %s, pain.001 file built and sealed in %v; the ministers sign its SHA-256 %s…",
		p.NbOfTxs, p.AsOf, p.CtrlSum, built.Round(time.Millisecond), p.Digest[:16])
	cur := run
	for _, m := range []string{"min-interior", "min-justice"} {
		cl, err := pc.as(m)
		if err != nil {
			return err
		}
		if cur, err = signStep(ctx, cl, cur); err != nil {
			return fmt.Errorf("demo: %s approves payment run %s: %w", m, run.Case.ID, err)
		}
	}
	if cur.Case.State != procedure.StateDecided {
		return fmt.Errorf("demo: payment run %s is %s after two ministers signed", run.Case.ID, cur.Case.State)
	}
	approved := time.Since(start)
	file, err := cio.PaymentFile(ctx, run.Case.ID)
	if err != nil {
		return fmt.Errorf("demo: payment file of %s: %w", run.Case.ID, err)
	}
	a, err := cio.Approval(ctx, run.Case.ID)
	if err != nil {
		return fmt.Errorf("demo: approval of %s: %w", run.Case.ID, err)
	}
	fileName, approvalName := filepath.Join(dir, "pensions.pain001.xml"), filepath.Join(dir, "pensions.approval.json")
	ab, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(fileName, file, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(approvalName, append(ab, '\n'), 0o644); err != nil {
		return err
	}
	// The bank's check: the charter, the file, the approval; no network.
	checked := time.Now()
	if err := procedure.VerifyPaymentFile(c, file, a); err != nil {
		return fmt.Errorf("demo: the approved payment file does not pass the bank's offline check: %w", err)
	}
	say("   approved by min-interior and min-justice at ledger index %d (%v from opening the run); %s (%.0f kB) and its approval verify offline with the charter alone in %v:",
		a.Index, approved.Round(time.Millisecond), fileName, float64(len(file))/1e3, time.Since(checked).Round(time.Microsecond))
	say("   chancery payment check %s --approval %s --charter %s", fileName, approvalName, l.Charter())
	return nil
}
