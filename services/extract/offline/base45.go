package offline

import (
	"errors"
	"fmt"
	"strings"
)

// Base45 is RFC 9285: two bytes become three characters of the QR code's
// alphanumeric alphabet, so a QR code in alphanumeric mode carries them at
// 5.5 bits a character. Written here (forty lines) rather than taken from a
// module: it is on the verifier's path and must be strict, refusing every
// encoding that is not the canonical one, which RFC 9285 section 6 asks for.

const base45Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

// base45Value maps a character to its value, or -1.
var base45Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base45Alphabet); i++ {
		t[base45Alphabet[i]] = int8(i)
	}
	return t
}()

// Base45Encode encodes b as RFC 9285 Base45.
func Base45Encode(b []byte) string {
	var sb strings.Builder
	sb.Grow((len(b)/2)*3 + 2)
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])<<8 | int(b[i+1])
		sb.WriteByte(base45Alphabet[n%45])
		sb.WriteByte(base45Alphabet[(n/45)%45])
		sb.WriteByte(base45Alphabet[n/2025])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		sb.WriteByte(base45Alphabet[n%45])
		sb.WriteByte(base45Alphabet[n/45])
	}
	return sb.String()
}

// ErrBase45 is wrapped by every Base45 decoding error.
var ErrBase45 = errors.New("base45")

// Base45Decode decodes RFC 9285 Base45. It refuses characters outside the
// alphabet, a dangling single character, and triplets or pairs whose value
// exceeds what two or one bytes can hold (RFC 9285 section 6).
func Base45Decode(s string) ([]byte, error) {
	if len(s)%3 == 1 {
		return nil, fmt.Errorf("%w: length %d leaves one character over", ErrBase45, len(s))
	}
	out := make([]byte, 0, len(s)/3*2+1)
	for i := 0; i < len(s); i += 3 {
		n, w := 0, 1
		end := min(i+3, len(s))
		for j := i; j < end; j++ {
			v := base45Value[s[j]]
			if v < 0 {
				return nil, fmt.Errorf("%w: character %q at %d is not in the alphabet", ErrBase45, s[j], j)
			}
			n += int(v) * w
			w *= 45
		}
		if end-i == 3 {
			if n > 0xffff {
				return nil, fmt.Errorf("%w: triplet at %d encodes %d, more than two bytes", ErrBase45, i, n)
			}
			out = append(out, byte(n>>8), byte(n))
		} else {
			if n > 0xff {
				return nil, fmt.Errorf("%w: pair at %d encodes %d, more than one byte", ErrBase45, i, n)
			}
			out = append(out, byte(n))
		}
	}
	return out, nil
}
