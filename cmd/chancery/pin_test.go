package main

import (
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/state"
)

// TestSiteClientPinMandatory: a command that talks to a site reaches one
// that is not on this machine only over https pinned to the charter's key;
// loopback needs no pin.
func TestSiteClientPinMandatory(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:7101", "https://localhost:7001", "http://[::1]:7001"} {
		if _, err := siteClient(u, "", "", true); err != nil {
			t.Errorf("%s: %v", u, err)
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
	if _, err := siteClient("https://mirror.example/ledger", "", "", false); err != nil {
		t.Errorf("ledger mirror: %v", err)
	}
}

// TestUnpinnedSaysHowToPin: a site reached by its https address alone
// (on loopback, where no pin is demanded) presents a certificate no
// authority signed; the error says how to pin it instead of a bare
// "x509: certificate signed by unknown authority".
func TestUnpinnedSaysHowToPin(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir, url := startHome(t)
	_, _, err := chanceryErr(t, "unseal", "status", "--url", url, "--guest", "demo-republic")
	if err == nil || !strings.Contains(err.Error(), "x509") || !strings.Contains(err.Error(), "--site SITE-ID --charter charter.yaml") {
		t.Fatalf("unpinned https: %v", err)
	}
	// Named by its id with the charter, the same site answers.
	if out, _, err := chanceryErr(t, "unseal", "status", "--url", url, "--site", "home", "--charter", state.Layout{Dir: dir}.Charter()); err != nil {
		t.Fatalf("pinned: %v\n%s", err, out)
	}
}
