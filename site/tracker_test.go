package site_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestAuditorReadsTracker: an official the charter names as an auditor
// (services.access.auditors: min-justice in the Demo Republic) reads a
// citizen's data tracker over the signed API; the read is an access entry
// the citizen's tracker then lists, with the auditor and the purpose. An
// official who is no auditor is refused 403, a read without purpose 400,
// and neither adds an entry.
func TestAuditorReadsTracker(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	person := found.DemoCitizens[0]
	reg := ts.client(t, "registrar")
	if _, err := reg.Put(ctx, "population", person, json.RawMessage(`{"national_id":"`+person+`","first_name":"Iris","last_name":"Lindqvist"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "population", person, registry.AsOf{}); err != nil {
		t.Fatal(err)
	}
	status := func(err error) int {
		var ae *siteapi.APIError
		if errors.As(err, &ae) {
			return ae.Status
		}
		return 0
	}

	if _, err := reg.Tracker(ctx, person, "curious"); status(err) != http.StatusForbidden {
		t.Fatalf("a registrar (no auditor) read the tracker: %v, want 403", err)
	}
	aud := ts.client(t, found.DemoAuditor)
	if _, err := aud.Tracker(ctx, person, ""); status(err) != http.StatusBadRequest {
		t.Fatalf("an auditor's read without purpose: %v, want 400", err)
	}

	first, err := aud.Tracker(ctx, person, "complaint 2026/17")
	if err != nil {
		t.Fatal(err)
	}
	if first.Person != person {
		t.Fatalf("tracker of %q", first.Person)
	}
	// The home records no official's reads (only an activated site
	// does): the auditor's read is the first entry of the tracker.
	if len(first.Reads) != 1 || first.Reads[0].Purpose != "complaint 2026/17" {
		t.Fatalf("first tracker read: %+v, want the auditor's own read only (the refusals add none)", first.Reads)
	}
	// The citizen's tracker (the same listing the identity service serves
	// her) now shows the auditor's read, sealed purpose opened.
	second, err := aud.Tracker(ctx, person, "complaint 2026/17, follow-up")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range second.Reads {
		got = append(got, s.Reader+" "+s.Who+" "+s.Registry+" "+s.Purpose)
	}
	want := []string{"official min-justice population complaint 2026/17", "official min-justice population complaint 2026/17, follow-up"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tracker:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
