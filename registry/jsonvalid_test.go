package registry

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// jsonSeeds are valid and invalid JSON texts around each rule of the
// grammar.
var jsonSeeds = []string{
	`{"id":"x","id":"y","\\u00e9":1, "data" : {"a":[]} }`, `{"a":1}`, `{"a":{"b":2},"c":3}`, ` {"a":[1,2]} `,
	`{"id":"p1","data":{"name":"Ana","born":"1990-01-02","n":-12.5e+3,"ok":true,"x":null,"a":[1,[2,{}],"\u00e9\n"]}}`,
	` [] `, `{}`, `""`, `0`, `-0`, `1.5`, `1e5`, `1E-5`, `true`, `false`, `null`, "\t\n\r 7 \t",
	`"\"\\\/\b\f\n\r\t\u12aF"`, "\"\xff\xfe\"", `{"a" : 1 , "b" : [ ]}`,
	``, ` `, `{`, `}`, `[`, `[1,]`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `[1 2]`, `{"a":1 "b":2}`,
	`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `--1`, `1.e5`, `0x10`, `tru`, `nul`, `falsey`, `True`, `1true`,
	"\"a\x01\"", `"\x"`, `"\u12"`, `"\u12g4"`, `"abc`, `"\`, `[1]]`, `[1] x`, `{"a":1}}`, `{"a":1}{"b":2}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

// TestValidJSON: validJSON says what json.Valid says, on the seeds and on
// a hundred thousand random edits of them.
func TestValidJSON(t *testing.T) {
	check := func(s string) {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", s, got, want)
		}
		checkFields(t, []byte(s))
	}
	for _, s := range jsonSeeds {
		check(s)
	}
	alphabet := []byte("{}[]\":,.-+eE0123456789 \\/\\\"untrfalsebx\x00\x1f\n\xc3\xa9")
	r := rand.New(rand.NewPCG(1, 2))
	valid := 0
	for range 100_000 {
		b := []byte(jsonSeeds[r.IntN(16)])
		for range 1 + r.IntN(3) {
			p := r.IntN(len(b) + 1)
			switch r.IntN(3) {
			case 0: // insert
				b = append(b[:p], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[p:]...)...)
			case 1: // delete
				if p < len(b) {
					b = append(b[:p], b[p+1:]...)
				}
			case 2: // replace
				if p < len(b) {
					b[p] = alphabet[r.IntN(len(alphabet))]
				}
			}
		}
		if json.Valid(b) {
			valid++
		}
		check(string(b))
	}
	if valid < 1000 {
		t.Fatalf("only %d of the random texts were valid: the test does not cover both answers", valid)
	}
}

// FuzzValidJSON: go test -fuzz FuzzValidJSON ./registry/
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonSeeds[:len(jsonSeeds)-4] {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
		checkFields(t, b)
	})
}

// checkFields: validObjectFields accepts exactly the JSON objects, and
// takes out what a full decoding does.
func checkFields(t *testing.T, b []byte) {
	t.Helper()
	names := []string{"id", "data", "a", "\u00e9"}
	var got [4][]byte
	ok := validObjectFields(got[:], b, names)
	var m map[string]json.RawMessage
	isObject := json.Valid(b) && json.Unmarshal(b, &m) == nil && m != nil
	if ok != isObject {
		t.Fatalf("validObjectFields(%q) = %v, a JSON object: %v", b, ok, isObject)
	}
	if !ok {
		return
	}
	for i, n := range names {
		var key string
		json.Unmarshal([]byte(`"`+n+`"`), &key)
		if want, has := m[key]; has != (got[i] != nil) || has && !bytes.Equal(bytes.TrimSpace(got[i]), bytes.TrimSpace(want)) {
			t.Fatalf("validObjectFields(%q): member %s = %q, decoding gives %q", b, key, got[i], want)
		}
	}
	// The same walk taking out the members of "data" too gives the same
	// members, and those of data's object what a full decoding gives.
	subNames := []string{"a", "b", "\u00e9"}
	var top [4][]byte
	var sub [3][]byte
	if !validObjectNested(fieldsOf{names, top[:]}, b, 1, fieldsOf{subNames, sub[:]}) {
		t.Fatalf("validObjectNested(%q) refused what validObjectFields accepted", b)
	}
	if !slices.EqualFunc(top[:], got[:], bytes.Equal) {
		t.Fatalf("validObjectNested(%q) took out %q, validObjectFields %q", b, top, got)
	}
	var dm map[string]json.RawMessage
	if json.Unmarshal(m["data"], &dm) != nil || dm == nil {
		if sub[0] != nil || sub[1] != nil || sub[2] != nil {
			t.Fatalf("validObjectNested(%q): data is not an object, yet its members are %q", b, sub)
		}
		return
	}
	for i, n := range subNames {
		var key string
		json.Unmarshal([]byte(`"`+n+`"`), &key)
		if want, has := dm[key]; has != (sub[i] != nil) || has && !bytes.Equal(bytes.TrimSpace(sub[i]), bytes.TrimSpace(want)) {
			t.Fatalf("validObjectNested(%q): data member %s = %q, decoding gives %q", b, key, sub[i], want)
		}
	}
}
