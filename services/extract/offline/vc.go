package offline

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/extract/sdjwt"
)

// VCTPrefix starts the vct (credential type) of an extract's SD-JWT VC;
// the registry's name follows.
const VCTPrefix = "urn:chancery:extract:"

// Issuer is the iss claim of the state's SD-JWT VCs: its ledger origin as
// an https URL.
func Issuer(c *charter.Charter) string { return "https://" + c.Guest.Origin }

// IssueVC issues the SD-JWT VC of an extract already issued as msg (its
// COSE_Sign1): the issuer, type, issue time, epoch, extract id and the
// hash of the act the ledger records are always disclosed; each certified
// field, and each derived claim (such as "age_over_18"), is selectively
// disclosable.
func IssueVC(c *charter.Charter, signer crypto.Signer, gen uint32, msg []byte, derived map[string]any) (string, error) {
	tbs, err := ToBeSigned(msg)
	if err != nil {
		return "", err
	}
	cl, err := claimsOf(msg)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(tbs)
	always := map[string]any{
		"iss": Issuer(c), "vct": VCTPrefix + cl.Registry, "iat": cl.IssuedAt,
		"epoch": cl.Epoch, "extract_id": cl.ID, "act_hash": base64.RawURLEncoding.EncodeToString(h[:]),
	}
	sd := map[string]any{"record": cl.Record, "version": cl.Version}
	for k, v := range cl.Fields {
		sd[k] = v
	}
	for k, v := range derived {
		if _, dup := sd[k]; dup {
			return "", fmt.Errorf("SD-JWT VC of extract %s: derived claim %q is also a field", cl.ID, k)
		}
		sd[k] = v
	}
	return sdjwt.Issue(signer, string(KeyID("extract", gen)), always, sd)
}

// claimsOf reads the claims of a COSE_Sign1 without verifying it (the
// issuer has just made it).
func claimsOf(msg []byte) (*Claims, error) {
	var s sign1
	raw, err := untag(msg)
	if err != nil {
		return nil, err
	}
	if err := frameMode.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	return ParseClaims(s.Payload)
}

// VerifyVC checks an SD-JWT VC of an extract, or a holder's presentation
// of it, with the charter alone: the state's extract key of the kid's
// generation, the issuer and the type. It returns the disclosed claims.
// The VC carries no receipt: its link to the ledger is act_hash, which
// the COSE extract of the same act proves included.
func (v *Verifier) VerifyVC(token string) (*sdjwt.Verified, error) {
	head, _, _ := strings.Cut(token, ".")
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, fmt.Errorf("%w: SD-JWT VC header: %v", ErrInvalid, err)
	}
	var h sdjwt.Header
	if err := jsonUnmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: SD-JWT VC header: %v", ErrInvalid, err)
	}
	purpose, gen, err := parseKeyID([]byte(h.Kid))
	if err != nil || purpose != "extract" {
		return nil, fmt.Errorf("%w: SD-JWT VC kid %q is not an extract key", ErrInvalid, h.Kid)
	}
	pub, ok := v.pubs[gen]
	if !ok {
		return nil, fmt.Errorf("%w: SD-JWT VC: the charter publishes no extract key of generation %d", ErrInvalid, gen)
	}
	vc, err := sdjwt.Verify(token, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if vc.Claims["iss"] != Issuer(v.c) {
		return nil, fmt.Errorf("%w: SD-JWT VC iss %v, the charter's state is %s", ErrInvalid, vc.Claims["iss"], Issuer(v.c))
	}
	vct, _ := vc.Claims["vct"].(string)
	if reg, ok := strings.CutPrefix(vct, VCTPrefix); !ok {
		return nil, fmt.Errorf("%w: SD-JWT VC vct %q is not an extract's", ErrInvalid, vct)
	} else if _, ok := v.c.Registry(reg); !ok {
		return nil, fmt.Errorf("%w: SD-JWT VC of registry %q, which the charter does not name", ErrInvalid, reg)
	}
	return vc, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
