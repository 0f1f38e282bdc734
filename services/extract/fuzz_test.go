package extract_test

import (
	"context"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// fuzzSeed issues one real extract for the fuzz targets' corpus.
func fuzzSeed(f *testing.F) (*fixture, *extract.Extract) {
	fx := newFixture(f)
	home := fx.openLog(f, "home")
	es, err := fx.issuer(f, "home", home, 1, "embassy-north").Issue(context.Background(), birthRequest(0))
	if err != nil {
		f.Fatal(err)
	}
	return fx, es[0]
}

// FuzzVerify: the verifier never panics, and accepts nothing but what was
// issued (the corpus holds one valid extract; the fuzzer mutates it).
func FuzzVerify(f *testing.F) {
	fx, e := fuzzSeed(f)
	v := fx.verifier(f)
	f.Add(e.COSE)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := v.Verify(b)
		if err == nil && r.Claims.ID != e.Claims.ID {
			t.Fatalf("accepted an extract never issued: %s", r.Claims.ID)
		}
	})
}

// FuzzReceipt puts arbitrary bytes where a valid statement's receipt goes.
func FuzzReceipt(f *testing.F) {
	fx, e := fuzzSeed(f)
	v := fx.verifier(f)
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(e.COSE); err != nil {
		f.Fatal(err)
	}
	var receipt []byte
	for k, val := range m.Headers.Unprotected {
		if k == int64(offline.HeaderReceipts) || k == uint64(offline.HeaderReceipts) {
			receipt = val.([]any)[0].([]byte)
		}
	}
	f.Add(receipt)
	m.Headers.Unprotected = cose.UnprotectedHeader{}
	m.Headers.RawUnprotected = nil
	bare, err := m.MarshalCBOR()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rc []byte) {
		msg, err := offline.AttachReceipt(bare, rc)
		if err != nil {
			return
		}
		if _, err := v.Verify(msg); err == nil && string(rc) != string(receipt) {
			var x any
			_ = cbor.Unmarshal(rc, &x)
			t.Logf("accepted another receipt: %v", x)
		}
	})
}

// FuzzReadPDF: the PDF reader never panics nor returns more than an
// extract's bound.
func FuzzReadPDF(f *testing.F) {
	_, e := fuzzSeed(f)
	text, _ := offline.EncodeText(e.COSE)
	png, err := extract.QRPNG(text)
	if err != nil {
		f.Fatal(err)
	}
	pdf, err := extract.PDF(e, text, png)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pdf)
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := extract.ReadPDF(b)
		if err == nil && len(msg) > offline.MaxExtractSize {
			t.Fatalf("read %d bytes", len(msg))
		}
	})
}
