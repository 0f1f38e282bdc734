package offline_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/chancery-gov/chancery/services/extract/offline"
)

// The examples of RFC 9285 section 4.
var base45Vectors = []struct{ plain, enc string }{
	{"AB", "BB8"},
	{"Hello!!", "%69 VD92EX0"},
	{"base-45", "UJCLQE7W581"},
	{"ietf!", "QED8WEX0"},
	{"", ""},
}

func TestBase45Vectors(t *testing.T) {
	for _, v := range base45Vectors {
		if got := offline.Base45Encode([]byte(v.plain)); got != v.enc {
			t.Errorf("encode %q = %q, want %q", v.plain, got, v.enc)
		}
		got, err := offline.Base45Decode(v.enc)
		if err != nil || string(got) != v.plain {
			t.Errorf("decode %q = %q, %v", v.enc, got, err)
		}
	}
}

// TestBase45Refuses: what RFC 9285 section 6 says a decoder must refuse.
func TestBase45Refuses(t *testing.T) {
	for _, s := range []string{
		"GGW",  // 65536: more than two bytes
		"A",    // one character over
		"BB8a", // lowercase is not in the alphabet
		":::",  // 44+44*45+44*2025
		"Z:",   // pair above 255
	} {
		if _, err := offline.Base45Decode(s); !errors.Is(err, offline.ErrBase45) {
			t.Errorf("decode %q: %v, want a refusal", s, err)
		}
	}
}

func FuzzBase45(f *testing.F) {
	for _, v := range base45Vectors {
		f.Add(v.enc)
	}
	f.Add("GGW")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := offline.Base45Decode(s)
		if err != nil {
			return
		}
		// Decoding is strict, so what decodes re-encodes to itself.
		if again := offline.Base45Encode(b); again != s {
			t.Fatalf("decode(%q) re-encodes as %q", s, again)
		}
	})
}

func FuzzBase45RoundTrip(f *testing.F) {
	f.Add([]byte("ietf!"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := offline.Base45Decode(offline.Base45Encode(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x: %x, %v", b, got, err)
		}
	})
}

func validClaims() *offline.Claims {
	return &offline.Claims{
		Guest: "demo-republic", Registry: "population", Record: "DR-1", Version: 1, RecordIndex: 7,
		Fields:   map[string]any{"given_name": "Ada", "children": uint64(2), "alive": true, "names": []any{"a", "b"}},
		IssuedAt: 1796428800, Epoch: 1, Site: "home", ID: "ABCDEFGHIJKLMNOP",
	}
}

func TestClaimsRoundTrip(t *testing.T) {
	b, err := offline.MarshalClaims(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	c, err := offline.ParseClaims(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := offline.MarshalClaims(c)
	if !bytes.Equal(again, b) {
		t.Fatal("claims do not round-trip")
	}
	// A claim key the format does not define is refused.
	extra := append([]byte{b[0] + 1}, b[1:]...)
	extra = append(extra, 0x0b, 0x01) // key 11: 1
	if _, err := offline.ParseClaims(extra); err == nil {
		t.Fatal("unknown claim key accepted")
	}
	for name, mut := range map[string]func(*offline.Claims){
		"guest":  func(c *offline.Claims) { c.Guest = "" },
		"fields": func(c *offline.Claims) { c.Fields = nil },
		"issued": func(c *offline.Claims) { c.IssuedAt = 0 },
		"id":     func(c *offline.Claims) { c.ID = "" },
	} {
		c := validClaims()
		mut(c)
		if _, err := offline.MarshalClaims(c); err == nil {
			t.Errorf("claims without %s encoded", name)
		}
	}
}

func FuzzParseClaims(f *testing.F) {
	b, _ := offline.MarshalClaims(validClaims())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := offline.ParseClaims(b)
		if err != nil {
			return
		}
		again, err := offline.MarshalClaims(c)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted claims re-encode differently: %x vs %x (%v)", b, again, err)
		}
	})
}

func FuzzDecodeText(f *testing.F) {
	s, _ := offline.EncodeText([]byte("a COSE_Sign1 would be here"))
	f.Add(s)
	f.Add("CX1:")
	f.Fuzz(func(t *testing.T, s string) {
		msg, err := offline.DecodeText(s)
		if err != nil {
			return
		}
		if len(msg) > offline.MaxExtractSize {
			t.Fatalf("decoded %d bytes", len(msg))
		}
	})
}

func FuzzToBeSigned(f *testing.F) {
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x41, 0x00, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = offline.ToBeSigned(b)
	})
}
