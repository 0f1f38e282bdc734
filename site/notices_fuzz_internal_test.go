package site

import (
	"net/url"
	"testing"
)

// FuzzParseExtractStatus: the online check's query comes from anyone; it
// never panics, and what it accepts is a registry and a positive version.
func FuzzParseExtractStatus(f *testing.F) {
	f.Add("registry=population&record_index=41&version=1")
	f.Add("registry=&record_index=-1&version=0")
	f.Add("registry=a&record_index=18446744073709551616&version=1")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		reg, _, version, err := parseExtractStatus(q)
		if err == nil && (reg == "" || version == 0) {
			t.Fatalf("accepted %q: registry %q version %d", raw, reg, version)
		}
	})
}

// FuzzParseMessageRequest: an official's message request is refused
// unless it is one JSON object with a person.
func FuzzParseMessageRequest(f *testing.F) {
	f.Add([]byte(`{"person":"DR-0001","subject":"s","body":"b"}`))
	f.Add([]byte(`{"person":"x"}{"person":"y"}`))
	f.Add([]byte(`{"person":"x","extra":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessageRequest(b)
		if err == nil && m.Person == "" {
			t.Fatalf("accepted %q without a person", b)
		}
	})
}
