// Package message keeps the state's messages to its citizens
// (docs/notices.md): records of the registry the charter's
// services.messages names, written at the site where the guest is active.
// The body is sealed under that registry's data key like every record, so
// a host holds only ciphertext, and the person a message is for appears
// only as the blinded index value of its field "person". A citizen who
// registered an age X25519 recipient in the population register
// (services.messages.recipient_field) gets the body encrypted to it as
// well, so that not even the site that serves the inbox can read it after
// delivery. Delivery and every opening are access entries in the ledger.
package message

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/access"
)

// Section is the charter section services.messages.
const Section = "messages"

// Config is the charter's section services.messages.
type Config struct {
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

// Draft is what an official sends.
type Draft struct {
	Subject string
	Body    string
	Lang    string
}

// Header is one message as a citizen's inbox lists it.
type Header struct {
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
	Header
	// Body is the text, unless it is sealed to the citizen: then AgeBody
	// is the age file (ASCII armored) their identity decrypts.
	Body    string `json:"body,omitempty"`
	AgeBody string `json:"age_body,omitempty"`
}

// record is the record a message is stored as.
type record struct {
	Person  string    `json:"person"`
	From    string    `json:"from"`
	Subject string    `json:"subject"`
	Sent    time.Time `json:"sent"`
	Lang    string    `json:"lang,omitempty"`
	Body    string    `json:"body,omitempty"`
	AgeBody string    `json:"age_body,omitempty"`
}

// Limits on what an official sends.
const (
	MaxBody    = 64 << 10
	MaxSubject = 512
)

// ErrRefused is wrapped by every refusal of a request (the caller's to
// fix); ErrNoMessage by the refusal of a message that is not the
// citizen's or does not exist: the two are not told apart.
var (
	ErrRefused   = errors.New("refused")
	ErrNoMessage = errors.New("no such message for this citizen")
)

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// ReadConfig reads services.messages with its defaults and checks it
// against the charter.
func ReadConfig(c *charter.Charter) (Config, error) {
	var cfg Config
	ok, err := c.Service(Section, &cfg)
	if err != nil {
		return cfg, err
	}
	if !ok {
		return cfg, fmt.Errorf("charter v%d of %s has no services.messages: it sends no messages to citizens", c.Version, c.Guest.ID)
	}
	if cfg.Registry == "" {
		cfg.Registry = "messages"
	}
	if cfg.People == "" {
		cfg.People = "people"
	}
	reg, ok := c.Registry(cfg.Registry)
	if !ok {
		return cfg, fmt.Errorf("services.messages.registry: %q is not a registry of the charter", cfg.Registry)
	}
	if !slices.Contains(reg.Index, "person") {
		return cfg, fmt.Errorf("services.messages.registry: registry %s must index the field \"person\"", cfg.Registry)
	}
	if _, ok := c.Registry(cfg.People); !ok {
		return cfg, fmt.Errorf("services.messages.people: %q is not a registry of the charter", cfg.People)
	}
	return cfg, nil
}

// Box is the messages of one guest at the site where it is active.
type Box struct {
	Charter    *charter.Charter
	Registries *registry.Registries
	Keys       *seal.Keyring
	Log        *ledger.Log
	Site       string
	// Epoch is the epoch entries are written in (default the log's, at
	// least 1).
	Epoch func() uint64
	Now   func() time.Time // default time.Now
}

func (b *Box) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Box) epoch() uint64 {
	if b.Epoch != nil {
		return b.Epoch()
	}
	return max(b.Log.Epoch(), 1)
}

var ids = base32.StdEncoding.WithPadding(base32.NoPadding)

// Deliver writes a message from official to the citizen person, sealed
// (and, if they registered an age recipient, encrypted to it), and records
// its delivery as an access entry. The person must have a record in the
// population register.
func (b *Box) Deliver(ctx context.Context, official, person string, d Draft) (*Header, error) {
	cfg, err := ReadConfig(b.Charter)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	switch {
	case person == "":
		return nil, refuse("person: empty")
	case strings.TrimSpace(d.Subject) == "":
		return nil, refuse("subject: empty")
	case len(d.Subject) > MaxSubject:
		return nil, refuse("subject: %d bytes, at most %d", len(d.Subject), MaxSubject)
	case strings.TrimSpace(d.Body) == "":
		return nil, refuse("body: empty")
	case len(d.Body) > MaxBody:
		return nil, refuse("body: %d bytes, at most %d", len(d.Body), MaxBody)
	}
	who, err := b.Registries.Get(ctx, cfg.People, person, registry.AsOf{})
	if err == nil && who.Deleted {
		err = registry.ErrNotFound
	}
	if errors.Is(err, registry.ErrNotFound) {
		return nil, refuse("person: %q has no record in the population register %s", person, cfg.People)
	}
	if err != nil {
		return nil, fmt.Errorf("message to %s: population register: %w", cfg.Registry, err)
	}
	rec := record{Person: person, From: official, Subject: d.Subject, Sent: b.now().UTC().Truncate(time.Second), Lang: d.Lang, Body: d.Body}
	if cfg.RecipientField != "" {
		if r, err := access.LinkValue(who.Data, cfg.RecipientField); err == nil && r != "" {
			if rec.AgeBody, err = sealToAge(r, d.Body); err != nil {
				return nil, refuse("person: the %s of their record in %s: %v", cfg.RecipientField, cfg.People, err)
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
	id := "m-" + strings.ToLower(ids.EncodeToString(raw[:]))
	out, err := b.Registries.Put(ctx, cfg.Registry, id, data, nil)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	if err := b.recordDelivery(ctx, cfg.Registry, official, id, out.Version); err != nil {
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
// the message's blinded id and version. Nothing in it names the citizen:
// the message's record ties it to them, under the registry's keys.
func (b *Box) recordDelivery(ctx context.Context, reg, official, id string, version uint64) error {
	bid := b.Keys.Registry(reg).BlindID(id)
	p, err := json.Marshal(continuity.AccessEntry{Kind: AccessDeliver, Official: official, Reader: continuity.ReaderOfficial, Site: b.Site, Registry: reg, BlindID: bid[:], Version: version})
	if err != nil {
		return err
	}
	if _, err := b.Log.Append(ctx, ledger.Entry{Type: ledger.TypeAccess, Epoch: b.epoch(), Time: b.now(), Payload: p}); err != nil {
		return fmt.Errorf("record the delivery in the ledger: %w", err)
	}
	return nil
}

func headerOf(id string, version, index uint64, m *record) Header {
	return Header{ID: id, From: m.From, Subject: m.Subject, Sent: m.Sent, Lang: m.Lang, Version: version, Index: index, SealedToCitizen: m.AgeBody != ""}
}

// Inbox lists the messages to person, newest first. Listing opens no
// body and records nothing; OpenMessage does.
func (b *Box) Inbox(ctx context.Context, person string) ([]Header, error) {
	cfg, err := ReadConfig(b.Charter)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	recs, err := b.Registries.Find(ctx, cfg.Registry, "person", person)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	out := []Header{}
	for _, r := range recs {
		var m record
		if r.Deleted || json.Unmarshal(r.Data, &m) != nil || m.Person != person {
			continue
		}
		out = append(out, headerOf(r.ID, r.Version, r.Index, &m))
	}
	slices.SortFunc(out, func(a, b Header) int {
		switch {
		case a.Index > b.Index:
			return -1
		case a.Index < b.Index:
			return 1
		}
		return 0
	})
	return out, nil
}

// OpenMessage opens message id for person and records the reading as an access
// entry (a citizen's read, the person sealed in it) before it returns.
func (b *Box) OpenMessage(ctx context.Context, person, id string) (*Message, error) {
	cfg, err := ReadConfig(b.Charter)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	rec, err := b.Registries.Get(ctx, cfg.Registry, id, registry.AsOf{})
	var verr *registry.ValidationError
	if err != nil && !errors.Is(err, registry.ErrNotFound) && !errors.As(err, &verr) {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	var m record
	if err != nil || rec.Deleted || json.Unmarshal(rec.Data, &m) != nil || m.Person != person {
		return nil, fmt.Errorf("message %s: %w", id, ErrNoMessage)
	}
	rd := &access.Recorder{Log: b.Log, Keys: b.Keys, Site: b.Site, Epoch: b.epoch, Now: b.Now}
	p := access.Principal{Kind: access.KindCitizen, ID: person}
	if err := rd.Record(ctx, p, access.Access{Kind: continuity.AccessRecord, Registry: cfg.Registry, ID: id, Version: rec.Version}); err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	return &Message{Header: headerOf(id, rec.Version, rec.Index, &m), Body: m.Body, AgeBody: m.AgeBody}, nil
}
