package continuity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
)

// The signed drill report: what a site found when it rehearsed an
// activation under a drill order, recorded by the writer as a
// drill-report entry. The site's daemon produces it; an auditor reads it
// back with ParseDrillReport and VerifyDrillReport alone, without the
// daemon, which is why the format lives here.

// DrillReportFormat names the signed report and, followed by "\n", is the
// domain-separation prefix of its signature.
const DrillReportFormat = "chancery-drill-report/v1"

// DrillReportFormatV2 names a report of a keyless drill (Check is
// DrillCheckKeyless): the drilled site verified the custodians' shares but
// never rebuilt the root key, so the report has no first read and no RTO.
// A v1 report has no check member; readers accept both.
const DrillReportFormatV2 = "chancery-drill-report/v2"

// DrillCheckKeyless is the Check of a keyless drill.
const DrillCheckKeyless = "keyless"

// drillFormat is the format, and the signature's prefix, of r.
func drillFormat(r *DrillReport) string {
	if r.Check != "" {
		return DrillReportFormatV2
	}
	return DrillReportFormat
}

// How a report's RPO was measured.
const (
	// RPOBasisWriter: against the writer's signed checkpoint, fetched from
	// the writer when the drill began. rpo_entries is how many entries the
	// writer had that the site lacked; rpo_seconds how long before the
	// drill began the first of them was written (0 when none).
	RPOBasisWriter = "writer-checkpoint"
	// RPOBasisOrder: the writer could not be reached. rpo_seconds is how
	// long the drill order took from its entry at the writer to this site,
	// a lower bound of the lag; rpo_entries is 0, not measured.
	RPOBasisOrder = "order-delay"
)

// DrillReport is what a drill found. Its canonical encoding is what
// encoding/json writes for it with HTML escaping off: members in this
// order, times in UTC to the millisecond.
type DrillReport struct {
	Guest      string   `json:"guest"`
	Site       string   `json:"site"`
	Order      string   `json:"order"`
	OrderIndex uint64   `json:"order_index"` // the order's ledger entry
	Epoch      uint64   `json:"epoch"`
	Registries []string `json:"registries"` // opened and sampled
	// Started is when the order reached the site: the drill began.
	Started time.Time `json:"started"`
	// Unsealed is when the threshold of shares was reached.
	Unsealed *time.Time `json:"unsealed,omitempty"`
	// FirstRead is when the first sampled record was served.
	FirstRead *time.Time `json:"first_read,omitempty"`
	Finished  time.Time  `json:"finished"`
	// RTOSeconds is FirstRead minus the later of Started and Unsealed.
	RTOSeconds float64 `json:"rto_seconds"`
	RPOEntries uint64  `json:"rpo_entries"`
	RPOSeconds float64 `json:"rpo_seconds"`
	RPOBasis   string  `json:"rpo_basis"` // RPOBasisWriter or RPOBasisOrder
	// MirrorSize is the site's mirror when the drill began, WriterSize the
	// writer's checkpoint it was compared with (0 if not reached).
	MirrorSize uint64 `json:"mirror_size"`
	WriterSize uint64 `json:"writer_size"`
	// LedgerSize is the signed tree the sample was drawn from and checked
	// against; Records the record entries in scope under it.
	LedgerSize uint64         `json:"ledger_size"`
	Records    uint64         `json:"records"`
	SampleSize int            `json:"sample_size"`
	Verified   int            `json:"verified"`
	Failures   []DrillFailure `json:"failures"`
	// Check is DrillCheckKeyless in a v2 report: shares verified, sample
	// checked against the signed tree and its commitments' presence, no
	// key rebuilt, nothing decrypted (docs/continuity.md). Empty in v1.
	Check string `json:"check,omitempty"`
	// Error says why the drill did not run to its end (no shares before
	// the order expired, the registries did not open, ...).
	Error string `json:"error,omitempty"`
}

// DrillFailure is one sampled record entry that did not check out.
type DrillFailure struct {
	Index    uint64 `json:"index"`
	Registry string `json:"registry,omitempty"`
	Reason   string `json:"reason"`
}

// signedDrillReport is the ledger payload:
//
//	{"format":"chancery-drill-report/v1","report":<canonical report>,"signature":<base64>}
//
// the signature being Ed25519 over DrillReportFormat + "\n" + the canonical
// report, by the site's checkpoint key for the guest (the charter's
// sites[].checkpoint_key).
type signedDrillReport struct {
	Format    string          `json:"format"`
	Report    json.RawMessage `json:"report"`
	Signature []byte          `json:"signature"`
}

// canonicalJSON is the canonical encoding of orders and drill reports:
// what encoding/json writes with HTML escaping off, without the final
// newline. Turning escaping off keeps "<", ">" and "&" as themselves, so
// that a verifier in another language reproduces the bytes.
func canonicalJSON(v any) ([]byte, error) { return CanonicalJSON(v) }

// CanonicalJSON is the canonical encoding officials' signatures cover
// (orders, drill reports, and the services' signed documents such as case
// steps): what encoding/json writes with HTML escaping off, without the
// final newline.
func CanonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// normalize puts times in UTC to the millisecond and lists as [] rather
// than null, so that the report reads the same after a round trip.
func (r *DrillReport) normalize() {
	ms := func(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
	r.Started, r.Finished = ms(r.Started), ms(r.Finished)
	for _, p := range []**time.Time{&r.Unsealed, &r.FirstRead} {
		if *p != nil {
			t := ms(**p)
			*p = &t
		}
	}
	if r.Registries == nil {
		r.Registries = []string{}
	}
	if r.Failures == nil {
		r.Failures = []DrillFailure{}
	}
}

// SignDrillReport normalizes r and returns the signed report, the payload
// of a drill-report entry, signed with key (the site's checkpoint key).
func SignDrillReport(r *DrillReport, key ed25519.PrivateKey) ([]byte, error) {
	r.normalize()
	canon, err := canonicalJSON(r)
	if err != nil {
		return nil, fmt.Errorf("drill report: %w", err)
	}
	f := drillFormat(r)
	sig := ed25519.Sign(key, append([]byte(f+"\n"), canon...))
	out, err := canonicalJSON(signedDrillReport{Format: f, Report: canon, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("drill report: %w", err)
	}
	if len(out) > ledger.MaxPayloadSize {
		return nil, fmt.Errorf("drill report of order %s: %d bytes, more than a ledger entry holds", r.Order, len(out))
	}
	return out, nil
}

// ParseDrillReport decodes a signed drill report without checking its
// signature (VerifyDrillReport does). It is strict: unknown members, or a
// report not in its canonical encoding, are refused.
func ParseDrillReport(payload []byte) (r *DrillReport, canonical, sig []byte, err error) {
	var env signedDrillReport
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, nil, nil, fmt.Errorf("drill report: %w", err)
	}
	if dec.More() {
		return nil, nil, nil, errors.New("drill report: trailing data")
	}
	if env.Format != DrillReportFormat && env.Format != DrillReportFormatV2 {
		return nil, nil, nil, fmt.Errorf("drill report: format %q, want %q or %q", env.Format, DrillReportFormat, DrillReportFormatV2)
	}
	r = new(DrillReport)
	dec = json.NewDecoder(bytes.NewReader(env.Report))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, nil, nil, fmt.Errorf("drill report: %w", err)
	}
	canon, err := canonicalJSON(r)
	if err != nil || !bytes.Equal(canon, env.Report) {
		return nil, nil, nil, errors.New("drill report: report not in its canonical encoding")
	}
	if r.Check != "" && r.Check != DrillCheckKeyless {
		return nil, nil, nil, fmt.Errorf("drill report of order %s: check %q", r.Order, r.Check)
	}
	if drillFormat(r) != env.Format {
		return nil, nil, nil, fmt.Errorf("drill report of order %s: format %s with check %q", r.Order, env.Format, r.Check)
	}
	if len(env.Signature) != ed25519.SignatureSize {
		return nil, nil, nil, fmt.Errorf("drill report of order %s: signature of %d bytes", r.Order, len(env.Signature))
	}
	return r, canon, env.Signature, nil
}

// VerifyDrillReport parses a signed drill report and checks it against
// charter c: the guest is c's, the site is in c, and the signature is by
// that site's checkpoint key. Whether a drill order for the site is in
// the ledger is the caller's to check.
func VerifyDrillReport(c *charter.Charter, payload []byte) (*DrillReport, error) {
	r, canon, sig, err := ParseDrillReport(payload)
	if err != nil {
		return nil, err
	}
	if r.Guest != c.Guest.ID {
		return nil, fmt.Errorf("drill report of order %s: for guest %q, not %s", r.Order, r.Guest, c.Guest.ID)
	}
	def, ok := c.Site(r.Site)
	if !ok {
		return nil, fmt.Errorf("drill report of order %s: site %q is not in the charter", r.Order, r.Site)
	}
	_, _, pub, err := ledger.SplitVerifierKey(def.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("drill report of order %s: checkpoint key of site %s: %w", r.Order, r.Site, err)
	}
	if !ed25519.Verify(pub, append([]byte(drillFormat(r)+"\n"), canon...), sig) {
		return nil, fmt.Errorf("drill report of order %s: the signature is not site %s's checkpoint key's", r.Order, r.Site)
	}
	return r, nil
}
