package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/services/message"
	"github.com/chancery-gov/chancery/services/notice"
	"github.com/chancery-gov/chancery/services/procedure"
	"github.com/chancery-gov/chancery/site/ui"
)

// The portal's notices, inbox and procedures, over the guest-level APIs
// the officials' API serves them with: public notices as every site
// publishes them, the inbox through the provider's bearer-token API
// beside the issuer (the citizen's token, an access entry per message
// opened), and cases through guest.Procedures with the signed-in citizen
// as the actor (its access rules and entries).

func (p *portal) acts() ui.PortalActs {
	return ui.PortalActs{Notices: p.notices, Inbox: p.inbox, Message: p.message,
		Procedures: p.procedures, Start: p.startCase, Consent: p.consent, Case: p.readCase}
}

// tenantOf is the guest whose issuer name the request came to.
func tenantOf(ctx context.Context) (*tenant, error) {
	t, _ := ctx.Value(portalCtxKey{}).(*tenant)
	if t == nil {
		return nil, errors.New("the portal is served on the state's issuer name only")
	}
	return t, nil
}

func (p *portal) notices(ctx context.Context) ([]ui.Notice, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	feed, err := t.PublicNotices(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Notice, 0, len(feed.Notices))
	for _, pn := range feed.Notices {
		s, err := notice.Parse(pn.Signed)
		if err != nil {
			return nil, fmt.Errorf("notice at ledger index %d: %w", pn.Index, err)
		}
		n := s.Notice
		out = append(out, ui.Notice{ID: n.ID, Class: n.Class, Title: n.Title, Body: n.Body, Site: n.Site, Issued: n.IssuedAt, Index: pn.Index})
	}
	return out, nil
}

func (p *portal) inbox(ctx context.Context, v ui.Viewer) ([]ui.MessageRow, error) {
	var hs []message.Header
	if _, err := p.asCitizen(ctx, v, http.MethodGet, "/inbox", nil, &hs); err != nil {
		return nil, err
	}
	out := make([]ui.MessageRow, 0, len(hs))
	for _, h := range hs {
		out = append(out, ui.MessageRow{ID: h.ID, From: h.From, Subject: h.Subject, Sent: h.Sent})
	}
	return out, nil
}

func (p *portal) message(ctx context.Context, v ui.Viewer, id string) (*ui.MessageView, error) {
	var m message.Message
	if _, err := p.asCitizen(ctx, v, http.MethodGet, "/inbox/"+url.PathEscape(id), nil, &m); err != nil {
		return nil, err
	}
	return &ui.MessageView{MessageRow: ui.MessageRow{ID: m.ID, From: m.From, Subject: m.Subject, Sent: m.Sent}, Body: m.Body, AgeBody: m.AgeBody}, nil
}

// procs is the guest's procedures and the citizen acting, once the
// session is checked.
func (p *portal) procs(ctx context.Context, v ui.Viewer) (*guest.Procedures, guest.Actor, error) {
	if _, err := p.token(v); err != nil {
		return nil, guest.Actor{}, err
	}
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, guest.Actor{}, err
	}
	pr, err := t.Procedures()
	if err != nil {
		return nil, guest.Actor{}, err
	}
	return pr, guest.Actor{Citizen: v.ID}, nil
}

func (p *portal) procedures(ctx context.Context, v ui.Viewer) (*ui.ProceduresView, error) {
	pr, actor, err := p.procs(ctx, v)
	if err != nil {
		return nil, err
	}
	out := &ui.ProceduresView{}
	for _, d := range pr.List() {
		if !d.Start.Citizen || d.Input == nil {
			continue
		}
		f := ui.ProcedureForm{ID: d.ID, Title: d.Title}
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range d.Input.Properties {
				if !yield(k) {
					return
				}
			}
		})
		for _, name := range names {
			s := d.Input.Properties[name]
			in := ui.InputField{Name: name, Label: strings.ReplaceAll(name, "_", " "), Type: "text", Pattern: s.Pattern, Hint: s.Description,
				Required: slices.Contains(d.Input.Required, name)}
			if s.Type == procedure.TypeInteger || s.Type == procedure.TypeNumber {
				in.Type = "number"
			}
			for _, e := range s.Enum {
				in.Options = append(in.Options, fmt.Sprint(e))
			}
			if name == d.Start.CitizenField {
				in.Value, in.Fixed = actor.Citizen, true
			}
			f.Fields = append(f.Fields, in)
		}
		out.Forms = append(out.Forms, f)
	}
	q, err := pr.Queue(ctx, actor, "")
	if err != nil {
		return nil, err
	}
	for _, it := range q {
		w := ui.Waiting{Case: it.Case, Title: it.Title, Step: it.Step, Starter: it.Starter, Opened: it.Opened}
		if c, err := pr.Case(ctx, actor, it.Case); err == nil {
			w.Input = fields(c.Input)
		}
		out.Waiting = append(out.Waiting, w)
	}
	return out, nil
}

// fields is a JSON object as sorted fields in words.
func fields(raw json.RawMessage) []ui.Field {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	out := make([]ui.Field, 0, len(obj))
	for k, val := range obj {
		var s string
		if json.Unmarshal(val, &s) != nil {
			s = string(val)
		}
		out = append(out, ui.Field{Name: k, Value: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// startCase opens a case with the form's fields, typed by the schema; the
// procedure's own validation names a field that is wrong.
func (p *portal) startCase(ctx context.Context, v ui.Viewer, procID string, form url.Values) (string, error) {
	pr, actor, err := p.procs(ctx, v)
	if err != nil {
		return "", err
	}
	d, ok := pr.Lookup(procID)
	if !ok || !d.Start.Citizen || d.Input == nil {
		return "", fmt.Errorf("procedure %q is not one a citizen starts", procID)
	}
	in := map[string]any{}
	for name, s := range d.Input.Properties {
		val := strings.TrimSpace(form.Get(name))
		if val == "" {
			continue
		}
		switch s.Type {
		case procedure.TypeInteger:
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return "", fmt.Errorf("%s: %q is not a whole number", name, val)
			}
			in[name] = n
		case procedure.TypeNumber:
			n, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return "", fmt.Errorf("%s: %q is not a number", name, val)
			}
			in[name] = n
		default:
			in[name] = val
		}
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	c, err := pr.Start(ctx, actor, procID, raw)
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

func (p *portal) consent(ctx context.Context, v ui.Viewer, caseID, step string) error {
	pr, actor, err := p.procs(ctx, v)
	if err != nil {
		return err
	}
	_, err = pr.Submit(ctx, actor, &procedure.Submission{Case: caseID, Step: step})
	return err
}

func (p *portal) readCase(ctx context.Context, v ui.Viewer, id string) (*ui.CitizenCase, error) {
	pr, actor, err := p.procs(ctx, v)
	if err != nil {
		return nil, err
	}
	c, err := pr.Case(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	cv := &ui.CitizenCase{ID: c.ID, Title: c.Procedure, State: c.State, Input: fields(c.Input)}
	if d, ok := pr.Lookup(c.Procedure); ok {
		cv.Title = d.Title
	}
	for _, s := range c.Steps {
		who := s.Official
		if s.Citizen != "" {
			who = "citizen " + s.Citizen
		}
		cv.Steps = append(cv.Steps, ui.Field{Name: s.Step, Value: who + " at " + s.At.UTC().Format("2006-01-02 15:04:05 UTC")})
	}
	if c.Decision != nil {
		cv.Decision = fmt.Sprintf("%s at %s", c.Decision.Output, c.Decision.At.UTC().Format("2006-01-02 15:04:05 UTC"))
		for _, e := range c.Decision.Effects {
			cv.Decision += fmt.Sprintf("; wrote %s record %s", e.Registry, e.ID)
		}
	}
	return cv, nil
}
