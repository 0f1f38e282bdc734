package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chancery-gov/chancery/internal/pgtest"
)

// binCols has a column of every type copybin.go encodes.
var binCols = []Column{
	{"id", "bigint", pgtype.Int8OID}, {"i2", "smallint", pgtype.Int2OID}, {"i4", "integer", pgtype.Int4OID},
	{"o", "oid", pgtype.OIDOID}, {"f4", "real", pgtype.Float4OID}, {"f8", "double precision", pgtype.Float8OID},
	{"n", "numeric", pgtype.NumericOID}, {"n2", "numeric(12,2)", pgtype.NumericOID}, {"b", "boolean", pgtype.BoolOID},
	{"by", "bytea", pgtype.ByteaOID}, {"j", "json", pgtype.JSONOID}, {"jb", "jsonb", pgtype.JSONBOID},
	{"u", "uuid", pgtype.UUIDOID}, {"d", "date", pgtype.DateOID}, {"ts", "timestamp without time zone", pgtype.TimestampOID},
	{"tz", "timestamp with time zone", pgtype.TimestamptzOID}, {"tx", "text", pgtype.TextOID},
	{"vc", "character varying(40)", pgtype.VarcharOID}, {"bp", "character(5)", pgtype.BPCharOID}, {"nm", "name", pgtype.NameOID},
}

// TestBinaryCOPYMatchesText is a property test with PostgreSQL as the
// oracle: random records of every binary-encoded type, in the forms the
// connector writes and the API may, are copied once in COPY's text format
// (PostgreSQL parses every value) and once in its binary format (the
// encoders here), and the two tables must read back the same, value for
// value. Records in forms with no exact binary encoding (an exponent, a
// time without zone, infinity…) must end the binary attempt, and the
// table restored through the fallback must equal the text one too.
func TestBinaryCOPYMatchesText(t *testing.T) {
	pg := pgtest.Start(t)
	cs := pg.CreateDB("bin")
	ctx := context.Background()
	conn, err := connect(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ts := TableState{Columns: binCols, Key: []string{"id"}}
	if !binaryColumns(binCols) {
		t.Fatal("a column of binCols has no binary encoder")
	}
	r := rand.New(rand.NewPCG(7, 11))
	dump := func(table string) string {
		return pg.Psql("bin", `SELECT count(*) || ':' || coalesce(string_agg(t::text, '|' ORDER BY id), '') FROM `+table+` t`)
	}

	// same copies recs in both formats, each into a table of its own, and
	// compares them.
	same := func(name string, recs map[string]liveRec) {
		t.Helper()
		if _, err := copyTable(ctx, conn, "public."+name+"_text", ts, mapRows(binCols, recs), false, nil); err != nil {
			t.Fatalf("%s: text copy: %v", name, err)
		}
		n, err := copyTable(ctx, conn, "public."+name+"_bin", ts, mapRows(binCols, recs), true, nil)
		if err != nil {
			t.Fatalf("%s: binary copy: %v", name, err)
		}
		if n != int64(len(recs)) {
			t.Fatalf("%s: binary copy counted %d rows of %d", name, n, len(recs))
		}
		if a, b := dump(name+"_text"), dump(name+"_bin"); a != b {
			t.Fatalf("%s: binary and text copies differ:\ntext   %.2000s\nbinary %.2000s", name, firstDiff(a, b), firstDiff(b, a))
		}
	}
	plain := map[string]liveRec{}
	for i := range 3000 {
		plain[strconv.Itoa(i)] = liveRec{data: binRecord(r, i, false)}
	}
	same("plain", plain)

	// Each awkward record alone either ends a binary attempt, or is taken
	// by the binary encoders and must then read back as its text copy
	// does; the first kind go in through restoreTable's fallback.
	awkward, taken := map[string]liveRec{}, map[string]liveRec{}
	for i := range 400 {
		id := strconv.Itoa(i)
		rec := map[string]liveRec{id: {data: binRecord(r, i, true)}}
		_, err := copyTable(ctx, conn, fmt.Sprintf("public.awk_%d", i), ts, mapRows(binCols, rec), true, nil)
		switch {
		case errors.Is(err, errNotBinary):
			awkward[id] = rec[id]
		case err == nil:
			taken[id] = rec[id]
		default:
			t.Fatalf("record %d: %v\n%s", i, err, rec[id].data)
		}
	}
	if len(awkward) < 200 {
		t.Fatalf("only %d of 400 awkward records ended the binary attempt", len(awkward))
	}
	same("taken", taken)
	if _, err := restoreTable(ctx, conn, "public.awk_text", ts, mapRows(binCols, awkward), true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreTable(ctx, conn, "public.awk_fallback", ts, mapRows(binCols, awkward), false, nil); err != nil {
		t.Fatal(err)
	}
	if a, b := dump("awk_text"), dump("awk_fallback"); a != b || strings.HasPrefix(a, "0:") {
		t.Fatalf("fallback differs from text:\n%.2000s\n%.2000s", firstDiff(a, b), firstDiff(b, a))
	}
}

// firstDiff is a from where it first differs from b.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return a[max(0, i-200):]
}

// binRecord makes a random record for binCols: with awkward false, only
// forms the binary encoders take; with it true, one column (at least) in
// a form PostgreSQL's text input takes and they may not.
func binRecord(r *rand.Rand, id int, awkward bool) json.RawMessage {
	m := map[string]any{"id": id}
	num := func(s string) json.RawMessage { return json.RawMessage(s) }
	digits := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return b.String()
	}
	decimal := func(maxInt, maxFrac int) string {
		s := digits(r.IntN(maxInt + 1))
		if s == "" {
			s = "0"
		}
		if f := r.IntN(maxFrac + 1); f > 0 {
			s += "." + digits(f)
		}
		if r.IntN(3) == 0 {
			s = "-" + s
		}
		return s
	}
	dateIn := func(from, years int) string {
		y, mo := from+r.IntN(years), 1+r.IntN(12)
		return fmt.Sprintf("%04d-%02d-%02d", y, mo, 1+r.IntN(daysIn(y, mo)))
	}
	date := func() string { return dateIn(1, 9999) }
	clock := func() string {
		s := fmt.Sprintf("T%02d:%02d:%02d", r.IntN(24), r.IntN(60), r.IntN(60))
		if f := r.IntN(7); f > 0 {
			s += "." + digits(f)
		}
		return s
	}
	text := func(max int) string {
		const pool = "ab Z09\t\n\\\"'é€😀/"
		rs := []rune(pool)
		var b strings.Builder
		for range r.IntN(max + 1) {
			b.WriteRune(rs[r.IntN(len(rs))])
		}
		return b.String()
	}
	m["i2"] = num(strconv.Itoa(r.IntN(65536) - 32768))
	m["i4"] = num(strconv.FormatInt(int64(r.Uint32())-math.MaxInt32-1, 10))
	m["o"] = num(strconv.FormatUint(uint64(r.Uint32()), 10))
	switch f := math.Float32frombits(r.Uint32()); {
	case r.IntN(20) == 0:
		m["f4"] = []string{"NaN", "Infinity", "-Infinity"}[r.IntN(3)]
	case math.IsNaN(float64(f)) || math.IsInf(float64(f), 0):
		m["f4"] = num("0")
	default:
		m["f4"] = num(strconv.FormatFloat(float64(f), 'f', -1, 32))
	}
	switch f := math.Float64frombits(r.Uint64()); {
	case r.IntN(20) == 0:
		m["f8"] = []string{"NaN", "Infinity", "-Infinity"}[r.IntN(3)]
	case math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e30 || (f != 0 && math.Abs(f) < 1e-30):
		m["f8"] = num(strconv.FormatFloat(r.NormFloat64()*1e6, 'f', -1, 64))
	default:
		m["f8"] = num(strconv.FormatFloat(f, 'f', -1, 64))
	}
	switch r.IntN(10) {
	case 0:
		m["n"] = []string{"NaN", "Infinity", "-Infinity", "0", "-0.000"}[r.IntN(5)]
	default:
		m["n"] = decimal(40, 25)
	}
	m["n2"] = decimal(10, 5)
	m["b"] = r.IntN(2) == 0
	raw := make([]byte, r.IntN(40))
	for i := range raw {
		raw[i] = byte(r.IntN(256))
	}
	m["by"] = base64.StdEncoding.EncodeToString(raw)
	m["j"] = num(`{"k": [1, "x\ty"], "n": ` + strconv.Itoa(r.IntN(1000)) + `}`)
	m["jb"] = map[string]any{"z": r.IntN(100), "a": []any{true, nil, "é"}}
	u := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<16), r.IntN(1<<16), r.Uint64()&(1<<48-1))
	if r.IntN(4) == 0 {
		u = strings.ToUpper(u)
	}
	m["u"] = u
	m["d"] = date()
	m["ts"] = date() + clock()
	zone := "Z"
	if r.IntN(2) == 0 {
		zone = fmt.Sprintf("%c%02d:%02d", "+-"[r.IntN(2)], r.IntN(15), []int{0, 30, 45}[r.IntN(3)])
	}
	m["tz"] = dateIn(1900, 300) + clock() + zone
	m["tx"] = text(30)
	m["vc"] = text(40)
	m["bp"] = text(5)
	m["nm"] = strings.Map(func(c rune) rune {
		if c > 127 {
			return 'x'
		}
		return c
	}, text(60))
	for _, c := range binCols[1:] {
		if r.IntN(15) == 0 {
			if r.IntN(2) == 0 {
				m[c.Name] = nil
			} else {
				delete(m, c.Name)
			}
		}
	}
	if awkward {
		switch r.IntN(13) {
		case 0:
			m["f8"] = num("1.5e3")
		case 1:
			m["n"] = "1.25e-2"
		case 2:
			m["i4"] = " 42"
		case 3:
			m["d"] = []string{"infinity", "-infinity", "0044-03-15 BC", "10000-01-01"}[r.IntN(4)]
		case 4:
			m["ts"] = "2024-02-29 10:11:12" // a space, not T
		case 5:
			m["tz"] = "2024-02-29T10:11:12.1234567Z" // a seventh digit
		case 6:
			m["tz"] = "2024-02-29T23:59:60Z" // a leap second
		case 7:
			m["u"] = "{" + u + "}"
		case 8:
			m["n2"] = "+12.345"
		case 9:
			m["ts"] = date() + clock() + "+02:00" // timestamp ignores a zone
		case 10:
			m["tz"] = "infinity"
		case 11:
			m["f4"] = num("-0.0e0")
		case 12:
			m["nm"] = strings.Repeat("n", 64+r.IntN(10)) // text input cuts it to 63
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestAppendNumericForms checks the binary numeric of a few values whose
// groups of four digits are known.
func TestAppendNumericForms(t *testing.T) {
	for _, c := range []struct {
		in                  string
		ndigits, weight, ds int
		sign                uint16
		digits              []uint16
	}{
		{"1.50", 2, 0, 2, 0, []uint16{1, 5000}},
		{"0.001", 1, -1, 3, 0, []uint16{10}},
		{"12345", 2, 1, 0, 0, []uint16{1, 2345}},
		{"-0.00", 0, 0, 2, 0, nil},
		{"-10000.5", 3, 1, 1, 0x4000, []uint16{1, 0, 5000}}, // the zero group between is kept
		{"NaN", 0, 0, 0, 0xC000, nil},
	} {
		b, ok := appendNumeric(nil, c.in)
		if !ok {
			t.Fatalf("%s refused", c.in)
		}
		u := func(i int) uint16 { return uint16(b[2*i])<<8 | uint16(b[2*i+1]) }
		if int(u(0)) != c.ndigits || int(int16(u(1))) != c.weight || u(2) != c.sign || int(u(3)) != c.ds {
			t.Fatalf("%s: header %d %d %#x %d", c.in, u(0), int16(u(1)), u(2), u(3))
		}
		for i, d := range c.digits {
			if u(4+i) != d {
				t.Fatalf("%s: digit %d is %d, want %d", c.in, i, u(4+i), d)
			}
		}
	}
	for _, bad := range []string{"1e5", "+1", ".5", "5.", "", "-", "1.2.3", " 1"} {
		if _, ok := appendNumeric(nil, bad); ok {
			t.Fatalf("%q taken", bad)
		}
	}
}

// TestBinaryLeavesToText: values whose text input PostgreSQL refuses, or
// changes, are not given a binary form of their own; the table goes as
// text and PostgreSQL decides.
func TestBinaryLeavesToText(t *testing.T) {
	for _, c := range []struct {
		oid uint32
		v   string
	}{
		{pgtype.Float4OID, "0." + strings.Repeat("0", 50) + "1"},   // underflows: text input refuses
		{pgtype.Float8OID, "-0." + strings.Repeat("0", 400) + "7"}, // the same
		{pgtype.Float8OID, "1e400"},                                // overflows
		{pgtype.NameOID, `"` + strings.Repeat("n", 64) + `"`},      // text input cuts it to 63
		{pgtype.Int2OID, "40000"},
		{pgtype.NumericOID, `"1.5e3"`},
		{pgtype.TimestamptzOID, `"2024-01-01T00:00:00"`}, // no zone: the session's would apply
		{pgtype.TimestampOID, `"2024-01-01T00:00:00Z"`},  // a zone, which timestamp ignores
		{pgtype.DateOID, `"2023-02-29"`},
		{pgtype.UUIDOID, `"00000000-0000-0000-0000--00000000000"`},
	} {
		if b, ok := appendBinaryValue(nil, c.oid, []byte(c.v)); ok {
			t.Errorf("oid %d %.40s: binary form %x, want the text path", c.oid, c.v, b)
		}
	}
}
