package site_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// TestHomeIssuesACertifiedExtract: an official asks the home for a
// certified extract of a person record; the act lands in the ledger, the
// receipt carries embassy-north's cosignature from replication, and the
// COSE, the QR text and the PDF each verify offline with the charter
// alone. A field the record lacks, and a reader without a signature, are
// refused.
func TestHomeIssuesACertifiedExtract(t *testing.T) {
	dc := startDrillCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := dc.registrar.Extract(ctx, "population", "DR-DRILL-007", "national_id", "last_name")
	if err != nil {
		t.Fatal(err)
	}
	v, err := offline.NewVerifier(dc.c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(out.COSE)
	if err != nil {
		t.Fatalf("the issued extract does not verify offline: %v", err)
	}
	if res.Claims.Record != "DR-DRILL-007" || res.Claims.Fields["last_name"] != "Drill7" {
		t.Fatalf("claims %+v", res.Claims)
	}
	if _, err := v.VerifyText(out.QRText); err != nil {
		t.Fatalf("QR text: %v", err)
	}
	if len(res.Cosigners) == 0 || res.Cosigners[0] != "embassy-north" {
		t.Fatalf("the receipt is cosigned by %v, want embassy-north", res.Cosigners)
	}
	if _, _, err := extract.VerifyFile(v, out.PDF); err != nil {
		t.Fatalf("PDF: %v", err)
	}
	if len(out.QRPNG) == 0 {
		t.Fatal("no QR code")
	}
	if _, err := dc.registrar.Extract(ctx, "population", "DR-DRILL-007", "shoe_size"); err == nil || !strings.Contains(err.Error(), "shoe_size") {
		t.Fatalf("a field the record lacks: %v", err)
	}
}
