package main

import (
	"strings"
	"testing"
)

// TestSiteClientPinMandatory: a command that talks to a site reaches one
// that is not on this machine only over https pinned to the charter's key;
// loopback needs no pin.
func TestSiteClientPinMandatory(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:7101", "https://localhost:7001", "http://[::1]:7001"} {
		if c, err := siteClient(u, "", "", true); err != nil || c != nil {
			t.Errorf("%s: %v %v", u, c, err)
		}
	}
	for u, want := range map[string]string{
		"https://embassy-north.example:7101": "--site SITE-ID",
		"http://embassy-north.example:7101":  "--site SITE-ID",
		"https://10.0.0.7:7101":              "--site SITE-ID",
	} {
		if _, err := siteClient(u, "", "", true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s unpinned: %v", u, err)
		}
	}
	if _, err := siteClient("http://embassy-north.example:7101", "charter.yaml", "embassy-north", true); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("plain http to another machine: %v", err)
	}
	// A ledger verifies by its signatures: reading one needs no pin.
	if c, err := siteClient("https://mirror.example/ledger", "", "", false); err != nil || c != nil {
		t.Errorf("ledger mirror: %v %v", c, err)
	}
}
