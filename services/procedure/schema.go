package procedure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chancery-gov/chancery/continuity"
)

// Schema is the JSON Schema subset a procedure's inputs are declared in:
// type (object, string, integer, number, boolean, array), properties,
// required, items, enum, pattern, minLength/maxLength, minimum/maximum and
// format "date". Two deliberate differences from JSON Schema: an object
// refuses properties it does not declare (as if additionalProperties were
// false: a submission cannot smuggle fields into a record through an
// effect template), and pattern is a Go RE2 expression (no backreferences
// or lookaround), matched unanchored as JSON Schema matches.
type Schema struct {
	Type        string             `yaml:"type" json:"type"`
	Description string             `yaml:"description,omitempty" json:"description,omitempty"`
	Properties  map[string]*Schema `yaml:"properties,omitempty" json:"properties,omitempty"`
	Required    []string           `yaml:"required,omitempty" json:"required,omitempty"`
	Items       *Schema            `yaml:"items,omitempty" json:"items,omitempty"`
	Enum        []any              `yaml:"enum,omitempty" json:"enum,omitempty"`
	Pattern     string             `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	MinLength   *int               `yaml:"minLength,omitempty" json:"minLength,omitempty"`
	MaxLength   *int               `yaml:"maxLength,omitempty" json:"maxLength,omitempty"`
	Minimum     *float64           `yaml:"minimum,omitempty" json:"minimum,omitempty"`
	Maximum     *float64           `yaml:"maximum,omitempty" json:"maximum,omitempty"`
	Format      string             `yaml:"format,omitempty" json:"format,omitempty"`

	re   *regexp.Regexp // compiled Pattern, set by check
	enum [][]byte       // canonical JSON of each Enum value, set by check
}

// Schema types.
const (
	TypeObject  = "object"
	TypeString  = "string"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeArray   = "array"
)

// maxSchemaDepth bounds nesting, so a hostile document cannot make the
// validator recurse without end; maxInputSize bounds a submission.
const (
	maxSchemaDepth = 16
	maxInputSize   = 32 << 10
)

// maxSafeInteger is 2^53: integers beyond it do not survive a round trip
// through a JSON number in most languages (I-JSON, RFC 7493 §2.2).
const maxSafeInteger = 1 << 53

// check validates the schema itself and compiles its patterns. path names
// where it sits in the procedure document.
func (s *Schema) check(path string, depth int) error {
	if s == nil {
		return fmt.Errorf("%s: missing schema", path)
	}
	if depth > maxSchemaDepth {
		return fmt.Errorf("%s: nested deeper than %d", path, maxSchemaDepth)
	}
	switch s.Type {
	case TypeObject, TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeArray:
	default:
		return fmt.Errorf("%s.type: %q is not one of object, string, integer, number, boolean, array", path, s.Type)
	}
	if s.Type != TypeObject && (len(s.Properties) > 0 || len(s.Required) > 0) {
		return fmt.Errorf("%s: properties and required apply only to type object", path)
	}
	if s.Type != TypeArray && s.Items != nil {
		return fmt.Errorf("%s.items: applies only to type array", path)
	}
	if s.Type == TypeArray && s.Items == nil {
		return fmt.Errorf("%s.items: an array declares its items", path)
	}
	if s.Type != TypeString && (s.Pattern != "" || s.MinLength != nil || s.MaxLength != nil || s.Format != "") {
		return fmt.Errorf("%s: pattern, minLength, maxLength and format apply only to type string", path)
	}
	if s.Type != TypeInteger && s.Type != TypeNumber && (s.Minimum != nil || s.Maximum != nil) {
		return fmt.Errorf("%s: minimum and maximum apply only to type integer or number", path)
	}
	if s.Format != "" && s.Format != "date" {
		return fmt.Errorf("%s.format: %q: only \"date\" is supported", path, s.Format)
	}
	if s.MinLength != nil && *s.MinLength < 0 || s.MaxLength != nil && *s.MaxLength < 0 {
		return fmt.Errorf("%s: minLength and maxLength are not negative", path)
	}
	if s.MinLength != nil && s.MaxLength != nil && *s.MinLength > *s.MaxLength {
		return fmt.Errorf("%s: minLength %d above maxLength %d", path, *s.MinLength, *s.MaxLength)
	}
	if s.Minimum != nil && s.Maximum != nil && *s.Minimum > *s.Maximum {
		return fmt.Errorf("%s: minimum %v above maximum %v", path, *s.Minimum, *s.Maximum)
	}
	if s.Pattern != "" {
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return fmt.Errorf("%s.pattern: %w", path, err)
		}
		s.re = re
	}
	s.enum = nil
	for i, v := range s.Enum {
		b, err := canonicalValue(v)
		if err != nil {
			return fmt.Errorf("%s.enum[%d]: %w", path, i, err)
		}
		// An enum value the schema's own type refuses could never match.
		var val any
		if err := decodeStrict(b, &val); err != nil {
			return fmt.Errorf("%s.enum[%d]: %w", path, i, err)
		}
		if err := s.typeOf(val); err != nil {
			return fmt.Errorf("%s.enum[%d]: %w", path, i, err)
		}
		s.enum = append(s.enum, b)
	}
	for _, name := range s.Required {
		if _, ok := s.Properties[name]; !ok {
			return fmt.Errorf("%s.required: %q is not among the properties", path, name)
		}
	}
	for _, name := range sortedKeys(s.Properties) {
		if !fieldNameRe.MatchString(name) {
			return fmt.Errorf("%s.properties: %q is not a field name (a-z, 0-9, '_', starting with a letter)", path, name)
		}
		if err := s.Properties[name].check(path+".properties."+name, depth+1); err != nil {
			return err
		}
	}
	if s.Items != nil {
		return s.Items.check(path+".items", depth+1)
	}
	return nil
}

var fieldNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// FieldError is a value refused by a schema: Path names the field
// ("input.child.birth_date", "input.children[2]").
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ValidateJSON decodes data strictly (one JSON value, no repeated member,
// numbers kept exact) and validates it against s. It returns the decoded
// value: maps, slices, strings, json.Number and booleans.
func (s *Schema) ValidateJSON(data []byte) (any, error) {
	if len(data) > maxInputSize {
		return nil, &FieldError{Path: "input", Err: fmt.Errorf("%d bytes, at most %d", len(data), maxInputSize)}
	}
	var v any
	if err := decodeStrict(data, &v); err != nil {
		return nil, &FieldError{Path: "input", Err: err}
	}
	if err := s.Validate("input", v); err != nil {
		return nil, err
	}
	return v, nil
}

// Validate checks a decoded value (as decodeStrict produces) against s;
// the error is a *FieldError naming the first field refused, under path.
func (s *Schema) Validate(path string, v any) error {
	return s.validate(path, v, 0)
}

func (s *Schema) validate(path string, v any, depth int) error {
	if depth > maxSchemaDepth {
		return &FieldError{Path: path, Err: fmt.Errorf("nested deeper than %d", maxSchemaDepth)}
	}
	if err := s.typeOf(v); err != nil {
		return &FieldError{Path: path, Err: err}
	}
	if len(s.enum) > 0 {
		b, err := canonicalValue(v)
		if err != nil || !slices.ContainsFunc(s.enum, func(e []byte) bool { return bytes.Equal(e, b) }) {
			return &FieldError{Path: path, Err: fmt.Errorf("not one of the allowed values %s", enumList(s.enum))}
		}
	}
	switch s.Type {
	case TypeString:
		str := v.(string)
		n := utf8.RuneCountInString(str)
		if s.MinLength != nil && n < *s.MinLength {
			return &FieldError{Path: path, Err: fmt.Errorf("%d characters, at least %d", n, *s.MinLength)}
		}
		if s.MaxLength != nil && n > *s.MaxLength {
			return &FieldError{Path: path, Err: fmt.Errorf("%d characters, at most %d", n, *s.MaxLength)}
		}
		if s.re != nil && !s.re.MatchString(str) {
			return &FieldError{Path: path, Err: fmt.Errorf("does not match the pattern %s", s.Pattern)}
		}
		if s.Format == "date" {
			if _, err := time.Parse(time.DateOnly, str); err != nil || len(str) != len(time.DateOnly) {
				return &FieldError{Path: path, Err: fmt.Errorf("%q is not a date (YYYY-MM-DD)", abbreviate(str))}
			}
		}
	case TypeInteger, TypeNumber:
		f, _ := strconv.ParseFloat(string(v.(json.Number)), 64)
		if s.Minimum != nil && f < *s.Minimum {
			return &FieldError{Path: path, Err: fmt.Errorf("%s is below the minimum %v", v, *s.Minimum)}
		}
		if s.Maximum != nil && f > *s.Maximum {
			return &FieldError{Path: path, Err: fmt.Errorf("%s is above the maximum %v", v, *s.Maximum)}
		}
	case TypeObject:
		m := v.(map[string]any)
		for _, name := range s.Required {
			if _, ok := m[name]; !ok {
				return &FieldError{Path: path + "." + name, Err: errors.New("required")}
			}
		}
		for _, name := range sortedKeys(m) {
			ps, ok := s.Properties[name]
			if !ok {
				return &FieldError{Path: path + "." + abbreviate(name), Err: errors.New("not a field of this procedure's input")}
			}
			if err := ps.validate(path+"."+name, m[name], depth+1); err != nil {
				return err
			}
		}
	case TypeArray:
		for i, e := range v.([]any) {
			if err := s.Items.validate(fmt.Sprintf("%s[%d]", path, i), e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// typeOf checks that v is of s's type.
func (s *Schema) typeOf(v any) error {
	ok := false
	switch s.Type {
	case TypeObject:
		_, ok = v.(map[string]any)
	case TypeArray:
		_, ok = v.([]any)
	case TypeString:
		_, ok = v.(string)
	case TypeBoolean:
		_, ok = v.(bool)
	case TypeNumber:
		if n, isNum := v.(json.Number); isNum {
			f, err := strconv.ParseFloat(string(n), 64)
			ok = err == nil && !math.IsInf(f, 0)
		}
	case TypeInteger:
		if n, isNum := v.(json.Number); isNum {
			ok = isInteger(n)
		}
	}
	if !ok {
		return fmt.Errorf("want %s, have %s", s.Type, kindOf(v))
	}
	return nil
}

// isInteger accepts a JSON number whose value is a whole number no larger
// in magnitude than 2^53 ("3", "3.0" and "3e0" all are, as in JSON Schema).
func isInteger(n json.Number) bool {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i >= -maxSafeInteger && i <= maxSafeInteger
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return err == nil && f == math.Trunc(f) && math.Abs(f) <= maxSafeInteger
}

func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if isInteger(x) {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func enumList(enum [][]byte) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		parts[i] = string(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// decodeStrict decodes exactly one JSON value into v with numbers kept as
// json.Number, refusing a repeated object member (encoding/json would keep
// the last one silently: two readers of one submission could then see two
// different inputs) and trailing data.
func decodeStrict(data []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	val, err := decodeValue(dec, 0)
	if err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	*v = val
	return nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxSchemaDepth+1 {
		return nil, fmt.Errorf("JSON nested deeper than %d", maxSchemaDepth+1)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("no JSON value")
		}
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("not JSON: %w", err)
				}
				k := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("member %q appears twice", abbreviate(k))
				}
				if m[k], err = decodeValue(dec, depth+1); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("not JSON: %w", err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("not JSON: %w", err)
			}
			return a, nil
		}
		return nil, fmt.Errorf("not JSON: unexpected %v", t)
	case string:
		if !utf8.ValidString(t) {
			return nil, errors.New("a string is not valid UTF-8")
		}
		return t, nil
	default:
		return t, nil // json.Number, bool or nil
	}
}

// canonicalValue is the canonical JSON of v (see canonicalJSON), where v
// comes from YAML (int, float64...) or from decodeStrict (json.Number).
// Numbers are normalised so that 1, 1.0 and 1e0 compare equal.
func canonicalValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, err
		}
		return canonicalJSON(f)
	case int:
		return canonicalJSON(float64(x))
	case int64:
		return canonicalJSON(float64(x))
	case uint64:
		return canonicalJSON(float64(x))
	case float64:
		return canonicalJSON(x)
	case string, bool, nil:
		return canonicalJSON(x)
	}
	return nil, fmt.Errorf("an enum value is a string, number, boolean or null, not %s", kindOf(v))
}

// canonicalJSON is the encoding signed and hashed here: continuity's,
// the one orders are signed in.
func canonicalJSON(v any) ([]byte, error) { return continuity.CanonicalJSON(v) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// abbreviate shortens a caller-supplied string quoted in an error.
func abbreviate(s string) string {
	if len(s) <= 64 {
		return s
	}
	i := 61
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
