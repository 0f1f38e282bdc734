package demogen

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Derivation domains: every record kind draws from its own stream so that
// adding a field to one registry never shifts another's values.
const (
	domPerson uint64 = 1 + iota
	domDocument
	domParcel
	domBusiness
	domAct
	domDeed
	domNationalID
	domDocumentNo
	domParcelNo
	domRegistrationNo
)

// mix64 is a 64-bit finaliser (xor-shift-multiply), used to turn
// (seed, domain, index) into well-spread PCG seeds and id offsets.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// streamSeed returns the PCG seed pair of record index in a domain.
func streamSeed(seed, domain uint64, index uint64) (uint64, uint64) {
	a := mix64(seed ^ mix64(domain<<56^index))
	b := mix64(a ^ 0x6a09e667f3bcc908 ^ index)
	return a, b
}

// idSpace is the number space of every numeric identifier: nine digits.
const idSpace = 1_000_000_000

// permuteID maps x in [0, idSpace) to a unique, seed-dependent number in the
// same range: an affine bijection (multiplier coprime to 10^9).
func permuteID(seed, domain, x uint64) uint64 {
	const mult = 738_219_263 // odd and not a multiple of 5
	off := mix64(seed^domain*0x9e3779b97f4a7c15) % idSpace
	return (x%idSpace*mult + off) % idSpace
}

// luhn returns the Luhn check digit of the decimal digits in d.
func luhn(d []byte) byte {
	sum := 0
	double := true // the digit next to the check digit is doubled
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// appendPadded appends n in decimal, left-padded with zeros to width.
func appendPadded(b []byte, n uint64, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for n > 0 || len(tmp)-i < width {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}

// NationalID returns the national identification number of the person with
// the given index: "DR-" followed by nine digits (a seed-dependent
// permutation of the index, so numbers are unique but not sequential) and a
// Luhn check digit.
func NationalID(seed uint64, index int) string {
	return string(appendNationalID(nil, seed, index))
}

func appendNationalID(b []byte, seed uint64, index int) []byte {
	b = append(b, "DR-"...)
	start := len(b)
	b = appendPadded(b, permuteID(seed, domNationalID, uint64(index)), 9)
	return append(b, luhn(b[start:]))
}

// ValidNationalID reports whether s has the form of a national id
// ("DR-" and ten digits) with a correct check digit.
func ValidNationalID(s string) bool {
	if len(s) != 13 || s[:3] != "DR-" {
		return false
	}
	for i := 3; i < 13; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return luhn([]byte(s[3:12])) == s[12]
}

// CitizenKey returns the Ed25519 key of the citizen with the given person
// index (0-based, in emit order). Its seed is SHA-256 of the generator seed
// and the index, each as 8 big-endian bytes; its public half is the
// population record's eid_public_key.
func CitizenKey(seed uint64, nationalIndex int) ed25519.PrivateKey {
	var in [16]byte
	binary.BigEndian.PutUint64(in[:8], seed)
	binary.BigEndian.PutUint64(in[8:], uint64(nationalIndex))
	s := sha256.Sum256(in[:])
	return ed25519.NewKeyFromSeed(s[:])
}

// citizenPublicKey appends the base64 public key of CitizenKey(seed, index).
func appendCitizenPublicKey(b []byte, seed uint64, index int) []byte {
	priv := CitizenKey(seed, index)
	return base64.StdEncoding.AppendEncode(b, priv[32:])
}

// Dates are days since 1970-01-01 (UTC).

// dayOf returns the day number of a calendar date.
func dayOf(y int, m time.Month, d int) int {
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// appendDate appends day as YYYY-MM-DD.
func appendDate(b []byte, day int) []byte {
	y, m, d := time.Unix(int64(day)*86400, 0).UTC().Date()
	b = appendPadded(b, uint64(y), 4)
	b = append(b, '-')
	b = appendPadded(b, uint64(m), 2)
	b = append(b, '-')
	return appendPadded(b, uint64(d), 2)
}

func yearOf(day int) int {
	return time.Unix(int64(day)*86400, 0).UTC().Year()
}

// JSON writing. Records are appended straight into byte slices: the
// generator must reach hundreds of thousands of records a second, which
// encoding/json's reflection on maps does not. The output is compact and
// escaped exactly as encoding/json escapes (HTML-safe), so json.Marshal of a
// Line gives the same bytes WriteJSONL writes.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendKey appends a separating comma when needed and "key":.
func appendKey(b []byte, key string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' && b[n-1] != '[' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func kvString(b []byte, key, val string) []byte {
	return appendString(appendKey(b, key), val)
}

func kvBytes(b []byte, key string, val []byte) []byte {
	// val is always plain ASCII without characters needing escapes (ids).
	b = append(appendKey(b, key), '"')
	b = append(b, val...)
	return append(b, '"')
}

func kvInt(b []byte, key string, val int) []byte {
	return strconv.AppendInt(appendKey(b, key), int64(val), 10)
}

func kvDate(b []byte, key string, day int) []byte {
	b = append(appendKey(b, key), '"')
	b = appendDate(b, day)
	return append(b, '"')
}

// asciiFold lower-cases s and folds the accented letters of the name lists
// to ASCII, dropping anything else that is not a letter or digit; it makes
// e-mail handles.
func asciiFold(b []byte, s string) []byte {
	for _, r := range s {
		r = unicode.ToLower(r)
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b = append(b, byte(r))
		case r == '-':
			b = append(b, '-')
		default:
			if f := foldRune(r); f != 0 {
				b = append(b, f)
			}
		}
	}
	return b
}

func foldRune(r rune) byte {
	switch r {
	case 'á', 'à', 'â', 'ä', 'å', 'ã':
		return 'a'
	case 'č', 'ç':
		return 'c'
	case 'ď':
		return 'd'
	case 'é', 'è', 'ê', 'ě', 'ë':
		return 'e'
	case 'ğ':
		return 'g'
	case 'í', 'ı', 'î':
		return 'i'
	case 'ł':
		return 'l'
	case 'ń', 'ñ', 'ň':
		return 'n'
	case 'ó', 'ö', 'ø', 'ô':
		return 'o'
	case 'ř':
		return 'r'
	case 'š', 'ś', 'ş':
		return 's'
	case 'ť':
		return 't'
	case 'ú', 'ü', 'ů':
		return 'u'
	case 'ý':
		return 'y'
	case 'ž', 'ź', 'ż':
		return 'z'
	}
	return 0
}
