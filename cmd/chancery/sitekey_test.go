package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

// TestSiteKeyRotateDraftsOrder: chancery site-key rotate drafts an
// unsigned rotate-keys order naming the site, under the charter in force,
// for the officials to sign; a site the charter lacks is refused.
func TestSiteKeyRotateDraftsOrder(t *testing.T) {
	f := newOrderFixture(t)
	out := filepath.Join(f.dir, "rotate-north.order")
	if _, _, err := chanceryErr(t, "site-key", "rotate", "--site", "embassy-north", "--charter", f.layout.Charter(), "--epoch", "1",
		"--reason", "outer key rotation", "--out", out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	so, err := continuity.ParseSignedOrder(bytes.TrimSpace(raw))
	if err != nil {
		t.Fatal(err)
	}
	if o := so.Order; o.Action != charter.ActionRotateKeys || o.Site != "embassy-north" || o.Epoch != 1 || len(so.Signatures) != 0 {
		t.Fatalf("drafted %+v", so)
	}
	_, _, err = chanceryErr(t, "site-key", "rotate", "--site", "embassy-nowhere", "--charter", f.layout.Charter(), "--epoch", "1", "--out", out+"2")
	if err == nil || !strings.Contains(err.Error(), "embassy-nowhere") {
		t.Fatalf("a site the charter lacks: %v", err)
	}
}
