package postgres

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// COPY's binary format (PostgreSQL, "COPY", section "Binary Format"). The
// restore writes it when every column of a table has a binary form here:
// PostgreSQL then takes integers, dates, timestamps and numerics as they
// are stored instead of parsing their text, which is most of what its
// COPY costs (a million rows of the benchmark's table: 0.55–0.62 s binary,
// 0.92–0.94 s text, docs/benchmarks.md). A value the binary encoder does
// not take exactly as PostgreSQL's text input would (an exponent, a time
// without a zone, a seventh fractional digit, a BC date…) ends the binary
// attempt with errNotBinary, and the table is copied again as text, so
// PostgreSQL's own input rules decide every value as before.

// copyBinaryHeader is the signature, the flags (no OIDs) and an empty
// header extension.
var copyBinaryHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyBinaryTrailer is the field count -1 that ends the data.
var copyBinaryTrailer = []byte{0xff, 0xff}

// errNotBinary: a value has no exact binary form here; copy the table as
// text.
var errNotBinary = errors.New("value needs PostgreSQL's text input")

// binaryOIDs are the column types with a binary encoder below.
var binaryOIDs = map[uint32]bool{
	pgtype.TextOID: true, pgtype.VarcharOID: true, pgtype.BPCharOID: true, pgtype.NameOID: true,
	pgtype.Int2OID: true, pgtype.Int4OID: true, pgtype.Int8OID: true, pgtype.OIDOID: true,
	pgtype.Float4OID: true, pgtype.Float8OID: true, pgtype.NumericOID: true, pgtype.BoolOID: true,
	pgtype.ByteaOID: true, pgtype.JSONOID: true, pgtype.JSONBOID: true, pgtype.UUIDOID: true,
	pgtype.DateOID: true, pgtype.TimestampOID: true, pgtype.TimestamptzOID: true,
}

// binaryColumns reports whether every column has a binary encoder.
func binaryColumns(cols []Column) bool {
	for _, c := range cols {
		if !binaryOIDs[c.OID] {
			return false
		}
	}
	return true
}

// appendBinaryRow appends the values in e.vals as a tuple of COPY's binary
// format: the field count, then each field's length (-1 for NULL) and
// bytes.
func (e *rowEncoder) appendBinaryRow(out []byte) ([]byte, error) {
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.vals)))
	for i, v := range e.vals {
		if v == nil || string(v) == "null" {
			out = binary.BigEndian.AppendUint32(out, math.MaxUint32) // -1
			continue
		}
		at := len(out)
		out = append(out, 0, 0, 0, 0) // the length, filled in below
		var ok bool
		out, ok = appendBinaryValue(out, e.cols[i].OID, v)
		if !ok {
			return out, errNotBinary
		}
		binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	}
	return out, nil
}

// appendBinaryValue appends the binary form of a JSON value for a column
// of type oid, or reports false where it has none that is exactly what
// PostgreSQL's text input would make of the value.
func appendBinaryValue(out []byte, oid uint32, v []byte) ([]byte, bool) {
	switch oid {
	case pgtype.BoolOID:
		// As the text path: "true" is true, anything else false.
		if string(v) == "true" {
			return append(out, 1), true
		}
		return append(out, 0), true
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		s, ok := numberText(v)
		if !ok {
			return out, false
		}
		switch oid {
		case pgtype.Int2OID:
			n, err := strconv.ParseInt(s, 10, 16)
			return binary.BigEndian.AppendUint16(out, uint16(n)), err == nil
		case pgtype.Int4OID:
			n, err := strconv.ParseInt(s, 10, 32)
			return binary.BigEndian.AppendUint32(out, uint32(n)), err == nil
		case pgtype.OIDOID:
			n, err := strconv.ParseUint(s, 10, 32)
			return binary.BigEndian.AppendUint32(out, uint32(n)), err == nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return binary.BigEndian.AppendUint64(out, uint64(n)), err == nil
	case pgtype.Float4OID, pgtype.Float8OID:
		s, ok := numberText(v)
		if !ok {
			return out, false
		}
		var f float64
		switch s {
		case "NaN":
			f = math.NaN()
		case "Infinity":
			f = math.Inf(1)
		case "-Infinity":
			f = math.Inf(-1)
		default:
			// Go's ParseFloat rounds correctly, as strtod and strtof do.
			var err error
			bits := 64
			if oid == pgtype.Float4OID {
				bits = 32
			}
			if f, err = strconv.ParseFloat(s, bits); err != nil || !plainNumber(s) {
				return out, false
			}
			if f == 0 && strings.ContainsAny(s, "123456789") {
				// Underflow to zero, which Go allows and PostgreSQL's
				// input refuses as out of range.
				return out, false
			}
		}
		if oid == pgtype.Float4OID {
			return binary.BigEndian.AppendUint32(out, math.Float32bits(float32(f))), true
		}
		return binary.BigEndian.AppendUint64(out, math.Float64bits(f)), true
	case pgtype.NumericOID:
		s, ok := numberText(v)
		if !ok {
			return out, false
		}
		return appendNumeric(out, s)
	case pgtype.JSONOID:
		return append(out, v...), true
	case pgtype.JSONBOID:
		return append(append(out, 1), v...), true // jsonb's binary version 1, then the text
	}
	// The rest are JSON strings.
	s, ok := stringValue(v)
	if !ok {
		return out, false
	}
	switch oid {
	case pgtype.ByteaOID:
		raw, err := base64.StdEncoding.AppendDecode(out, s)
		return raw, err == nil
	case pgtype.UUIDOID:
		return appendUUID(out, s)
	case pgtype.DateOID:
		d, ok := parseDate(s)
		return binary.BigEndian.AppendUint32(out, uint32(d)), ok
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		us, ok := parseTimestamp(s, oid == pgtype.TimestamptzOID)
		return binary.BigEndian.AppendUint64(out, uint64(us)), ok
	}
	// text, varchar, bpchar, name: the bytes; PostgreSQL checks the
	// encoding and the length limit on receipt as it does for text. A name
	// of 64 bytes or more its text input cuts short, and its binary input
	// refuses.
	if oid == pgtype.NameOID && len(s) >= 64 {
		return out, false
	}
	return append(out, s...), true
}

// numberText is a JSON number's text, or a JSON string's without escapes
// (numeric and the floats' special values come as strings).
func numberText(v []byte) (string, bool) {
	if len(v) >= 2 && v[0] == '"' {
		if bytes.IndexByte(v, '\\') >= 0 {
			return "", false
		}
		return string(v[1 : len(v)-1]), true
	}
	return string(v), true
}

// stringValue is a JSON string's contents.
func stringValue(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// plainNumber: an optional minus, digits, and optional fraction digits;
// no exponent, no leading '+' or '.', nothing around.
func plainNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	intPart, frac, point := strings.Cut(s, ".")
	return allDigits(intPart) && (!point || allDigits(frac))
}

// allDigits: one ASCII digit or more, and nothing else.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// appendNumeric appends numeric's binary form of a plain decimal (or
// NaN, Infinity, -Infinity): digit count, weight, sign, display scale,
// then base-10,000 digits, the first one weight groups of four digits
// left of the point. PostgreSQL rounds to the column's scale on receipt,
// as numeric_in does.
func appendNumeric(out []byte, s string) ([]byte, bool) {
	const (
		pos, neg   = 0x0000, 0x4000
		nan        = 0xC000
		pinf, ninf = 0xD000, 0xF000
		maxDscale  = 0x3FFF // numeric's limits: 16,383 digits after the point,
		maxWeight  = 0x7FFF // and 131,072 before it
	)
	special := func(sign uint16) ([]byte, bool) {
		out = binary.BigEndian.AppendUint16(out, 0)
		out = binary.BigEndian.AppendUint16(out, 0)
		out = binary.BigEndian.AppendUint16(out, sign)
		return binary.BigEndian.AppendUint16(out, 0), true
	}
	switch s {
	case "NaN":
		return special(nan)
	case "Infinity":
		return special(pinf)
	case "-Infinity":
		return special(ninf)
	}
	if !plainNumber(s) {
		return out, false
	}
	sign := uint16(pos)
	if s[0] == '-' {
		sign, s = neg, s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(frac) > maxDscale || len(intPart) > 4*(maxWeight+1) {
		return out, false
	}
	// Groups of four digits aligned on the point: the integer part padded
	// on the left, the fraction on the right.
	var buf [16]int16
	groups := buf[:0]
	lead := (4 - len(intPart)%4) % 4
	weight := (lead+len(intPart))/4 - 1
	acc, n := 0, lead
	for _, part := range [2]string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			acc = acc*10 + int(part[i]-'0')
			if n++; n == 4 {
				groups, acc, n = append(groups, int16(acc)), 0, 0
			}
		}
	}
	if n > 0 {
		for ; n < 4; n++ {
			acc *= 10
		}
		groups = append(groups, int16(acc))
	}
	digits := groups
	for len(digits) > 0 && digits[0] == 0 {
		digits, weight = digits[1:], weight-1
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		weight, sign = 0, pos // zero is positive, as numeric_in makes it
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(digits)))
	out = binary.BigEndian.AppendUint16(out, uint16(int16(weight)))
	out = binary.BigEndian.AppendUint16(out, sign)
	out = binary.BigEndian.AppendUint16(out, uint16(len(frac)))
	for _, d := range digits {
		out = binary.BigEndian.AppendUint16(out, uint16(d))
	}
	return out, true
}

// appendUUID takes the canonical form only (8-4-4-12 hex digits).
func appendUUID(out, s []byte) ([]byte, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return out, false
	}
	var hexDigits [32]byte
	j := 0
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		hexDigits[j] = c
		j++
	}
	var b [16]byte
	for i := range b {
		hi, ok1 := unhex(hexDigits[2*i])
		lo, ok2 := unhex(hexDigits[2*i+1])
		if !ok1 || !ok2 {
			return out, false
		}
		b[i] = hi<<4 | lo
	}
	return append(out, b[:]...), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// pgEpochDays is 2000-01-01, PostgreSQL's epoch, in days since
// 1970-01-01.
const pgEpochDays = 10957

// parseDate takes YYYY-MM-DD, year 1 to 9999 AD, a real calendar date;
// the value is days since 2000-01-01.
func parseDate(s []byte) (int32, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(s[0:4])
	m, ok2 := digits(s[5:7])
	d, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return int32(daysFromCivil(y, m, d) - pgEpochDays), true
}

// parseTimestamp takes YYYY-MM-DDTHH:MM:SS with up to six fractional
// digits; with zone, a Z or ±HH:MM offset is required (and converted to
// UTC), without, none is allowed. The value is microseconds since
// 2000-01-01 00:00.
func parseTimestamp(s []byte, zone bool) (int64, bool) {
	if len(s) < 19 || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	day, ok := parseDate(s[:10])
	if !ok {
		return 0, false
	}
	h, ok1 := digits(s[11:13])
	mi, ok2 := digits(s[14:16])
	sec, ok3 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || h > 23 || mi > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	var us int64
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		n := i - 1
		if n == 0 || n > 6 {
			return 0, false // a seventh digit would be rounded: leave it to PostgreSQL
		}
		f, _ := digits(rest[1:i])
		for ; n < 6; n++ {
			f *= 10
		}
		us, rest = int64(f), rest[i:]
	}
	t := (int64(day)*86400+int64(h)*3600+int64(mi)*60+int64(sec))*1_000_000 + us
	if !zone {
		return t, len(rest) == 0
	}
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
		return t, true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 15 || om > 59 {
			return 0, false
		}
		off := int64(oh*3600+om*60) * 1_000_000
		if rest[0] == '+' {
			return t - off, true
		}
		return t + off, true
	}
	return 0, false
}

func digits(s []byte) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
