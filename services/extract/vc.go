package extract

import (
	"fmt"
	"time"

	"github.com/chancery-gov/chancery/services/extract/offline"
)

// VC issues the SD-JWT VC of an issued extract, with derived claims
// (AgeOver's "age_over_18", for example) selectively disclosable beside
// the certified fields.
func (is *Issuer) VC(e *Extract, derived map[string]any) (string, error) {
	return offline.IssueVC(is.charter, is.signer, is.gen, e.COSE, derived)
}

// AgeOver says whether a person born on birthDate ("2006-01-02") is at
// least years old at the date of at: the claim a wallet discloses in
// place of the birth date.
func AgeOver(birthDate string, at time.Time, years int) (bool, error) {
	b, err := time.Parse(time.DateOnly, birthDate)
	if err != nil {
		return false, fmt.Errorf("birth date %q: %w", birthDate, err)
	}
	y, m, d := at.UTC().Date()
	return !b.AddDate(years, 0, 0).After(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)), nil
}
