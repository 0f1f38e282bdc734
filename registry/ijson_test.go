package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"testing"
	"unicode/utf8"
)

// TestAmbiguousRecordsRefused is issue 11, item 7: a record that readers
// may read differently is refused, naming the field, and reaches neither
// the ledger nor the index. Before the fix each of these was stored: the
// duplicate key indexed under its last value, the invalid UTF-8 echoed as
// a response that was not JSON.
func TestAmbiguousRecordsRefused(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		data  string
		field string
		err   error
	}{
		{`{"national_id":"1","last_name":"A","last_name":"B"}`, "last_name", ErrDuplicateKey},
		{`{"national_id":"1","last_name":"A","n":{"k":1,"k":2}}`, "n.k", ErrDuplicateKey},
		{`{"national_id":"1","last_name":"A","n":[{"a":1},{"a":1,"\u0061":2}]}`, "n[1].a", ErrDuplicateKey},
		{"{\"national_id\":\"1\",\"last_name\":\"A\xff\"}", "last_name", ErrInvalidUTF8},
		{"{\"national_id\":\"1\",\"last_name\":\"A\",\"deep\":[[\"\xed\xa0\x80\"]]}", "deep[0][0]", ErrInvalidUTF8},
		{`{"national_id":"1","last_name":"\ud800"}`, "last_name", ErrSurrogate},
		{`{"national_id":"1","last_name":"A","x":{"y":"a\udc00b"}}`, "x.y", ErrSurrogate},
		{`{"national_id":"1","last_name":"A","x":"\ud800\u0041"}`, "x", ErrSurrogate},
		{"{\"national_id\":\"1\",\"last_name\":\"A\",\"k\xc3\":1}", "k", ErrInvalidUTF8},
	}
	for _, c := range cases {
		_, err := fx.reg.Put(ctx, "population", "DR-1", json.RawMessage(c.data), nil)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, c.err) {
			t.Errorf("put %q: %v, want a validation error of field %q: %v", c.data, err, c.field, c.err)
		}
	}
	if fx.log.Size() != 0 {
		t.Fatalf("refused records reached the ledger: size %d", fx.log.Size())
	}
	// Unambiguous records with escapes, pairs and non-ASCII text pass.
	for _, ok := range []string{
		`{"national_id":"1","last_name":"Ivanova \u00e9 \ud83d\ude00 é 😀","a":{"k":1},"b":{"k":1},"c":["k","k"]}`,
		`{"national_id":"2","last_name":"A","e\u0301":1,"é":2}`,
	} {
		if _, err := fx.reg.Put(ctx, "population", "DR-2", json.RawMessage(ok), nil); err != nil {
			t.Errorf("put %s: %v", ok, err)
		}
	}
}

var surrogateEscape = regexp.MustCompile(`(?i)\\u[d][89a-f][0-9a-f]{2}`)

// FuzzIJSON checks the I-JSON validator against encoding/json: it never
// panics on valid JSON; what it accepts is valid UTF-8; and where no
// surrogate escape makes encoding/json lossy, it finds a duplicate member
// name exactly when a token-by-token read by encoding/json does.
func FuzzIJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `["\ud800"]`, `"\ud83d\ude00"`, "\"\xff\"", `{"\u0061":1,"a":2}`, `[]`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		e := checkIJSON(b)
		if e == nil && !utf8.Valid(b) {
			t.Fatalf("%q: accepted, but it is not valid UTF-8", b)
		}
		if e != nil && e.err == nil {
			t.Fatalf("%q: error without a reason at %q", b, e.field)
		}
		if !utf8.Valid(b) || surrogateEscape.Match(b) {
			return
		}
		dup := hasDuplicateKey(t, b)
		if got := e != nil && errors.Is(e.err, ErrDuplicateKey); got != dup {
			t.Fatalf("%q: validator says duplicate=%v (%v), encoding/json tokens say %v", b, got, e, dup)
		}
		if e != nil && !errors.Is(e.err, ErrDuplicateKey) {
			t.Fatalf("%q: valid UTF-8 without surrogate escapes refused: %v at %q", b, e.err, e.field)
		}
	})
}

// hasDuplicateKey reads b token by token with encoding/json and reports
// whether any object repeats a member name.
func hasDuplicateKey(t *testing.T, b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	// Numbers as written: a valid number too large for a float64 is
	// still valid JSON (the fuzzer found one), and only names matter here.
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("%q: token: %v", b, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{obj: d == '{', keys: map[string]bool{}, expect: true})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.obj {
			if top.expect {
				k := tok.(string)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.expect = false
			} else {
				top.expect = true
			}
		}
	}
}
