package procedure

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// genSchema draws a schema of the subset, at most depth levels deep.
func genSchema(t *rapid.T, depth int) *Schema {
	types := []string{TypeString, TypeInteger, TypeNumber, TypeBoolean}
	if depth > 0 {
		types = append(types, TypeObject, TypeArray)
	}
	s := &Schema{Type: rapid.SampledFrom(types).Draw(t, "type")}
	switch s.Type {
	case TypeString:
		switch rapid.IntRange(0, 3).Draw(t, "string-kind") {
		case 1:
			lo := rapid.IntRange(0, 5).Draw(t, "minLength")
			hi := lo + rapid.IntRange(0, 5).Draw(t, "span")
			s.MinLength, s.MaxLength = &lo, &hi
		case 2:
			s.Pattern = "^[a-c]+$"
		case 3:
			s.Format = "date"
		}
		if rapid.Bool().Draw(t, "string-enum") && s.Format == "" && s.Pattern == "" && s.MinLength == nil {
			s.Enum = []any{"red", "green", "blue"}
		}
	case TypeInteger, TypeNumber:
		if rapid.Bool().Draw(t, "bounded") {
			lo := float64(rapid.IntRange(-100, 100).Draw(t, "minimum"))
			hi := lo + float64(rapid.IntRange(0, 100).Draw(t, "range"))
			s.Minimum, s.Maximum = &lo, &hi
		}
	case TypeObject:
		s.Properties = map[string]*Schema{}
		n := rapid.IntRange(0, 4).Draw(t, "properties")
		for i := range n {
			name := fmt.Sprintf("f%d", i)
			s.Properties[name] = genSchema(t, depth-1)
			if rapid.Bool().Draw(t, "required") {
				s.Required = append(s.Required, name)
			}
		}
	case TypeArray:
		s.Items = genSchema(t, depth-1)
	}
	return s
}

// genValue draws a value s accepts.
func genValue(t *rapid.T, s *Schema) any {
	switch s.Type {
	case TypeString:
		switch {
		case len(s.Enum) > 0:
			return rapid.SampledFrom([]string{"red", "green", "blue"}).Draw(t, "enum")
		case s.Format == "date":
			return fmt.Sprintf("%04d-%02d-%02d", rapid.IntRange(1900, 2100).Draw(t, "y"), rapid.IntRange(1, 12).Draw(t, "m"), rapid.IntRange(1, 28).Draw(t, "d"))
		case s.Pattern != "":
			return rapid.StringMatching("[a-c]{1,8}").Draw(t, "pattern")
		case s.MinLength != nil:
			n := rapid.IntRange(*s.MinLength, *s.MaxLength).Draw(t, "len")
			return strings.Repeat("é", n)
		}
		return rapid.String().Draw(t, "string")
	case TypeInteger, TypeNumber:
		lo, hi := -1000, 1000
		if s.Minimum != nil {
			lo, hi = int(*s.Minimum), int(*s.Maximum)
		}
		return json.Number(fmt.Sprint(rapid.IntRange(lo, hi).Draw(t, "n")))
	case TypeBoolean:
		return rapid.Bool().Draw(t, "bool")
	case TypeArray:
		n := rapid.IntRange(0, 3).Draw(t, "items")
		a := make([]any, n)
		for i := range a {
			a[i] = genValue(t, s.Items)
		}
		return a
	}
	m := map[string]any{}
	for _, name := range sortedKeys(s.Properties) {
		if contains(s.Required, name) || rapid.Bool().Draw(t, "present") {
			m[name] = genValue(t, s.Properties[name])
		}
	}
	return m
}

// TestSchemaAcceptsWhatItDescribes: a value drawn to fit a schema passes,
// also after a round trip through its JSON text.
func TestSchemaAcceptsWhatItDescribes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genSchema(t, 3)
		if err := s.check("input", 0); err != nil {
			t.Fatalf("generated schema refused: %v", err)
		}
		v := genValue(t, s)
		if err := s.Validate("input", v); err != nil {
			t.Fatalf("value %v refused: %v", v, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if s.Type == TypeObject {
			if _, err := s.ValidateJSON(b); err != nil {
				t.Fatalf("%s refused: %v", b, err)
			}
		}
	})
}

// TestSchemaRefusesOneBrokenConstraint: breaking one constraint of a
// fitting value is refused, and the error names exactly the broken field.
func TestSchemaRefusesOneBrokenConstraint(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		inner := genSchema(t, 0)
		s := &Schema{Type: TypeObject, Properties: map[string]*Schema{"a": genSchema(t, 0), "target": inner}, Required: []string{"a", "target"}}
		if err := s.check("input", 0); err != nil {
			t.Fatal(err)
		}
		v := genValue(t, s).(map[string]any)
		bad, ok := breakValue(t, inner)
		if !ok {
			t.Skip("no constraint to break")
		}
		v["target"] = bad
		err := s.Validate("input", v)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Path != "input.target" {
			t.Fatalf("%v with target %#v: error %v, want one naming input.target", inner, bad, err)
		}
	})
}

// breakValue draws a value that violates one of s's constraints.
func breakValue(t *rapid.T, s *Schema) (any, bool) {
	var options []func() any
	// The wrong type always works.
	options = append(options, func() any {
		if s.Type == TypeString {
			return json.Number("1")
		}
		return "x"
	})
	switch s.Type {
	case TypeString:
		if len(s.Enum) > 0 {
			options = append(options, func() any { return "purple" })
		}
		if s.Format == "date" {
			options = append(options, func() any {
				return rapid.SampledFrom([]string{"2026-02-30", "2026-1-01", "20260101", "2026-13-01"}).Draw(t, "bad-date")
			})
		}
		if s.Pattern != "" {
			options = append(options, func() any { return "abcd" + rapid.StringMatching("[d-z0-9]{1,3}").Draw(t, "bad") })
		}
		if s.MaxLength != nil {
			options = append(options, func() any { return strings.Repeat("x", *s.MaxLength+1) })
		}
		if s.MinLength != nil && *s.MinLength > 0 {
			options = append(options, func() any { return strings.Repeat("x", *s.MinLength-1) })
		}
	case TypeInteger:
		options = append(options, func() any { return json.Number("1.5") })
		fallthrough
	case TypeNumber:
		if s.Maximum != nil {
			options = append(options, func() any { return json.Number(fmt.Sprint(int(*s.Maximum) + 1)) })
			options = append(options, func() any { return json.Number(fmt.Sprint(int(*s.Minimum) - 1)) })
		}
	}
	i := rapid.IntRange(0, len(options)-1).Draw(t, "break")
	return options[i](), true
}

// TestValidatorNeverPanics: any JSON against any schema is accepted or
// refused with a FieldError, never a panic.
func TestValidatorNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &Schema{Type: TypeObject, Properties: map[string]*Schema{"f0": genSchema(t, 2)}}
		if err := s.check("input", 0); err != nil {
			t.Fatal(err)
		}
		data := rapid.SliceOf(rapid.Byte()).Draw(t, "data")
		if _, err := s.ValidateJSON(data); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
		}
	})
}

func TestSchemaCheckRefusesMalformedSchemas(t *testing.T) {
	two, one := 2, 1
	for _, tc := range []struct {
		s    *Schema
		want string
	}{
		{&Schema{Type: "date"}, "input.type"},
		{&Schema{Type: TypeString, Pattern: "("}, "input.pattern"},
		{&Schema{Type: TypeString, MinLength: &two, MaxLength: &one}, "minLength 2 above maxLength 1"},
		{&Schema{Type: TypeInteger, Format: "date"}, "apply only to type string"},
		{&Schema{Type: TypeString, Format: "email"}, "input.format"},
		{&Schema{Type: TypeArray}, "input.items"},
		{&Schema{Type: TypeObject, Required: []string{"x"}}, `input.required: "x"`},
		{&Schema{Type: TypeInteger, Enum: []any{"a"}}, "input.enum[0]"},
		{&Schema{Type: TypeObject, Properties: map[string]*Schema{"Bad-Name": {Type: TypeString}}}, "input.properties"},
	} {
		if err := tc.s.check("input", 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}
