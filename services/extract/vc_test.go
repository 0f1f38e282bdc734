package extract_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/sdjwt"
)

// TestVCAgeOver18: the wallet shows "over 18" without the birth date, and
// the verifier checks it with the charter alone.
func TestVCAgeOver18(t *testing.T) {
	f := newFixture(t)
	home := f.openLog(t, "home")
	is := f.issuer(t, "home", home, 1, "embassy-north")
	e := issueOne(t, is, 0)
	// A birth certificate: the child is not 18, and says so without
	// saying when it was born.
	over, err := extract.AgeOver(e.Claims.Fields["birth_date"].(string), time.Unix(e.Claims.IssuedAt, 0), 18)
	if err != nil || over {
		t.Fatalf("age over 18: %v %v", over, err)
	}
	vc, err := is.VC(e, map[string]any{"age_over_18": over})
	if err != nil {
		t.Fatal(err)
	}
	shown, err := sdjwt.Present(vc, func(n string) bool { return n == "age_over_18" })
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(t)
	got, err := v.VerifyVC(shown)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claims["age_over_18"] != false || got.Claims["extract_id"] != e.Claims.ID {
		t.Fatalf("claims: %v", got.Claims)
	}
	if _, ok := got.Claims["birth_date"]; ok || strings.Contains(shown, "2026-12-05") {
		t.Fatal("the birth date is disclosed")
	}
	// As chancery extract verify reads a file holding the presentation.
	r, from, err := extract.VerifyFile(v, []byte(shown+"\n"))
	if err != nil || from != "an SD-JWT VC" || !strings.Contains(strings.Join(r.Checks, "\n"), "disclosed claims: age_over_18") {
		t.Fatalf("VerifyFile of the presentation: %v %q %v", r, from, err)
	}
	if _, _, err := extract.VerifyFile(v, []byte(strings.Replace(shown, "~", "~x", 1))); err == nil {
		t.Fatal("an altered presentation verified")
	}
	full, err := v.VerifyVC(vc)
	if err != nil || full.Claims["birth_date"] != "2026-12-05" {
		t.Fatalf("full VC: %v %v", full, err)
	}
}

func TestAgeOver(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		birth string
		want  bool
	}{{"2008-12-05", true}, {"2008-12-06", false}, {"2000-02-29", true}} {
		if got, err := extract.AgeOver(c.birth, at, 18); err != nil || got != c.want {
			t.Errorf("%s: %v %v", c.birth, got, err)
		}
	}
}
