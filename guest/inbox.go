package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/siteapi"
)

// Messages to a citizen (docs/notices.md) are records of the registry the
// charter's services.messages names, written by the site where the guest
// is active: the body is sealed under that registry's data key like every
// record, so a host holds only ciphertext, and the person it is for
// appears only as the blinded index value of the field "person". A
// citizen who registered an age X25519 recipient in the population
// register (services.messages.recipient_field) gets the body encrypted to
// it as well, so that not even the site that serves the inbox can read it
// after delivery. Delivery and every opening are access entries.

// MessagesConfig is the charter's section services.messages.
type MessagesConfig struct {
	// Registry keeps the messages (default "messages"); its index must
	// include the field "person".
	Registry string `yaml:"registry"`
	// People is the population register whose record ids are person ids
	// (default "people").
	People string `yaml:"people"`
	// RecipientField, if set, is the field of a person's record holding
	// their age X25519 recipient ("age1…").
	RecipientField string `yaml:"recipient_field,omitempty"`
}

// AccessDeliver is the kind of the access entry that records a message's
// delivery: an official wrote it for the citizen.
const AccessDeliver = "deliver"

// MessageDraft is what an official sends.
type MessageDraft struct {
	Subject string
	Body    string
	Lang    string
}

// MessageHeader is one message as a citizen's inbox lists it.
type MessageHeader struct {
	ID      string    `json:"id"`
	From    string    `json:"from"` // the official who sent it
	Subject string    `json:"subject"`
	Sent    time.Time `json:"sent"`
	Lang    string    `json:"lang,omitempty"`
	// Version and Index are the message record's version and ledger index.
	Version uint64 `json:"version"`
	Index   uint64 `json:"ledger_index"`
	// SealedToCitizen: the body is encrypted to the citizen's age
	// recipient and only their own key opens it.
	SealedToCitizen bool `json:"sealed_to_citizen,omitempty"`
}

// Message is an opened message.
type Message struct {
	MessageHeader
	// Body is the text, unless it is sealed to the citizen: then AgeBody
	// is the age file (ASCII armored) their identity decrypts.
	Body    string `json:"body,omitempty"`
	AgeBody string `json:"age_body,omitempty"`
}

// messageRecord is the record a message is stored as.
type messageRecord struct {
	Person  string    `json:"person"`
	From    string    `json:"from"`
	Subject string    `json:"subject"`
	Sent    time.Time `json:"sent"`
	Lang    string    `json:"lang,omitempty"`
	Body    string    `json:"body,omitempty"`
	AgeBody string    `json:"age_body,omitempty"`
}

// maxMessageBody bounds a message's text.
const maxMessageBody = 64 << 10

// MessagesConfig reads services.messages with its defaults.
func (t *Guest) MessagesConfig() (MessagesConfig, error) {
	var cfg MessagesConfig
	ok, err := t.charter.Service("messages", &cfg)
	if err != nil {
		return cfg, err
	}
	if !ok {
		return cfg, fmt.Errorf("charter v%d of %s has no services.messages: it sends no messages to citizens", t.charter.Version, t.id)
	}
	if cfg.Registry == "" {
		cfg.Registry = "messages"
	}
	if cfg.People == "" {
		cfg.People = "people"
	}
	reg, ok := t.charter.Registry(cfg.Registry)
	if !ok {
		return cfg, fmt.Errorf("services.messages.registry: %q is not a registry of the charter", cfg.Registry)
	}
	indexed := false
	for _, f := range reg.Index {
		indexed = indexed || f == "person"
	}
	if !indexed {
		return cfg, fmt.Errorf("services.messages.registry: registry %s must index the field \"person\"", cfg.Registry)
	}
	if _, ok := t.charter.Registry(cfg.People); !ok {
		return cfg, fmt.Errorf("services.messages.people: %q is not a registry of the charter", cfg.People)
	}
	return cfg, nil
}

// writable returns the unsealed state of a site that writes, or a refusal.
func (t *Guest) writable(what string) (*Served, error) {
	sv := t.Served()
	if m := t.currentMode(); m != siteapi.ModeActive || sv == nil {
		return nil, &RefusedError{Msg: fmt.Sprintf("%s: served where the guest is active; %s is %s at site %s", what, t.id, m, t.site)}
	}
	return sv, nil
}

var messageIDs = base32.StdEncoding.WithPadding(base32.NoPadding)

// DeliverMessage writes a message from official to the citizen person,
// sealed (and, if they registered an age recipient, encrypted to it), and
// records its delivery as an access entry. The person must have a record
// in the population register.
func (t *Guest) DeliverMessage(ctx context.Context, official, person string, d MessageDraft) (*MessageHeader, error) {
	cfg, err := t.MessagesConfig()
	if err != nil {
		return nil, &RefusedError{Msg: err.Error()}
	}
	switch {
	case strings.TrimSpace(d.Subject) == "":
		return nil, &RefusedError{Msg: "message: subject is empty"}
	case strings.TrimSpace(d.Body) == "":
		return nil, &RefusedError{Msg: "message: body is empty"}
	case len(d.Body) > maxMessageBody:
		return nil, &RefusedError{Msg: fmt.Sprintf("message: body of %d bytes, at most %d", len(d.Body), maxMessageBody)}
	case len(d.Subject) > 512:
		return nil, &RefusedError{Msg: "message: subject longer than 512 bytes"}
	case person == "":
		return nil, &RefusedError{Msg: "message: person is empty"}
	}
	sv, err := t.writable("message to a citizen")
	if err != nil {
		return nil, err
	}
	if sv.ReadOnly {
		return nil, &RefusedError{Msg: fmt.Sprintf("message to a citizen: %s is served read-only at site %s", t.id, t.site)}
	}
	regs := sv.Local.Registries
	who, err := regs.Get(ctx, cfg.People, person, registry.AsOf{})
	if err == nil && who.Deleted {
		err = registry.ErrNotFound
	}
	if err != nil {
		return nil, &RefusedError{Msg: fmt.Sprintf("message: person %q: no record in the population register %s", person, cfg.People)}
	}
	rec := messageRecord{Person: person, From: official, Subject: d.Subject, Sent: t.opts.Now().UTC().Truncate(time.Second), Lang: d.Lang, Body: d.Body}
	if cfg.RecipientField != "" {
		if r, err := access.LinkValue(who.Data, cfg.RecipientField); err == nil && r != "" {
			if rec.AgeBody, err = sealToAge(r, d.Body); err != nil {
				return nil, &RefusedError{Msg: fmt.Sprintf("message: person %q: %s %s: %v", person, cfg.People, cfg.RecipientField, err)}
			}
			rec.Body = ""
		}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var raw [15]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	id := "m-" + strings.ToLower(messageIDs.EncodeToString(raw[:]))
	out, err := regs.Put(ctx, cfg.Registry, id, data, nil)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	if err := t.recordDelivery(ctx, sv, cfg.Registry, official, id, out.Version); err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	h := headerOf(id, out.Version, out.Index, &rec)
	return &h, nil
}

// sealToAge encrypts body to an age X25519 recipient, ASCII armored.
func sealToAge(recipient, body string) (string, error) {
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// recordDelivery appends the access entry of a delivery: the official,
// the message's blinded id and version; nothing names the citizen.
func (t *Guest) recordDelivery(ctx context.Context, sv *Served, reg, official, id string, version uint64) error {
	b := sv.Local.Keys.Registry(reg).BlindID(id)
	p, err := json.Marshal(continuity.AccessEntry{Kind: AccessDeliver, Official: official, Reader: continuity.ReaderOfficial, Site: t.site, Registry: reg, BlindID: b[:], Version: version})
	if err != nil {
		return err
	}
	epoch := max(sv.Local.Log.Epoch(), 1)
	if _, err := sv.Local.Log.Append(ctx, ledger.Entry{Type: ledger.TypeAccess, Epoch: epoch, Time: t.opts.Now(), Payload: p}); err != nil {
		return fmt.Errorf("record the delivery in the ledger: %w", err)
	}
	return nil
}

func headerOf(id string, version, index uint64, m *messageRecord) MessageHeader {
	return MessageHeader{ID: id, From: m.From, Subject: m.Subject, Sent: m.Sent, Lang: m.Lang, Version: version, Index: index, SealedToCitizen: m.AgeBody != ""}
}

// Inbox lists the messages to person, newest first. Listing opens no body
// and records nothing; OpenMessage does.
func (t *Guest) Inbox(ctx context.Context, person string) ([]MessageHeader, error) {
	cfg, err := t.MessagesConfig()
	if err != nil {
		return nil, &RefusedError{Msg: err.Error()}
	}
	sv, err := t.writable("inbox")
	if err != nil {
		return nil, err
	}
	recs, err := sv.Local.Registries.Find(ctx, cfg.Registry, "person", person)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	out := []MessageHeader{}
	for _, r := range recs {
		var m messageRecord
		if r.Deleted || json.Unmarshal(r.Data, &m) != nil || m.Person != person {
			continue
		}
		out = append(out, headerOf(r.ID, r.Version, r.Index, &m))
	}
	// Newest first; ties by id so the order is stable.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].Index > out[j-1].Index); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// ErrNoMessage is wrapped by OpenMessage's refusal of a message that is
// not the citizen's, or does not exist: the two are not told apart.
var ErrNoMessage = errors.New("no such message for this citizen")

// OpenMessage opens message id for person and records the reading as an
// access entry (a citizen's read, the person sealed) before it returns.
func (t *Guest) OpenMessage(ctx context.Context, person, id string) (*Message, error) {
	cfg, err := t.MessagesConfig()
	if err != nil {
		return nil, &RefusedError{Msg: err.Error()}
	}
	sv, err := t.writable("message")
	if err != nil {
		return nil, err
	}
	rec, err := sv.Local.Registries.Get(ctx, cfg.Registry, id, registry.AsOf{})
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	var m messageRecord
	if err != nil || rec.Deleted || json.Unmarshal(rec.Data, &m) != nil || m.Person != person {
		return nil, fmt.Errorf("message %s: %w", id, ErrNoMessage)
	}
	rd := &access.Recorder{Log: sv.Local.Log, Keys: sv.Local.Keys, Site: t.site, Now: t.opts.Now}
	p := access.Principal{Kind: access.KindCitizen, ID: person}
	if err := rd.Record(ctx, p, access.Access{Kind: continuity.AccessRecord, Registry: cfg.Registry, ID: id, Version: rec.Version}); err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	return &Message{MessageHeader: headerOf(id, rec.Version, rec.Index, &m), Body: m.Body, AgeBody: m.AgeBody}, nil
}
