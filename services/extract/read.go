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
