package notice_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/services/notice"
)

func FuzzParse(f *testing.F) {
	s := notice.Signed{Notice: notice.Notice{Guest: "g", ID: "n1", Class: "emergency", Title: "t", Body: "b",
		IssuedAt: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Site: "home"},
		Signatures: []notice.Signature{{Official: "cio", Sig: "AAAA"}}}
	b, err := s.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := notice.Parse(b)
		if err != nil {
			return
		}
		again, err := s.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical notice")
		}
	})
}

func FuzzParseAtomProofs(f *testing.F) {
	f.Add([]byte(`<feed xmlns="http://www.w3.org/2005/Atom" xmlns:chancery="urn:chancery:notice:1"><entry><chancery:proof>{}</chancery:proof></entry></feed>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = notice.ParseAtomProofs(b)
	})
}

func FuzzParseJSONProofs(f *testing.F) {
	f.Add([]byte(`{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"x","_chancery":{"signed":"e30=","ledger_index":1}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := notice.ParseJSONProofs(b)
		if err == nil && ps == nil {
			t.Fatal("nil list without an error")
		}
	})
}
