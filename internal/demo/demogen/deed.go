package demogen

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// deedWidth is the scan's line width in bytes (A4 at 300 dpi, 8-bit grey).
const deedWidth = 2480

// writeDeed writes the parcel's scanned title deed (and, when copyDeed, a
// byte-identical notarised copy) and returns the file paths. Files go to
// DeedDir/NNN/, NNN the parcel number's last three digits, so no directory
// holds more than a few thousand deeds even for ten million citizens.
func (g *gen) writeDeed(p *person, c *city, zone, area, acquired int, num uint64, parcelID []byte, copyDeed bool) ([2]string, error) {
	var paths [2]string
	g.reseed(domDeed, num)
	r := g.r
	size := int(math.Exp(math.Log(float64(deedMinBytes)) + r.Float64()*math.Log(float64(deedMaxBytes)/float64(deedMinBytes))))
	size = min(max(size, deedMinBytes), deedMaxBytes)

	b := g.deed[:0]
	b = fmt.Appendf(b, "DEMO REPUBLIC\nSTATE CADASTRAL OFFICE\nTITLE DEED D-%04d/%09d\n\n", yearOf(acquired), num)
	b = fmt.Appendf(b, "Parcel:          %s\n", parcelID)
	b = fmt.Appendf(b, "Cadastral zone:  CZ-%04d %s\n", c.postcode*100+zone, c.zones[zone])
	b = fmt.Appendf(b, "Municipality:    %s\n", c.name)
	b = fmt.Appendf(b, "Area:            %d m2\n", area)
	b = fmt.Appendf(b, "Owner:           %s %s (%s)\n", p.first, p.last, p.nid)
	b = append(b, "Recorded:        "...)
	b = appendDate(b, acquired)
	b = append(b, "\nRegistrar:       Pavel Horak, Chief Registrar\n"...)
	rows := (size - len(b) - 64) / deedWidth
	b = fmt.Appendf(b, "Scan:            300 dpi, 8-bit grey, %dx%d\n\f", deedWidth, rows+1)
	b = scanImage(b, r.Uint64, size)
	g.deed = b

	dir := filepath.Join(g.opts.DeedDir, string(parcelID[len(parcelID)-3:]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return paths, fmt.Errorf("demogen: deed: %w", err)
	}
	paths[0] = filepath.Join(dir, string(parcelID)+".deed")
	if err := os.WriteFile(paths[0], b, 0o644); err != nil {
		return paths, fmt.Errorf("demogen: deed: %w", err)
	}
	if copyDeed {
		paths[1] = filepath.Join(dir, string(parcelID)+".copy.deed")
		if err := os.WriteFile(paths[1], b, 0o644); err != nil {
			return paths, fmt.Errorf("demogen: deed: %w", err)
		}
	}
	return paths, nil
}

// scanImage appends pseudo-image bytes to b until it is size bytes long: the
// grey scan of a typed page. Scan lines are paper (runs of one light grey)
// with inked stretches (noise), a few blank lines between lines of text, so
// a compressor finds about half the bytes redundant.
func scanImage(b []byte, rnd func() uint64, size int) []byte {
	var word [8]byte
	noise := func(n int) {
		for n > 0 {
			binary.LittleEndian.PutUint64(word[:], rnd())
			k := min(n, 8)
			b = append(b, word[:k]...)
			n -= k
		}
	}
	run := func(c byte, n int) {
		for range n {
			b = append(b, c)
		}
	}
	for len(b) < size {
		v := rnd()
		paper := byte(0xe8 + v&0x0f)
		switch {
		case v>>8&3 == 0: // blank line: paper with the odd speck
			n := min(deedWidth, size-len(b))
			run(paper, n-n/16)
			noise(n / 16)
		default: // a line of text: margin, words (ink noise) and spaces
			end := min(len(b)+deedWidth, size)
			margin := min(160+int(v>>12&63), end-len(b))
			run(paper, margin)
			for len(b) < end {
				v = rnd()
				ink := min(24+int(v&127), end-len(b))
				noise(ink)
				space := min(12+int(v>>8&63), end-len(b))
				run(paper, space)
			}
		}
	}
	return b[:size]
}
