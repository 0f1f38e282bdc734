package registry

import (
	"bytes"
	"encoding/json"
)

// validJSON reports whether data is one JSON value, with optional white
// space around it: what json.Valid reports (the same grammar, the same
// nesting limit, and like it no check of UTF-8), in one pass of direct
// byte tests instead of json.Valid's state machine. A restore opens a
// million sealed bodies and checks each; json.Valid was a third of its
// CPU (docs/benchmarks.md § Restore).
func validJSON(data []byte) bool {
	i, ok := validValue(data, skipSpace(data, 0), 0)
	return ok && skipSpace(data, i) == len(data)
}

// maxJSONDepth is encoding/json's nesting limit: deeper is invalid there.
const maxJSONDepth = 10000

// validValue checks the value at i, nested depth deep, and returns its end.
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{' || c == '[':
		if depth+1 > maxJSONDepth {
			return i, false
		}
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, false
				}
				if i, ok = validString(b, i); !ok {
					return i, false
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return i, false
				}
				i = skipSpace(b, i+1)
			}
			if i, ok = validValue(b, i, depth+1); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case closer:
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return validNumber(b, i)
	case c == 't':
		return i + 4, len(b) >= i+4 && string(b[i:i+4]) == "true"
	case c == 'f':
		return i + 5, len(b) >= i+5 && string(b[i:i+5]) == "false"
	case c == 'n':
		return i + 4, len(b) >= i+4 && string(b[i:i+4]) == "null"
	}
	return i, false
}

// plainStringByte marks the bytes a JSON string holds as they are: all
// but control characters, the quote and the backslash. Read-only: a
// restore checks every string of a million records (docs/benchmarks.md),
// and a table lookup takes 0.6 of the time of three comparisons.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validString checks the string at i (its opening quote) and returns its
// end: no control character, only JSON's escapes.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		if plainStringByte[b[i]] { // one load for most bytes, not three tests
			continue
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// validNumber checks the number at i and returns its end:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	var ok bool
	if b[i] == '0' {
		i++
	} else if i, ok = digits(i); !ok {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}

// validObjectFields checks that data is one JSON object, as validJSON
// does, and takes out the raw values of its named top-level members into
// out (len(names) long, nil where absent, the last where one repeats) in
// the same pass: an opened body is walked once, not checked and then
// walked.
func validObjectFields(out [][]byte, data []byte, names []string) bool {
	return validObjectNested(fieldsOf{names, out}, data, -1, fieldsOf{})
}

// fieldsOf names the members to take out of an object, and where to.
type fieldsOf struct {
	names []string
	out   [][]byte
}

// validObjectNested is validObjectFields of the members f names, where
// the member f.names[inner], if an object, has its own members sub.names
// taken out into sub.out in the same pass (sub.out nil where it is not
// an object): a record's body, with the columns of its data, in one walk.
func validObjectNested(f fieldsOf, data []byte, inner int, sub fieldsOf) bool {
	clear(f.out)
	clear(sub.out)
	i, ok := validObjectAt(data, skipSpace(data, 0), 0, f, inner, sub)
	return ok && skipSpace(data, i) == len(data)
}

// validObjectAt checks the object at i, nested depth deep, as validValue
// does, and returns its end; see validObjectNested for f, inner and sub.
func validObjectAt(data []byte, i, depth int, f fieldsOf, inner int, sub fieldsOf) (int, bool) {
	if i >= len(data) || data[i] != '{' || depth+1 > maxJSONDepth {
		return i, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return i, false
		}
		kEnd, ok := validString(data, i)
		if !ok {
			return i, false
		}
		key := data[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(data[i:kEnd], &k) != nil {
				return i, false
			}
			key = []byte(k)
		}
		i = skipSpace(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return i, false
		}
		i = skipSpace(data, i+1)
		var vEnd int
		isInner := inner >= 0 && string(key) == f.names[inner]
		if isInner {
			clear(sub.out) // the last of a repeated member counts
		}
		if isInner && i < len(data) && data[i] == '{' {
			vEnd, ok = validObjectAt(data, i, depth+1, sub, -1, fieldsOf{})
		} else {
			vEnd, ok = validValue(data, i, depth+1)
		}
		if !ok {
			return i, false
		}
		for n, name := range f.names {
			if string(key) == name {
				f.out[n] = data[i:vEnd]
			}
		}
		i = skipSpace(data, vEnd)
		if i >= len(data) {
			return i, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}
