package postgres

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// FuzzBinaryForms: whatever a record holds, the binary encoders either
// refuse it (the table then goes as text) or give exactly the value an
// independent reading gives: a numeric's digits read back, a date or
// timestamp as Go's time package parses it, a uuid's hex.
func FuzzBinaryForms(f *testing.F) {
	for _, s := range []string{"1.50", "-0.001", "12345678901234567890.0001", "0", "-0.00", "NaN",
		"2024-02-29", "0001-01-01", "2024-02-29T10:11:12.123456Z", "1999-12-31T23:59:59+05:30",
		"2000-01-01T00:00:00", "123e4567-e89b-12d3-a456-426614174000", "1e5", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if b, ok := appendNumeric(nil, s); ok && s != "NaN" && s != "Infinity" && s != "-Infinity" {
			if got, want := numericText(b), canonicalDecimal(s); got != want {
				t.Fatalf("numeric %q reads back as %q, want %q", s, got, want)
			}
		}
		if d, ok := parseDate([]byte(s)); ok {
			tm, err := time.Parse("2006-01-02", s)
			if err != nil {
				t.Fatalf("date %q taken, but time.Parse: %v", s, err)
			}
			if want := tm.Unix()/86400 - pgEpochDays; int64(d) != want {
				t.Fatalf("date %q: %d days, want %d", s, d, want)
			}
		}
		for _, zone := range []bool{true, false} {
			us, ok := parseTimestamp([]byte(s), zone)
			if !ok {
				continue
			}
			in := s
			if !zone {
				in += "Z"
			}
			tm, err := time.Parse(time.RFC3339Nano, in)
			if err != nil {
				t.Fatalf("timestamp %q (zone %v) taken, but time.Parse: %v", s, zone, err)
			}
			if want := tm.UnixMicro() - pgEpochDays*86400*1_000_000; us != want {
				t.Fatalf("timestamp %q (zone %v): %d µs, want %d", s, zone, us, want)
			}
		}
		if b, ok := appendUUID(nil, []byte(s)); ok {
			want, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
			if err != nil || string(b) != string(want) {
				t.Fatalf("uuid %q: %x, want %x (%v)", s, b, want, err)
			}
		}
	})
}

// numericText reads numeric's binary form back as a decimal.
func numericText(b []byte) string {
	u := func(i int) uint16 { return binary.BigEndian.Uint16(b[2*i:]) }
	n, weight, sign, dscale := int(u(0)), int(int16(u(1))), u(2), int(u(3))
	digit := func(g int) uint16 { // group g counts from the point, as weight does
		if i := weight - g; i >= 0 && i < n {
			return u(4 + i)
		}
		return 0
	}
	var sb strings.Builder
	for g := max(weight, 0); g >= 0; g-- {
		sb.WriteString(pad4(digit(g)))
	}
	out := strings.TrimLeft(sb.String(), "0")
	if out == "" {
		out = "0"
	}
	if sign == 0x4000 {
		out = "-" + out
	}
	if dscale > 0 {
		var fr strings.Builder
		for g := -1; fr.Len() < dscale; g-- {
			fr.WriteString(pad4(digit(g)))
		}
		out += "." + fr.String()[:dscale]
	}
	return out
}

func pad4(d uint16) string {
	s := "000" + string(rune('0'+d/1000)) + string(rune('0'+d/100%10)) + string(rune('0'+d/10%10)) + string(rune('0'+d%10))
	return s[len(s)-4:]
}

// canonicalDecimal is a plain decimal as numeric_out prints it: no
// leading zeros, the fraction's digits kept, zero without a sign.
func canonicalDecimal(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	i, fr, _ := strings.Cut(s, ".")
	i = strings.TrimLeft(i, "0")
	if i == "" {
		i = "0"
	}
	if strings.Trim(i+fr, "0") == "" {
		neg = false
	}
	out := i
	if fr != "" {
		out += "." + fr
	}
	if neg {
		out = "-" + out
	}
	return out
}
