package ui

import (
	"encoding/xml"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Line is one named series of a plot.
type Line struct {
	Name   string
	Points []Point
}

// Latest is the newest sample in words, with its unit.
func (l Line) Latest(unit string) string {
	if len(l.Points) == 0 {
		return "no samples"
	}
	p := l.Points[len(l.Points)-1]
	return formatValue(p.Value, unit) + " at " + p.At.UTC().Format("15:04:05 UTC")
}

// Plot is a line chart rendered as SVG on the server: it needs no script,
// weighs a few kilobytes, and reads the same in every browser. Lines are
// told apart by dash pattern as well as colour, and the chart carries a
// text summary for screen readers (the page also shows the figures in a
// table).
type Plot struct {
	ID     string // unique on the page; names the title and description elements
	Title  string
	Unit   string // of the values, e.g. "s"
	Lines  []Line
	Width  int // in user units; 640 when zero
	Height int // 200 when zero
}

// lineStyle is line i's colour and dash pattern. The palette has a
// contrast of at least 3:1 against white, as WCAG 1.4.11 asks of graphical
// objects, and each colour has its own dash pattern, so lines differ by
// more than colour.
func lineStyle(i int) (colour, dash string) {
	colours := [...]string{"#1d70b8", "#d4351c", "#00703c", "#4c2c92", "#6f3f00", "#505a5f"}
	dashes := [...]string{"", "8 4", "2 3", "10 3 2 3", "4 4", "1 2"}
	return colours[i%len(colours)], dashes[i%len(dashes)]
}

// SVG renders the plot.
func (p Plot) SVG() template.HTML {
	w, h := p.Width, p.Height
	if w == 0 {
		w = 640
	}
	if h == 0 {
		h = 220
	}
	const left, right, top, bottom = 56, 16, 12, 58
	pw, ph := float64(w-left-right), float64(h-top-bottom)

	var t0, t1 time.Time
	maxV := 0.0
	n := 0
	for _, l := range p.Lines {
		for _, pt := range l.Points {
			if n == 0 || pt.At.Before(t0) {
				t0 = pt.At
			}
			if n == 0 || pt.At.After(t1) {
				t1 = pt.At
			}
			maxV = math.Max(maxV, pt.Value)
			n++
		}
	}
	top1 := niceCeil(maxV)
	span := t1.Sub(t0).Seconds()
	x := func(at time.Time) float64 {
		if span <= 0 {
			return left + pw
		}
		return left + pw*at.Sub(t0).Seconds()/span
	}
	y := func(v float64) float64 { return top + ph - ph*v/top1 }

	var b strings.Builder
	id := xmlText(p.ID)
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-t %s-d" xmlns="http://www.w3.org/2000/svg">`, w, h, id, id)
	fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id, xmlText(p.Title), id, xmlText(p.summary(n, maxV)))
	// Axes and grid: 0, half and the top of the scale.
	for _, v := range []float64{0, top1 / 2, top1} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#b1b4b6" stroke-width="1"/>`, left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="12" fill="#0b0c0c">%s</text>`, left-6, y(v)+4, xmlText(formatValue(v, p.Unit)))
	}
	if n > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#0b0c0c">%s</text>`, left, h-32, t0.UTC().Format("15:04:05"))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="12" fill="#0b0c0c">%s UTC</text>`, w-right, h-32, t1.UTC().Format("15:04:05"))
	} else {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="14" fill="#0b0c0c">no samples yet</text>`, left+pw/2, top+ph/2)
	}
	for i, l := range p.Lines {
		if len(l.Points) == 0 {
			continue
		}
		pts := make([]string, 0, len(l.Points))
		for _, pt := range l.Points {
			pts = append(pts, strconv.FormatFloat(x(pt.At), 'f', 1, 64)+","+strconv.FormatFloat(y(pt.Value), 'f', 1, 64))
		}
		c, dash := lineStyle(i)
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"`, c)
		if dash != "" {
			fmt.Fprintf(&b, ` stroke-dasharray="%s"`, dash)
		}
		fmt.Fprintf(&b, ` points="%s"><title>%s</title></polyline>`, strings.Join(pts, " "), xmlText(l.Name))
		if len(l.Points) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" r="3" fill="%s"/>`, strings.Replace(pts[0], ",", `" cy="`, 1), c)
		}
	}
	// The legend: each line's pattern beside its name.
	lx := float64(left)
	for i, l := range p.Lines {
		c, dash := lineStyle(i)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="2"`, lx, lx+24, h-10, h-10, c)
		if dash != "" {
			fmt.Fprintf(&b, ` stroke-dasharray="%s"`, dash)
		}
		fmt.Fprintf(&b, `/><text x="%.1f" y="%d" font-size="12" fill="#0b0c0c">%s</text>`, lx+30, h-6, xmlText(l.Name))
		lx += 40 + 7*float64(min(len(l.Name), 24))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every value above is a number or escaped
}

// xmlText escapes s for SVG text and attributes; characters XML cannot
// hold (controls, invalid UTF-8) become U+FFFD rather than break the page.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder cannot fail
	return b.String()
}

// summary says in words what the plot shows, for those who cannot see it.
func (p Plot) summary(n int, maxV float64) string {
	if n == 0 {
		return p.Title + ": no samples yet."
	}
	var parts []string
	for _, l := range p.Lines {
		if len(l.Points) == 0 {
			continue
		}
		last := l.Points[len(l.Points)-1]
		parts = append(parts, fmt.Sprintf("%s now %s", l.Name, formatValue(last.Value, p.Unit)))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%s, %d samples, highest %s: %s.", p.Title, n, formatValue(maxV, p.Unit), strings.Join(parts, "; "))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the axis reads
// in round numbers; an all-zero series gets a scale of 1.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatValue(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'g', 4, 64)
	if unit == "" {
		return s
	}
	return s + " " + unit
}
