package procedure

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"

	"github.com/chancery-gov/chancery/charter"
)

// StepFormat is the domain-separation prefix (followed by "\n") of every
// case-step signature. Officials sign orders, charters and case steps with
// one Ed25519 key; the prefix keeps a signature made for one from counting
// for another, exactly as orders are signed ("chancery-order/v1\n" ‖
// canonical JSON, continuity/order.go).
const StepFormat = "chancery-case-step/v1"

// StepClaim is what an official signs to act on a step of a case. Its
// canonical JSON (members in this order, no whitespace, HTML escaping
// off) follows StepFormat and "\n" in the signed message.
type StepClaim struct {
	// Guest is the charter's guest id: a signature for one state does
	// not count in another.
	Guest string `json:"guest"`
	// Case is the case id: the signature cannot be replayed on another.
	Case      string `json:"case"`
	Procedure string `json:"procedure"`
	Step      string `json:"step"`
	// Subject is the lowercase hex SHA-256 of what is decided: for a
	// payment run, the pain.001 file itself; otherwise the canonical JSON
	// of the case's opening (procedure hash, starter, input).
	Subject  string `json:"subject"`
	Official string `json:"official"`
}

// Message is the signed message: StepFormat ‖ "\n" ‖ canonical JSON.
func (c StepClaim) Message() []byte {
	b, err := canonicalJSON(c)
	if err != nil {
		panic("procedure: canonical encoding of a step claim: " + err.Error()) // only strings
	}
	return append([]byte(StepFormat+"\n"), b...)
}

// SignStep signs claim as its official.
func SignStep(claim StepClaim, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign step %s of case %s as %s: private key is %d bytes, want %d", claim.Step, claim.Case, claim.Official, len(key), ed25519.PrivateKeySize)
	}
	return ed25519.Sign(key, claim.Message()), nil
}

// verifyStep checks sig against the charter's key for the official and
// returns the official.
func verifyStep(c *charter.Charter, claim StepClaim, sig []byte) (*charter.Official, error) {
	o, ok := c.Official(claim.Official)
	if !ok {
		return nil, fmt.Errorf("%q is not an official of charter %s v%d", abbreviate(claim.Official), c.Guest.ID, c.Version)
	}
	pub, err := o.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("official %s: %w", o.ID, err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, claim.Message(), sig) {
		return nil, fmt.Errorf("the signature of official %s does not verify", o.ID)
	}
	return o, nil
}

// Submission is one act on a case, as it arrives from an official's desk
// or the citizen portal: an official's signature on a step, or a
// citizen's consent. Citizen is the person id the sign-in authenticated;
// the caller sets it, never the request body.
type Submission struct {
	Case     string `json:"case"`
	Step     string `json:"step"`
	Official string `json:"official,omitempty"`
	Sig      []byte `json:"sig,omitempty"`
	Citizen  string `json:"-"`
}

var caseIDRe = regexp.MustCompile(`^case-[0-9a-f]{32}$`)

// DecodeSubmission decodes the JSON an official's desk posts:
//
//	{"case":"case-…","step":"decide","official":"registrar","sig":"BASE64"}
//
// strictly: no unknown or repeated member, one value, the signature 64
// bytes in standard base64. It does not verify the signature.
func DecodeSubmission(data []byte) (*Submission, error) {
	if len(data) > 4<<10 {
		return nil, &Refusal{Field: "submission", Reason: fmt.Sprintf("%d bytes, at most 4096", len(data))}
	}
	var v any
	if err := decodeStrict(data, &v); err != nil {
		return nil, &Refusal{Field: "submission", Reason: err.Error()}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &Refusal{Field: "submission", Reason: "not a JSON object"}
	}
	var s Submission
	for _, k := range sortedKeys(m) {
		str, ok := m[k].(string)
		if !ok {
			return nil, &Refusal{Field: "submission." + abbreviate(k), Reason: "want a string"}
		}
		switch k {
		case "case":
			s.Case = str
		case "step":
			s.Step = str
		case "official":
			s.Official = str
		case "sig":
			sig, err := base64.StdEncoding.Strict().DecodeString(str)
			if err != nil || len(sig) != ed25519.SignatureSize {
				return nil, &Refusal{Field: "submission.sig", Reason: "want 64 bytes in standard base64"}
			}
			s.Sig = sig
		default:
			return nil, &Refusal{Field: "submission." + abbreviate(k), Reason: "unknown member"}
		}
	}
	switch {
	case !caseIDRe.MatchString(s.Case):
		return nil, &Refusal{Field: "submission.case", Reason: fmt.Sprintf("%q is not a case id", abbreviate(s.Case))}
	case !idRe.MatchString(s.Step):
		return nil, &Refusal{Field: "submission.step", Reason: fmt.Sprintf("%q is not a step id", abbreviate(s.Step))}
	case s.Official == "" || s.Sig == nil:
		return nil, &Refusal{Field: "submission.official", Reason: "an official's step carries the official and the signature"}
	}
	return &s, nil
}

// MarshalSubmission is the JSON DecodeSubmission reads.
func MarshalSubmission(s *Submission) ([]byte, error) {
	if s == nil {
		return nil, errors.New("marshal submission: none")
	}
	b, err := canonicalJSON(s)
	if err != nil {
		return nil, fmt.Errorf("marshal submission: %w", err)
	}
	return b, nil
}
