package demogen

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Means of the per-person record counts.
const (
	meanDocuments  = 0.8
	meanParcels    = 0.3
	meanBusinesses = 0.05
)

// The calendar of the generated republic. Reference day is "today": the data
// does not depend on the clock.
var (
	refDay       = dayOf(2025, time.June, 30)
	firstBirth   = dayOf(1930, time.January, 1)
	adultCutoff  = dayOf(2007, time.June, 30) // born on or before: adult on refDay
	foundingDay  = dayOf(1991, time.March, 12)
	adultShare   = float64(adultCutoff-firstBirth+1) / float64(refDay-firstBirth+1)
	deedMinBytes = 100 << 10
	deedMaxBytes = 5 << 20
)

// person is what a citizen's dependent records need to know of them.
type person struct {
	index      int
	nid        []byte
	first      string
	last       string
	birth      int
	adult      bool
	city       int
	registered int
}

func (g *gen) person(i int) error {
	g.reseed(domPerson, uint64(i))
	r := g.r
	cu := &cultures[r.IntN(len(cultures))]
	male := r.IntN(2) == 0
	p := person{index: i}
	if male {
		p.first = cu.male[r.IntN(len(cu.male))]
	} else {
		p.first = cu.female[r.IntN(len(cu.female))]
	}
	p.last = cu.last[r.IntN(len(cu.last))]
	p.birth = firstBirth + r.IntN(refDay-firstBirth+1)
	p.adult = p.birth <= adultCutoff
	birthPlace := r.IntN(len(cities))
	p.city = birthPlace
	if r.IntN(10) >= 6 {
		p.city = r.IntN(len(cities))
	}
	p.registered = max(p.birth+r.IntN(30), foundingDay+r.IntN(365))
	g.id = appendNationalID(g.id[:0], g.opts.Seed, i)
	p.nid = g.id

	b := append(g.rec[:0], '{')
	b = kvBytes(b, "national_id", p.nid)
	b = kvString(b, "first_name", p.first)
	b = kvString(b, "last_name", p.last)
	if male {
		b = kvString(b, "sex", "M")
	} else {
		b = kvString(b, "sex", "F")
	}
	b = kvDate(b, "birth_date", p.birth)
	b = kvString(b, "birth_place", cities[birthPlace].name)
	b = kvString(b, "citizenship", "DR")
	if p.adult {
		b = kvString(b, "marital_status", maritalStatuses[r.IntN(len(maritalStatuses))])
	} else {
		b = kvString(b, "marital_status", "single")
	}
	b = appendKey(b, "languages")
	b = append(b, '[')
	b = appendString(b, "en")
	if l := languages[r.IntN(len(languages))]; l != "en" {
		b = append(b, ',')
		b = appendString(b, l)
	}
	b = append(b, ']')
	c := &cities[p.city]
	b = appendKey(b, "address")
	b = append(b, '{')
	b = kvString(b, "street", streets[r.IntN(len(streets))])
	b = appendKey(b, "number")
	b = append(b, '"')
	b = appendPadded(b, uint64(1+r.IntN(240)), 1)
	if r.IntN(8) == 0 {
		b = append(b, byte('A'+r.IntN(4)))
	}
	b = append(b, '"')
	b = kvString(b, "city", c.name)
	b = appendKey(b, "postcode")
	b = append(b, '"')
	b = appendPadded(b, uint64(c.postcode*1000+r.IntN(1000)), 5)
	b = append(b, '"')
	b = kvString(b, "country", "DR")
	b = append(b, '}')
	b = appendKey(b, "phone")
	b = append(b, `"+999 `...)
	b = appendPadded(b, uint64(20+r.IntN(80)), 2)
	b = append(b, ' ')
	b = appendPadded(b, uint64(r.IntN(1000)), 3)
	b = append(b, ' ')
	b = appendPadded(b, uint64(r.IntN(10000)), 4)
	b = append(b, '"')
	if p.adult {
		b = appendKey(b, "email")
		b = append(b, '"')
		b = asciiFold(b, p.first)
		b = append(b, '.')
		b = asciiFold(b, p.last)
		b = appendPadded(b, uint64(i%97), 1)
		b = append(b, "@post.demo-republic.example\""...)
	}
	if r.IntN(8) == 0 {
		b = kvString(b, "status", "abroad")
	} else {
		b = kvString(b, "status", "resident")
	}
	b = kvDate(b, "registered", p.registered)
	b = kvDate(b, "residence_since", max(p.registered, refDay-r.IntN(refDay-p.birth+1)))
	b = appendKey(b, "electoral_district")
	b = append(b, '"')
	b = append(b, c.name...) // city names need no escaping
	b = append(b, ' ')
	b = appendPadded(b, uint64(1+r.IntN(6)), 1)
	b = append(b, '"')
	b = appendKey(b, "eid_public_key")
	b = append(b, '"')
	b = appendCitizenPublicKey(b, g.opts.Seed, i)
	b = append(b, '"', '}')
	g.rec = b
	g.put(RegPopulation, p.nid, nil)

	// Draw this person's dependent record counts from the person stream, so
	// each count is fixed before any dependent record is generated.
	nDocs := 0
	switch u := r.Float64(); {
	case u < 0.1:
		nDocs = 2
	case u < 0.7:
		nDocs = 1
	}
	nParcels, nBusinesses := 0, 0
	if p.adult {
		// Minors own nothing; adults own proportionally more so that the
		// means per person hold.
		switch u := r.Float64() * adultShare; {
		case u < 0.02:
			nParcels = 3
		case u < 0.06:
			nParcels = 2
		case u < 0.22:
			nParcels = 1
		}
		if r.Float64()*adultShare < meanBusinesses {
			nBusinesses = 1
		}
	}
	for k := range nDocs {
		g.document(&p, k, nDocs)
	}
	for k := range nParcels {
		if err := g.parcel(&p, k); err != nil {
			return err
		}
	}
	if nBusinesses > 0 {
		g.business(&p)
	}
	return nil
}

func (g *gen) document(p *person, k, n int) {
	seq := uint64(p.index)*2 + uint64(k)
	g.reseed(domDocument, seq)
	r := g.r
	passport := k == 1 || (n == 1 && r.IntN(10) < 3)
	var id []byte
	if passport {
		id = append(g.id2[:0], "PA"...)
	} else {
		id = append(g.id2[:0], "ID"...)
	}
	id = appendPadded(id, permuteID(g.opts.Seed, domDocumentNo, seq), 9)

	validYears := 10
	age := (refDay - p.birth) / 365
	if age < 18 {
		validYears = 5
	}
	// Issued within the last validity period, after birth; a few expired.
	span := validYears*365 + 400
	issued := max(p.birth+30, refDay-r.IntN(span))
	expires := int(time.Unix(int64(issued)*86400, 0).UTC().AddDate(validYears, 0, -1).Unix() / 86400)

	b := append(g.rec[:0], '{')
	b = kvBytes(b, "document_no", id)
	b = kvBytes(b, "national_id", p.nid)
	if passport {
		b = kvString(b, "kind", "passport")
	} else {
		b = kvString(b, "kind", "id-card")
	}
	b = kvDate(b, "issued", issued)
	b = kvDate(b, "expires", expires)
	b = kvString(b, "issuing_authority", "Ministry of the Interior, "+cities[p.city].name)
	if expires < refDay {
		b = kvString(b, "status", "expired")
	} else {
		b = kvString(b, "status", "valid")
	}
	b = append(b, '}')
	g.rec = b
	g.put(RegIdentity, id, nil)
}

func (g *gen) parcel(p *person, k int) error {
	seq := uint64(p.index)*4 + uint64(k)
	g.reseed(domParcel, seq)
	r := g.r
	num := permuteID(g.opts.Seed, domParcelNo, seq)
	id := append(g.id2[:0], "PCL-"...)
	id = appendPadded(id, num, 9)
	g.id2 = id
	muni := p.city
	if r.IntN(3) == 0 {
		muni = r.IntN(len(cities))
	}
	c := &cities[muni]
	zi := r.IntN(len(c.zones))
	use := landUses[r.IntN(len(landUses))]
	var area int
	switch use {
	case "residential", "garden", "commercial":
		area = 150 + r.IntN(2500)
	default: // 1,000 m² to 50 ha, log-uniform
		area = int(math.Exp(math.Log(1000) + r.Float64()*math.Log(500)))
	}
	from := max(p.birth+18*365, foundingDay)
	acquired := from + r.IntN(max(1, refDay-from))
	copyDeed := r.IntN(20) == 0 // a notarised copy filed twice (~5%)

	b := append(g.rec[:0], '{')
	b = kvBytes(b, "parcel_id", id)
	b = kvBytes(b, "owner_id", p.nid)
	b = kvInt(b, "area_m2", area)
	b = kvString(b, "municipality", c.name)
	b = appendKey(b, "cadastral_zone")
	b = append(b, `"CZ-`...)
	b = appendPadded(b, uint64(c.postcode*100+zi), 4)
	b = append(b, ' ')
	pos := len(b)
	b = appendString(b, c.zones[zi]) // then drop its opening quote
	copy(b[pos:], b[pos+1:])
	b = b[:len(b)-1]
	b = kvString(b, "land_use", use)
	b = kvDate(b, "acquired", acquired)
	b = appendKey(b, "title_deed")
	b = append(b, `"D-`...)
	b = appendPadded(b, uint64(yearOf(acquired)), 4)
	b = append(b, '/')
	b = appendPadded(b, num, 9)
	b = append(b, '"')
	if r.IntN(6) == 0 {
		b = kvString(b, "encumbrance", "mortgage")
	}
	b = append(b, '}')
	g.rec = b

	g.att = g.att[:0]
	if g.opts.Deeds {
		paths, err := g.writeDeed(p, c, zi, area, acquired, num, id, copyDeed)
		if err != nil {
			return err
		}
		g.att = append(g.att, attachment{"deed", paths[0]})
		if copyDeed {
			g.att = append(g.att, attachment{"deed-copy", paths[1]})
		}
	}
	g.put(RegLand, id, g.att)
	return nil
}

func (g *gen) business(p *person) {
	seq := uint64(p.index)
	g.reseed(domBusiness, seq)
	r := g.r
	id := append(g.id2[:0], "BR-"...)
	id = appendPadded(id, permuteID(g.opts.Seed, domRegistrationNo, seq), 9)
	g.id2 = id
	sec := sectors[r.IntN(len(sectors))]
	form := legalForms[r.IntN(len(legalForms))]
	from := max(p.birth+18*365, foundingDay)
	founded := from + r.IntN(max(1, refDay-from))
	c := &cities[p.city]
	if r.IntN(4) == 0 {
		c = &cities[r.IntN(len(cities))]
	}

	b := append(g.rec[:0], '{')
	b = kvBytes(b, "registration_no", id)
	var base string
	switch r.IntN(3) {
	case 0:
		base = p.last
	case 1:
		base = c.name
	default:
		base = p.first
	}
	if form == "Sole Trader" {
		base = p.first + " " + p.last
	}
	b = kvString(b, "name", base+" "+sec.word+" "+form)
	b = kvBytes(b, "owner_id", p.nid)
	b = kvDate(b, "founded", founded)
	b = kvString(b, "sector", sec.name)
	b = kvString(b, "legal_form", strings.TrimPrefix(form, "& "))
	b = kvString(b, "seat", c.name)
	b = kvInt(b, "employees", int(math.Exp(r.Float64()*math.Log(2000))))
	b = kvString(b, "status", "active")
	b = append(b, '}')
	g.rec = b
	g.put(RegBusiness, id, nil)
}

// actWriter generates the legal acts: dated in order from the republic's
// founding to the reference day, numbered per year.
type actWriter struct {
	seed uint64
	n    int
	pcg  rand.PCG
	r    *rand.Rand
	year int
	seq  int
	sb   strings.Builder
}

func newActWriter(seed uint64, persons int) *actWriter {
	a := &actWriter{seed: seed, n: ActCount(persons)}
	a.r = rand.New(&a.pcg)
	return a
}

// act appends the k-th act's record (acts must be asked for in order) and
// returns its id.
func (a *actWriter) act(b []byte, k int) (string, []byte) {
	a.pcg.Seed(streamSeed(a.seed, domAct, uint64(k)))
	r := a.r
	span := refDay - foundingDay
	slot := span / a.n
	day := foundingDay + int(int64(span)*int64(k)/int64(a.n)) + r.IntN(max(1, slot))
	y := yearOf(day)
	if y != a.year {
		a.year, a.seq = y, 0
	}
	a.seq++
	kind := actKinds[r.IntN(len(actKinds))]
	subject := actSubjects[r.IntN(len(actSubjects))]

	idb := append(make([]byte, 0, 16), "LA-"...)
	idb = appendPadded(idb, uint64(y), 4)
	idb = append(idb, '-')
	idb = appendPadded(idb, uint64(a.seq), 5)
	id := string(idb)

	a.sb.Reset()
	a.sb.WriteString(kind)
	a.sb.WriteString(" No. ")
	a.sb.Write(appendPadded(nil, uint64(a.seq), 1))
	a.sb.WriteString("/")
	a.sb.Write(appendPadded(nil, uint64(y), 4))
	a.sb.WriteString(" on ")
	a.sb.WriteString(subject)
	title := a.sb.String()

	rep := strings.NewReplacer("{kind}", strings.ToLower(kind), "{subject}", subject)
	a.sb.Reset()
	paras := 3 + r.IntN(3)
	for pi := range paras {
		if pi > 0 {
			a.sb.WriteString("\n\n")
		}
		a.sb.WriteString("Article ")
		a.sb.Write(appendPadded(nil, uint64(pi+1), 1))
		a.sb.WriteString(". ")
		if pi == 0 {
			rep.WriteString(&a.sb, actSentences[0])
		}
		for si := range 2 + r.IntN(3) {
			if si > 0 || pi == 0 {
				a.sb.WriteByte(' ')
			}
			rep.WriteString(&a.sb, actSentences[1+r.IntN(len(actSentences)-1)])
		}
	}

	b = append(b, '{')
	b = kvString(b, "act_id", id)
	b = kvString(b, "title", title)
	b = kvString(b, "kind", strings.ToLower(kind))
	b = kvDate(b, "date", day)
	b = kvString(b, "gazette", "Official Gazette of the Demo Republic")
	b = kvString(b, "text", a.sb.String())
	b = append(b, '}')
	return id, b
}
