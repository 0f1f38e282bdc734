package extract

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// Read takes the COSE_Sign1 out of what a holder presents: a PDF written
// by PDF, a QR code PNG, the QR code's text ("CX1:..."), or the COSE bytes
// themselves. It says which it read.
func Read(data []byte) (msg []byte, from string, err error) {
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")):
		msg, err = ReadPDF(data)
		return msg, "the file " + AttachmentName + " embedded in the PDF", err
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		text, err := ReadQRPNG(data)
		if err != nil {
			return nil, "", err
		}
		msg, err = offline.DecodeText(text)
		return msg, fmt.Sprintf("the QR code in the PNG (%d characters)", len(text)), err
	case bytes.HasPrefix(data, []byte(offline.TextPrefix)):
		msg, err = offline.DecodeText(strings.TrimRight(string(data), "\r\n"))
		return msg, "the QR code's text", err
	default:
		return data, "the COSE_Sign1 file", nil
	}
}

// Status is the answer of the online check.
type Status struct {
	// Latest is the newest version of the record the site knows.
	Latest registry.VersionInfo
	// Superseded is true when a version after the extract's exists (or
	// the record was deleted since).
	Superseded bool
}

// Superseded is the online check a site makes for an extract: given the
// record's history (registry.Registries.History) it says whether a later
// version supersedes the certified one. The certified version must be in
// the history at the ledger index the extract names.
func Superseded(c *offline.Claims, history []registry.VersionInfo) (Status, error) {
	var st Status
	found := false
	for _, v := range history {
		if v.Version == c.Version {
			if v.Index != c.RecordIndex {
				return st, fmt.Errorf("extract %s: version %d of %s/%s is at ledger index %d, the extract says %d", c.ID, c.Version, c.Registry, c.Record, v.Index, c.RecordIndex)
			}
			found = true
		}
		if v.Version > st.Latest.Version {
			st.Latest = v
		}
	}
	if !found {
		return st, fmt.Errorf("extract %s: version %d of %s/%s is not in the record's history", c.ID, c.Version, c.Registry, c.Record)
	}
	st.Superseded = st.Latest.Version > c.Version
	return st, nil
}

// VerifyFile verifies what a holder presents (see Read) with v, offline,
// and says what it read the extract from. An SD-JWT VC (a JWT with its
// disclosures) is verified as one.
func VerifyFile(v *offline.Verifier, data []byte) (*offline.Report, string, error) {
	s := strings.TrimSpace(string(data))
	if strings.HasPrefix(s, "eyJ") && strings.Contains(s, "~") {
		vc, err := v.VerifyVC(s)
		if err != nil {
			return nil, "an SD-JWT VC", err
		}
		r := &offline.Report{}
		r.Checks = append(r.Checks,
			fmt.Sprintf("SD-JWT VC (RFC 9901, typ %s): signature by the state's extract key (%s), issuer %v, type %v", "dc+sd-jwt", vc.Header.Kid, vc.Claims["iss"], vc.Claims["vct"]),
			fmt.Sprintf("disclosed claims: %s (each digest listed in _sd, none twice)", strings.Join(vc.Disclosed, ", ")),
			fmt.Sprintf("act_hash %v links it to extract %v; the VC itself carries no ledger receipt", vc.Claims["act_hash"], vc.Claims["extract_id"]))
		return r, "an SD-JWT VC", nil
	}
	msg, from, err := Read(data)
	if err != nil {
		return nil, from, fmt.Errorf("%w: %w", offline.ErrInvalid, err)
	}
	r, err := v.Verify(msg)
	if r != nil {
		r.Checks = append([]string{"read the COSE_Sign1 (" + fmt.Sprint(len(msg)) + " bytes) from " + from}, r.Checks...)
	}
	return r, from, err
}
