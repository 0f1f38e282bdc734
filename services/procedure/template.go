package procedure

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Templates compute an effect's record id and fields from the case, as
// data rather than code. A template is a string in which {name} is
// replaced by a value and {{ and }} stand for literal braces. The names:
//
//	{input.FIELD}     a top-level input field (string, number or boolean)
//	{case.id}         the case id
//	{case.starter}    who opened the case: "official:ID" or "citizen:PERSON"
//	{case.date}       the decision's date, YYYY-MM-DD (UTC)
//	{procedure.id}    the procedure id
//
// A field whose whole template is one {input.FIELD} takes the input's
// value with its JSON type (an integer stays an integer); any other
// template yields a string. Numbers, booleans and null in Fields are
// written as they are; objects and lists are walked.

// vars are the values a template may name.
type vars struct {
	input     map[string]any
	caseID    string
	starter   string
	date      string
	procedure string
}

// maxTemplateDepth bounds how deep Fields may nest.
const maxTemplateDepth = 8

// checkTemplate checks that every name in t exists (input fields against
// schema) and that the braces balance.
func checkTemplate(t string, schema *Schema) error {
	_, err := expand(t, func(name string) (any, error) {
		switch {
		case name == "case.id" || name == "case.starter" || name == "case.date" || name == "procedure.id":
			return "", nil
		case strings.HasPrefix(name, "input."):
			f := strings.TrimPrefix(name, "input.")
			s, ok := schema.Properties[f]
			if !ok {
				return nil, fmt.Errorf("{%s}: %q is not an input field", name, abbreviate(f))
			}
			if s.Type == TypeObject || s.Type == TypeArray {
				return nil, fmt.Errorf("{%s}: an %s field cannot be placed in a template", name, s.Type)
			}
			return "", nil
		}
		return nil, fmt.Errorf("{%s}: unknown name (input.FIELD, case.id, case.starter, case.date, procedure.id)", abbreviate(name))
	})
	return err
}

func checkTemplates(v any, schema *Schema, path string, depth int) error {
	if depth > maxTemplateDepth {
		return fmt.Errorf("%s: nested deeper than %d", path, maxTemplateDepth)
	}
	switch x := v.(type) {
	case string:
		if err := checkTemplate(x, schema); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if k == "" {
				return fmt.Errorf("%s: an empty field name", path)
			}
			if err := checkTemplates(x[k], schema, path+"."+k, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkTemplates(e, schema, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	case bool, nil, int, int64, uint64:
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%s: %v has no JSON form", path, x)
		}
	default:
		return fmt.Errorf("%s: a %T has no JSON form (a map whose keys are not strings?)", path, v)
	}
	return nil
}

// lookup resolves one name.
func (vs *vars) lookup(name string) (any, error) {
	switch name {
	case "case.id":
		return vs.caseID, nil
	case "case.starter":
		return vs.starter, nil
	case "case.date":
		return vs.date, nil
	case "procedure.id":
		return vs.procedure, nil
	}
	f, ok := strings.CutPrefix(name, "input.")
	if !ok {
		return nil, fmt.Errorf("{%s}: unknown name", abbreviate(name))
	}
	v, ok := vs.input[f]
	if !ok {
		// An optional field the submission left out.
		return nil, nil
	}
	return v, nil
}

// render evaluates one template string to a JSON value.
func (vs *vars) render(t string) (any, error) {
	if name, ok := wholeName(t); ok {
		return vs.lookup(name)
	}
	return expand(t, vs.lookup)
}

// renderFields evaluates every template in v.
func (vs *vars) renderFields(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return vs.render(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := vs.renderFields(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := vs.renderFields(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// wholeName reports whether t is exactly one {name}.
func wholeName(t string) (string, bool) {
	if len(t) < 3 || t[0] != '{' || t[len(t)-1] != '}' || t[1] == '{' {
		return "", false
	}
	name := t[1 : len(t)-1]
	if strings.ContainsAny(name, "{}") {
		return "", false
	}
	return name, true
}

// expand replaces each {name} in t by the string form of resolve(name).
func expand(t string, resolve func(string) (any, error)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(t); {
		c := t[i]
		switch {
		case c == '{' && i+1 < len(t) && t[i+1] == '{':
			b.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(t) && t[i+1] == '}':
			b.WriteByte('}')
			i += 2
		case c == '{':
			end := strings.IndexByte(t[i+1:], '}')
			if end < 0 {
				return "", errors.New("a { without its }")
			}
			name := t[i+1 : i+1+end]
			if strings.ContainsRune(name, '{') || name == "" {
				return "", fmt.Errorf("a malformed name {%s}", abbreviate(name))
			}
			v, err := resolve(name)
			if err != nil {
				return "", err
			}
			switch x := v.(type) {
			case nil:
			case string:
				b.WriteString(x)
			case json.Number:
				b.WriteString(string(x))
			case bool:
				fmt.Fprint(&b, x)
			default:
				return "", fmt.Errorf("{%s}: a %s cannot be placed in text", name, kindOf(v))
			}
			i += end + 2
		case c == '}':
			return "", errors.New("a } without its {")
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}
