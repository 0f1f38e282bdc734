package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// FuzzParseEIDResponse: any input is refused or parsed into a response
// whose certificates and signature decode, without panicking; what parses
// re-encodes to an equal response.
func FuzzParseEIDResponse(f *testing.F) {
	f.Add([]byte(`{"challenge":"abc","chain":["AAAA"],"signature":"AAAA"}`))
	f.Add([]byte(`{"challenge":"abc","chain":[],"signature":""}`))
	f.Add([]byte(`{"challenge":"abc","chain":["AAAA"],"signature":"AAAA"} {}`))
	f.Add([]byte(`{"challenge":"abc","chain":["AAAA"],"signature":"AAAA","x":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ders, sig, err := ParseEIDResponse(b)
		if err != nil {
			return
		}
		if len(ders) != len(r.Chain) || len(ders) == 0 || len(sig) == 0 {
			t.Fatalf("parsed %d certificates of %d, signature %d bytes", len(ders), len(r.Chain), len(sig))
		}
		for i, d := range ders {
			if base64.StdEncoding.EncodeToString(d) != r.Chain[i] && !bytes.Equal(mustStd(r.Chain[i]), d) {
				t.Fatalf("chain[%d] decoded differently", i)
			}
		}
		again, _ := json.Marshal(r)
		r2, _, _, err := ParseEIDResponse(again)
		if err != nil || r2.Challenge != r.Challenge || len(r2.Chain) != len(r.Chain) {
			t.Fatalf("re-encoded response does not parse alike: %v", err)
		}
	})
}

func mustStd(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}

// FuzzParseVerifyRequest: a parsed question always has an id, a purpose
// and something to compare.
func FuzzParseVerifyRequest(f *testing.F) {
	f.Add([]byte(`{"id":"P-1","given_name":"A","purpose":"kyc"}`))
	f.Add([]byte(`{"id":"P-1","purpose":"kyc"}`))
	f.Add([]byte(`{"id":"","birthdate":"1980-01-01","purpose":"kyc"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseVerifyRequest(b)
		if err != nil {
			return
		}
		if q.ID == "" || q.Purpose == "" || q.GivenName == "" && q.FamilyName == "" && q.Birthdate == "" {
			t.Fatalf("accepted an incomplete question %+v", q)
		}
	})
}

// FuzzParseWebAuthn: the ceremony parsers refuse or parse, never panic,
// and refuse what exceeds the bound.
func FuzzParseWebAuthn(f *testing.F) {
	f.Add([]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`))
	f.Add([]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseRegistration(bytes.NewReader(b)); err == nil && p == nil {
			t.Fatal("nil registration without error")
		}
		if p, err := ParseAssertion(bytes.NewReader(b)); err == nil && p == nil {
			t.Fatal("nil assertion without error")
		}
	})
}

// FuzzAssertionID: reading a client assertion's jti never panics, and an
// accepted one has a jti.
func FuzzAssertionID(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4IiwiaXNzIjoiYyJ9.AAAA")
	f.Add("eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		_, jti, _, err := AssertionID(s)
		if err == nil && jti == "" {
			t.Fatal("accepted an assertion without jti")
		}
	})
}

// FuzzParseDPoPProof: a proof is refused or parsed with every required
// claim and a key thumbprint, never a panic.
func FuzzParseDPoPProof(f *testing.F) {
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.eyJqdGkiOiJ4In0.AAAA")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseDPoPProof(s)
		if err != nil {
			return
		}
		if p.JKT == "" || p.JTI == "" || p.HTM == "" || p.HTU == "" {
			t.Fatalf("accepted an incomplete proof %+v", p)
		}
	})
}
