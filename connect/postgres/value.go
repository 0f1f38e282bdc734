package postgres

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// kind is how a column's text value becomes JSON (docs/postgres.md § Mapping).
type kind uint8

const (
	kString      kind = iota // text, varchar, uuid, time, interval, inet…: a JSON string
	kNumber                  // int2/4/8, oid: a JSON number, digits kept
	kFloat                   // float4/8: a number, or "NaN"/"Infinity"/"-Infinity"
	kNumeric                 // numeric: a string, so no digit is lost to a float
	kBool                    // bool: true/false
	kBytea                   // bytea: standard base64
	kJSON                    // json/jsonb: the JSON value itself
	kTimestamp               // timestamp: "2006-01-02T15:04:05.999999" (no zone: it has none)
	kTimestamptz             // timestamptz: RFC 3339 in UTC
)

// scalarKinds maps the supported types' OIDs to their kind.
var scalarKinds = map[uint32]kind{
	pgtype.TextOID: kString, pgtype.VarcharOID: kString, pgtype.BPCharOID: kString, pgtype.NameOID: kString,
	pgtype.UUIDOID: kString, pgtype.DateOID: kString, pgtype.TimeOID: kString, pgtype.TimetzOID: kString,
	pgtype.IntervalOID: kString, pgtype.InetOID: kString, pgtype.CIDROID: kString, pgtype.MacaddrOID: kString,
	pgtype.QCharOID: kString, pgtype.XMLOID: kString,
	pgtype.Int2OID: kNumber, pgtype.Int4OID: kNumber, pgtype.Int8OID: kNumber, pgtype.OIDOID: kNumber,
	pgtype.Float4OID: kFloat, pgtype.Float8OID: kFloat,
	pgtype.NumericOID: kNumeric,
	pgtype.BoolOID:    kBool,
	pgtype.ByteaOID:   kBytea,
	pgtype.JSONOID:    kJSON, pgtype.JSONBOID: kJSON,
	pgtype.TimestampOID: kTimestamp, pgtype.TimestamptzOID: kTimestamptz,
}

// arrayElems maps the supported array types' OIDs to their element's OID.
var arrayElems = map[uint32]uint32{
	pgtype.TextArrayOID: pgtype.TextOID, pgtype.VarcharArrayOID: pgtype.VarcharOID, pgtype.BPCharArrayOID: pgtype.BPCharOID,
	pgtype.NameArrayOID: pgtype.NameOID, pgtype.UUIDArrayOID: pgtype.UUIDOID, pgtype.DateArrayOID: pgtype.DateOID,
	pgtype.TimeArrayOID: pgtype.TimeOID, pgtype.IntervalArrayOID: pgtype.IntervalOID,
	pgtype.Int2ArrayOID: pgtype.Int2OID, pgtype.Int4ArrayOID: pgtype.Int4OID, pgtype.Int8ArrayOID: pgtype.Int8OID,
	pgtype.Float4ArrayOID: pgtype.Float4OID, pgtype.Float8ArrayOID: pgtype.Float8OID, pgtype.NumericArrayOID: pgtype.NumericOID,
	pgtype.BoolArrayOID: pgtype.BoolOID, pgtype.ByteaArrayOID: pgtype.ByteaOID,
	pgtype.JSONArrayOID: pgtype.JSONOID, pgtype.JSONBArrayOID: pgtype.JSONBOID,
	pgtype.TimestampArrayOID: pgtype.TimestampOID, pgtype.TimestamptzArrayOID: pgtype.TimestamptzOID,
}

// ErrUnknownType: a mapped table has a column of a type the connector does
// not map. It is refused rather than guessed at (docs/postgres.md).
var ErrUnknownType = errors.New("type not mapped by the connector")

// supported reports whether a column type can be mapped.
func supported(oid uint32) bool {
	if _, ok := scalarKinds[oid]; ok {
		return true
	}
	_, ok := arrayElems[oid]
	return ok
}

// appendValue appends the JSON form of a column's text value.
func appendValue(out []byte, oid uint32, text []byte) ([]byte, error) {
	if elem, ok := arrayElems[oid]; ok {
		return appendArray(out, elem, text)
	}
	k, ok := scalarKinds[oid]
	if !ok {
		return out, fmt.Errorf("%w: type oid %d", ErrUnknownType, oid)
	}
	return appendScalar(out, k, text)
}

func appendScalar(out []byte, k kind, text []byte) ([]byte, error) {
	switch k {
	case kNumber:
		return append(out, text...), nil
	case kFloat:
		switch string(text) {
		case "NaN", "Infinity", "-Infinity":
			return appendString(out, text), nil
		}
		return append(out, text...), nil
	case kBool:
		if len(text) == 1 && text[0] == 't' {
			return append(out, "true"...), nil
		}
		return append(out, "false"...), nil
	case kBytea:
		if !bytes.HasPrefix(text, []byte(`\x`)) {
			return out, fmt.Errorf("bytea not in hex output format: set bytea_output = hex")
		}
		raw := make([]byte, hex.DecodedLen(len(text)-2))
		if _, err := hex.Decode(raw, text[2:]); err != nil {
			return out, fmt.Errorf("bytea: %w", err)
		}
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, raw)
		return append(out, '"'), nil
	case kJSON:
		if !json.Valid(text) {
			return out, errors.New("json value is not valid JSON")
		}
		return append(out, text...), nil
	case kTimestamp:
		if t := bytes.IndexByte(text, ' '); t == 10 {
			s := append([]byte(nil), text...)
			s[10] = 'T'
			return appendString(out, s), nil
		}
		return appendString(out, text), nil // infinity, BC dates
	case kTimestamptz:
		s := string(text)
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return appendString(out, []byte(t.UTC().Format(time.RFC3339Nano))), nil
			}
		}
		return appendString(out, text), nil // infinity, BC dates
	default: // kString, kNumeric
		return appendString(out, text), nil
	}
}

// appendArray converts a PostgreSQL array literal ({a,"b c",NULL,{1,2}})
// to a JSON array, each element by its type.
func appendArray(out []byte, elem uint32, text []byte) ([]byte, error) {
	k := scalarKinds[elem]
	// Arrays with explicit bounds ([0:1]={…}) start after '='.
	if len(text) > 0 && text[0] == '[' {
		if i := bytes.IndexByte(text, '='); i > 0 {
			text = text[i+1:]
		}
	}
	var err error
	i := 0
	var walk func() error
	walk = func() error {
		if i >= len(text) || text[i] != '{' {
			return fmt.Errorf("array literal %q: expected '{'", text)
		}
		i++
		out = append(out, '[')
		first := true
		for i < len(text) {
			if text[i] == '}' {
				i++
				out = append(out, ']')
				return nil
			}
			if !first {
				if text[i] != ',' {
					return fmt.Errorf("array literal %q: expected ','", text)
				}
				i++
				out = append(out, ',')
			}
			first = false
			switch {
			case text[i] == '{':
				if err := walk(); err != nil {
					return err
				}
			case text[i] == '"':
				var v []byte
				for i++; i < len(text) && text[i] != '"'; i++ {
					if text[i] == '\\' {
						i++
					}
					if i < len(text) {
						v = append(v, text[i])
					}
				}
				i++
				if out, err = appendScalar(out, k, v); err != nil {
					return err
				}
			default:
				j := i
				for j < len(text) && text[j] != ',' && text[j] != '}' {
					j++
				}
				v := text[i:j]
				i = j
				if string(v) == "NULL" {
					out = append(out, "null"...)
				} else if out, err = appendScalar(out, k, v); err != nil {
					return err
				}
			}
		}
		return fmt.Errorf("array literal %q: unterminated", text)
	}
	if err := walk(); err != nil {
		return out, err
	}
	return out, nil
}

// appendString appends s as a JSON string. s must be valid UTF-8 (rows are
// checked before they are mapped).
func appendString(out, s []byte) []byte {
	out = append(out, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c < 0x20:
			switch c {
			case '\n':
				out = append(out, '\\', 'n')
			case '\r':
				out = append(out, '\\', 'r')
			case '\t':
				out = append(out, '\\', 't')
			default:
				out = append(out, fmt.Sprintf(`\u%04x`, c)...)
			}
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// KeySeparator joins the values of a composite primary key into a record
// id; KeyEscape escapes itself and the separator inside a value, so the id
// of (a, "b,c") is "a,b%2Cc" and ids map back to keys one to one.
const (
	KeySeparator = ","
	KeyEscape    = "%"
)

var keyEscaper = strings.NewReplacer("%", "%25", ",", "%2C")

// recordID builds a record id from the primary key's text values, in key
// order.
func recordID(vals [][]byte) string {
	if len(vals) == 1 {
		return keyEscaper.Replace(string(vals[0]))
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = keyEscaper.Replace(string(v))
	}
	return strings.Join(parts, KeySeparator)
}

// checkText refuses a value that is not valid UTF-8: a database in
// SQL_ASCII or LATIN1 can hold one, and a record cannot.
func checkText(v []byte) error {
	if !utf8.Valid(v) {
		return errors.New("value is not valid UTF-8 (records must be; is the database's encoding UTF8?)")
	}
	return nil
}
