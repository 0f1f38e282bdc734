package notice

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"time"
)

// Feed describes the feed a site publishes for a guest.
type Feed struct {
	// Guest and Name name the state (the feed's author).
	Guest, Name string
	// URL is where the feed is served (its self link); HomePage the
	// guest's public page.
	URL, HomePage string
}

// Namespace is the XML namespace of the Atom extension element that
// carries a notice's proof, and the JSON Feed extension key's source.
const Namespace = "urn:chancery:notice:1"

type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	XMLNSC  string      `xml:"xmlns:chancery,attr"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomPerson  `xml:"author"`
	Links   []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID        string       `xml:"id"`
	Title     atomText     `xml:"title"`
	Updated   string       `xml:"updated"`
	Published string       `xml:"published"`
	Category  atomCategory `xml:"category"`
	Content   atomText     `xml:"content"`
	// Proof is the proven notice as JSON text (Proven): a foreign
	// element, which Atom processors ignore and verifiers read.
	Proof string `xml:"chancery:proof"`
}

type atomText struct {
	Type string `xml:"type,attr"`
	Lang string `xml:"xml:lang,attr,omitempty"`
	Text string `xml:",chardata"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

// entryID is the notice's permanent id (RFC 4287 section 4.2.6).
func entryID(guest, id string) string { return "urn:chancery:notice:" + guest + ":" + id }

// Atom renders notices, newest first, as an Atom feed. Each entry carries
// the proven notice, so a reader of the feed alone can verify it.
func Atom(f Feed, notices []*Proven) ([]byte, error) {
	items, updated, err := decode(notices)
	if err != nil {
		return nil, err
	}
	af := atomFeed{
		XMLNSC: Namespace, ID: "urn:chancery:notices:" + f.Guest, Title: "Public notices of " + f.Name,
		Updated: updated.Format(time.RFC3339), Author: atomPerson{Name: f.Name},
		Links: []atomLink{{Rel: "self", Type: "application/atom+xml", Href: f.URL}},
	}
	if f.HomePage != "" {
		af.Links = append(af.Links, atomLink{Rel: "alternate", Type: "text/html", Href: f.HomePage})
	}
	for _, it := range items {
		n := it.s.Notice
		proof, err := json.Marshal(it.p)
		if err != nil {
			return nil, err
		}
		af.Entries = append(af.Entries, atomEntry{
			ID: entryID(n.Guest, n.ID), Title: atomText{Type: "text", Lang: n.Lang, Text: n.Title},
			Updated: n.IssuedAt.Format(time.RFC3339), Published: n.IssuedAt.Format(time.RFC3339),
			Category: atomCategory{Term: n.Class}, Content: atomText{Type: "text", Lang: n.Lang, Text: n.Body},
			Proof: string(proof),
		})
	}
	b, err := xml.MarshalIndent(af, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("atom feed: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

// jsonFeed is JSON Feed 1.1 (https://jsonfeed.org/version/1.1).
type jsonFeed struct {
	Version     string     `json:"version"`
	Title       string     `json:"title"`
	HomePageURL string     `json:"home_page_url,omitempty"`
	FeedURL     string     `json:"feed_url"`
	Authors     []jsonName `json:"authors"`
	Items       []jsonItem `json:"items"`
}

type jsonName struct {
	Name string `json:"name"`
}

type jsonItem struct {
	ID            string   `json:"id"`
	Title         string   `json:"title"`
	ContentText   string   `json:"content_text"`
	DatePublished string   `json:"date_published"`
	Language      string   `json:"language,omitempty"`
	Tags          []string `json:"tags"`
	// Chancery is the extension (JSON Feed's "_" keys) with the proven
	// notice.
	Chancery *Proven `json:"_chancery"`
}

// JSON renders notices, newest first, as a JSON Feed 1.1 whose items carry
// their proven notices under "_chancery".
func JSON(f Feed, notices []*Proven) ([]byte, error) {
	items, _, err := decode(notices)
	if err != nil {
		return nil, err
	}
	jf := jsonFeed{Version: "https://jsonfeed.org/version/1.1", Title: "Public notices of " + f.Name,
		HomePageURL: f.HomePage, FeedURL: f.URL, Authors: []jsonName{{Name: f.Name}}, Items: []jsonItem{}}
	for _, it := range items {
		n := it.s.Notice
		jf.Items = append(jf.Items, jsonItem{ID: entryID(n.Guest, n.ID), Title: n.Title, ContentText: n.Body,
			DatePublished: n.IssuedAt.Format(time.RFC3339), Language: n.Lang, Tags: []string{n.Class}, Chancery: it.p})
	}
	b, err := json.MarshalIndent(jf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("json feed: %w", err)
	}
	return append(b, '\n'), nil
}

type item struct {
	p *Proven
	s *Signed
}

// decode parses the notices (not verifying them: a site renders what it
// recorded) and orders them newest first, by ledger index.
func decode(ps []*Proven) ([]item, time.Time, error) {
	items := make([]item, 0, len(ps))
	var updated time.Time
	for i, p := range ps {
		s, err := Parse(p.Signed)
		if err != nil {
			return nil, updated, fmt.Errorf("notice %d: %w", i, err)
		}
		items = append(items, item{p, s})
		if s.Notice.IssuedAt.After(updated) {
			updated = s.Notice.IssuedAt
		}
	}
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].p.Index > items[j-1].p.Index; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	return items, updated, nil
}

// ParseAtomProofs returns the proven notices an Atom feed carries, for a
// verifier that has only the feed.
func ParseAtomProofs(b []byte) ([]*Proven, error) {
	var f struct {
		Entries []struct {
			Proof string `xml:"urn:chancery:notice:1 proof"`
		} `xml:"http://www.w3.org/2005/Atom entry"`
	}
	if err := xml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("atom feed: %w", err)
	}
	out := make([]*Proven, 0, len(f.Entries))
	for i, e := range f.Entries {
		var p Proven
		if err := json.Unmarshal([]byte(e.Proof), &p); err != nil {
			return nil, fmt.Errorf("atom feed entry %d: proof: %w", i, err)
		}
		out = append(out, &p)
	}
	return out, nil
}
