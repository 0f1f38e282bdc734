package procedure

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseDocument: any bytes are a checked document or an error, never
// a panic; an accepted document's procedures hash and validate inputs.
func FuzzParseDocument(f *testing.F) {
	f.Add(DemoYAML())
	f.Add([]byte("procedures: []\n"))
	f.Add([]byte("procedures:\n  - id: x\n    start: {citizen: true}\n    input: {type: object}\n    output: {kind: decision}\n"))
	f.Add([]byte("procedures:\n  - id: x\n    start: {citizen: true}\n    input: {type: object, properties: {a: {type: string, pattern: '('}}}\n    output: {kind: decision}\n"))
	c, _ := testCharter(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ch := range []bool{false, true} {
			var d *Document
			var err error
			if ch {
				d, err = ParseDocument(data, c)
			} else {
				d, err = ParseDocument(data, nil)
			}
			if err != nil {
				continue
			}
			for _, p := range d.Procedures {
				if len(p.Hash()) != 64 {
					t.Fatalf("procedure %s has no hash", p.ID)
				}
				_, _ = p.Input.ValidateJSON([]byte(`{"a":"b"}`))
			}
		}
	})
}

// FuzzDecodeSubmission: a decoded submission re-encodes to bytes that
// decode to the same submission.
func FuzzDecodeSubmission(f *testing.F) {
	f.Add([]byte(`{"case":"case-0123456789abcdef0123456789abcdef","step":"decide","official":"registrar","sig":"` + strings.Repeat("A", 86) + `=="}`))
	f.Add([]byte(`{"case":1}`))
	f.Add([]byte(`{"case":"x","case":"y"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSubmission(data)
		if err != nil {
			return
		}
		b, err := MarshalSubmission(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := DecodeSubmission(b)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", b, err)
		}
		if s2.Case != s.Case || s2.Step != s.Step || s2.Official != s.Official || !bytes.Equal(s2.Sig, s.Sig) {
			t.Fatalf("round trip changed the submission: %+v %+v", s, s2)
		}
	})
}

// FuzzValidateInput: the birth procedure's input validator never panics
// and accepts only JSON objects.
func FuzzValidateInput(f *testing.F) {
	d, err := ParseDocument(DemoYAML(), nil)
	if err != nil {
		f.Fatal(err)
	}
	p, _ := d.Lookup("register-birth")
	f.Add([]byte(`{"child_id":"DR-2026000001","given_name":"Nia","family_name":"Okafor","birth_date":"2026-12-01","place_of_birth":"Northport","mother_id":"DR-1990000042"}`))
	f.Add([]byte(`{"child_id":1e400}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := p.Input.ValidateJSON(data)
		if err == nil {
			if _, ok := v.(map[string]any); !ok {
				t.Fatalf("accepted a %T", v)
			}
		}
	})
}
