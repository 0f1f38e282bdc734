package charter

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// quotaUnitNames lists the units a quota may be written in, for errors.
// Both families are accepted because hosts buy storage in decimal units and
// operating systems report binary ones; the canonical encoding carries
// bytes, so the choice of spelling never changes a signature.
const quotaUnitNames = "B, kB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB"

// quotaUnit returns the size of a unit in bytes; "" is bytes.
func quotaUnit(name string) (int64, bool) {
	switch name {
	case "", "B":
		return 1, true
	case "kB":
		return 1e3, true
	case "MB":
		return 1e6, true
	case "GB":
		return 1e9, true
	case "TB":
		return 1e12, true
	case "PB":
		return 1e15, true
	case "KiB":
		return 1 << 10, true
	case "MiB":
		return 1 << 20, true
	case "GiB":
		return 1 << 30, true
	case "TiB":
		return 1 << 40, true
	case "PiB":
		return 1 << 50, true
	}
	return 0, false
}

// QuotaBytes returns the site's quota in bytes, or 0 if Quota is empty (no
// quota). Validate rejects every quota for which this fails.
func (s Site) QuotaBytes() (int64, error) {
	if s.Quota == "" {
		return 0, nil
	}
	n, err := parseQuota(s.Quota)
	if err != nil {
		return 0, fmt.Errorf("site %s quota: %w", s.ID, err)
	}
	return n, nil
}

// parseQuota reads a positive whole number of bytes with an optional unit
// ("500GiB", "750MB", "1048576"). It is strict — no sign, no spaces, no
// fractions, units case-sensitive — because "mb" could mean either family
// and a host should not have to guess what it signed.
func parseQuota(s string) (int64, error) {
	q := strconv.Quote(abbreviate(s))
	digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
	num, unit := s[:digits], s[digits:]
	switch {
	case strings.HasPrefix(s, "-"):
		return 0, fmt.Errorf("%s: negative", q)
	case num == "":
		return 0, fmt.Errorf("%s: want a whole number of bytes with an optional unit, such as 500GiB", q)
	case strings.HasPrefix(unit, ".") || strings.HasPrefix(unit, ","):
		return 0, fmt.Errorf("%s: fractions are not allowed, use a smaller unit (1536MiB, not 1.5GiB)", q)
	}
	size, ok := quotaUnit(unit)
	if !ok {
		return 0, fmt.Errorf("%s: unknown unit (want none or one of %s)", q, quotaUnitNames)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && n > math.MaxInt64/size {
		return 0, fmt.Errorf("%s: more than the %d bytes a quota can hold", q, int64(math.MaxInt64))
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	if n == 0 {
		// Zero would read as "no quota" through QuotaBytes; a site that
		// may hold nothing should not hold the registry at all.
		return 0, fmt.Errorf("%s: must be positive (omit quota for none)", q)
	}
	return n * size, nil
}
