package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/site/ui"
)

// The officials' desk (/ui/desk): an official signed in with `chancery ui
// login` searches the records their role may read and sees the orders
// waiting for signatures. Every read goes through the officials' API's own
// gate (policy, mode) and access entries (officialsAPI.allow, readRecord,
// findRecords), so the desk never shows more than the API would, and every
// record it shows is an access entry in the ledger like an API read.

// deskOfficial is the viewer's tenant and charter entry.
func (s *Site) deskOfficial(v ui.Viewer) (*tenant, *charter.Official, error) {
	t, ok := s.tenants[v.Guest]
	if !ok {
		return nil, nil, fmt.Errorf("guest %s is not held at site %s", v.Guest, s.cfg.Site)
	}
	o, ok := t.Charter().Official(v.ID)
	if !ok {
		return nil, nil, fmt.Errorf("%s is no longer an official of %s's charter: sign in again", v.ID, v.Guest)
	}
	return t, o, nil
}

func (s *Site) desk(ctx context.Context, v ui.Viewer) (*ui.Desk, error) {
	t, o, err := s.deskOfficial(v)
	if err != nil {
		return nil, err
	}
	d := &ui.Desk{Official: o.ID, Roles: o.Roles}
	g, _, err := s.officialsOf(t)
	if err != nil {
		d.NotServed = err.Error() + "; records are searched and cases worked at the site now active (the continuity dashboard says which)"
		d.CasesNote = "No case can be read at this site while it is sealed."
	} else {
		for _, name := range g.local.Registries.Names() {
			if g.allow(o, ActionRead, name) != nil {
				continue
			}
			r := ui.DeskRegistry{Name: name}
			if def, ok := registryDef(t.Charter(), name); ok {
				r.Index = def.Index
			}
			d.Registries = append(d.Registries, r)
		}
		d.Cases, d.CasesNote = deskCases(ctx, g, o.ID, o.Roles)
	}
	d.Orders, d.OrdersHow = s.pages.pendingOrders(t, o), pendingHow
	return d, nil
}

func registryDef(c *charter.Charter, name string) (charter.Registry, bool) {
	i := slices.IndexFunc(c.Registries, func(r charter.Registry) bool { return r.Name == name })
	if i < 0 {
		return charter.Registry{}, false
	}
	return c.Registries[i], true
}

// deskRead is the viewer's official and the officials' API, once the API's
// gate lets the official read reg here.
func (s *Site) deskRead(v ui.Viewer, reg string) (*tenant, *charter.Official, *officialsAPI, error) {
	t, o, err := s.deskOfficial(v)
	if err != nil {
		return nil, nil, nil, err
	}
	g, _, err := s.officialsOf(t)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := g.allow(o, ActionRead, reg); err != nil {
		return nil, nil, nil, err
	}
	return t, o, g, nil
}

// deskSearch reads as the API does: the same gate, the same reads, the
// same access entries.
func (s *Site) deskSearch(ctx context.Context, v ui.Viewer, q ui.DeskQuery) ([]ui.DeskRecord, error) {
	_, o, g, err := s.deskRead(v, q.Registry)
	if err != nil {
		return nil, err
	}
	var recs []*registry.Record
	if q.Field == "id" {
		rec, err := g.readRecord(ctx, o, q.Registry, q.Value, registry.AsOf{})
		switch {
		case err == nil:
			recs = append(recs, rec)
		case isNotFound(err):
		default:
			return nil, deskError(err, q)
		}
	} else if recs, err = g.findRecords(ctx, o, q.Registry, q.Field, q.Value); err != nil {
		return nil, deskError(err, q)
	}
	out := make([]ui.DeskRecord, 0, len(recs))
	for _, r := range recs {
		out = append(out, deskRecord(r))
	}
	return out, nil
}

func isNotFound(err error) bool { return errors.Is(err, registry.ErrNotFound) }

// deskError words an error for the page: what the API would answer, with
// the query it was about.
func deskError(err error, q ui.DeskQuery) error {
	e := toHTTP(err, q.Registry, "")
	return fmt.Errorf("registry %s, %s = %q: %s", q.Registry, q.Field, q.Value, e.body.Error)
}

// deskRecord lists a record's top-level fields in its own order, each
// value as text (strings bare, anything else as its JSON).
func deskRecord(r *registry.Record) ui.DeskRecord {
	out := ui.DeskRecord{Registry: r.Registry, ID: r.ID, Version: r.Version}
	dec := json.NewDecoder(strings.NewReader(string(r.Data)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return out
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		val := string(raw)
		var str string
		if json.Unmarshal(raw, &str) == nil {
			val = str
		}
		out.Fields = append(out.Fields, ui.DeskField{Name: fmt.Sprint(k), Value: val})
	}
	for _, a := range r.Attachments {
		out.Fields = append(out.Fields, ui.DeskField{Name: "attachment", Value: a.Name})
	}
	return out
}
