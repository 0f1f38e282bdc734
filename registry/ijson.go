package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A record must read the same to every reader. JSON that encoding/json
// accepts can still be ambiguous: a duplicate key ({"k":"A","k":"B"}) is
// the last value to the index and the first to another parser; invalid
// UTF-8 and lone surrogate escapes (\ud800) are replaced, dropped or
// refused depending on the reader, and echoing them makes a response that
// is not JSON. So records must be I-JSON (RFC 7493): valid UTF-8, no
// unpaired surrogates, unique member names, at every depth.

// Errors wrapped by the *ValidationError a record that is not I-JSON gets.
var (
	ErrDuplicateKey = errors.New("duplicate object member name (RFC 7493 §2.3)")
	ErrInvalidUTF8  = errors.New("string is not valid UTF-8 (RFC 7493 §2.1)")
	ErrSurrogate    = errors.New("string holds an unpaired surrogate escape (RFC 7493 §2.1)")
)

// ijsonError is a violation at a field path ("a.b[2].c").
type ijsonError struct {
	field string
	err   error
}

// checkIJSON checks that data, which json.Valid accepts, is I-JSON. It
// returns the path of the first offending field ("" for the top level) and
// what is wrong there.
func checkIJSON(data []byte) *ijsonError {
	_, e := ijsonValue(data, skipSpace(data, 0), "")
	return e
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func ijsonValue(b []byte, i int, path string) (int, *ijsonError) {
	switch b[i] {
	case '{':
		return ijsonObject(b, i, path)
	case '[':
		n := 0
		i = skipSpace(b, i+1)
		for b[i] != ']' {
			end, e := ijsonValue(b, i, path+"["+strconv.Itoa(n)+"]")
			if e != nil {
				return 0, e
			}
			n++
			i = skipSpace(b, end)
			if b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
		return i + 1, nil
	case '"':
		end := skipValue(b, i)
		if _, err := ijsonString(b[i:end]); err != nil {
			return 0, &ijsonError{path, err}
		}
		return end, nil
	default:
		return skipValue(b, i), nil
	}
}

func ijsonObject(b []byte, i int, path string) (int, *ijsonError) {
	// Most objects are small: a slice scanned linearly beats a map.
	var seen []string
	var seenMap map[string]bool
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		kEnd := skipValue(b, i)
		key, err := ijsonString(b[i:kEnd])
		if err != nil {
			return 0, &ijsonError{joinField(path, strings.ToValidUTF8(key, "\uFFFD")), fmt.Errorf("member name: %w", err)}
		}
		field := joinField(path, key)
		dup := false
		if seenMap != nil {
			dup = seenMap[key]
			seenMap[key] = true
		} else {
			for _, k := range seen {
				dup = dup || k == key
			}
			seen = append(seen, key)
			if len(seen) > 16 {
				seenMap = make(map[string]bool, 2*len(seen))
				for _, k := range seen {
					seenMap[k] = true
				}
			}
		}
		if dup {
			return 0, &ijsonError{field, ErrDuplicateKey}
		}
		i = skipSpace(b, kEnd)
		i = skipSpace(b, i+1) // past ':'
		end, e := ijsonValue(b, i, field)
		if e != nil {
			return 0, e
		}
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return i + 1, nil
}

// ijsonString checks a JSON string token (quotes included, valid JSON)
// and returns its value. On error the value is as far as it could be read.
func ijsonString(raw []byte) (string, error) {
	s := raw[1 : len(raw)-1]
	simple := true
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		return string(s), nil
	}
	var out strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				return out.String(), fmt.Errorf("%w: byte 0x%02x at %d", ErrInvalidUTF8, c, i)
			}
			out.WriteString(string(s[i : i+n]))
			i += n
		case c != '\\':
			out.WriteByte(c)
			i++
		case s[i+1] != 'u':
			var r string
			json.Unmarshal([]byte(`"`+string(s[i:i+2])+`"`), &r)
			out.WriteString(r)
			i += 2
		default:
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				var lo rune = -1
				if r < 0xdc00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					lo = hex4(s[i+2 : i+6])
				}
				if lo < 0xdc00 || lo > 0xdfff {
					return out.String(), fmt.Errorf("%w: \\u%04x", ErrSurrogate, r)
				}
				r = utf16.DecodeRune(r, lo)
				i += 6
			}
			out.WriteRune(r)
		}
	}
	return out.String(), nil
}

// hex4 reads four hex digits, which valid JSON guarantees after \u.
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}
