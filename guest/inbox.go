package guest

import (
	"context"
	"errors"
	"fmt"

	"github.com/chancery-gov/chancery/services/message"
	"github.com/chancery-gov/chancery/siteapi"
)

// Messages to a citizen (services/message, docs/notices.md) are records of
// the registry the charter's services.messages names, sealed like every
// record; the guest serves them where it is active.

// MessagesConfig is the charter's section services.messages.
type MessagesConfig = message.Config

// AccessDeliver is the kind of the access entry that records a delivery.
const AccessDeliver = message.AccessDeliver

// MessageDraft is what an official sends.
type MessageDraft = message.Draft

// MessageHeader is one message as a citizen's inbox lists it.
type MessageHeader = message.Header

// Message is an opened message.
type Message = message.Message

// ErrNoMessage is wrapped by OpenMessage's refusal of a message that is
// not the citizen's, or does not exist: the two are not told apart.
var ErrNoMessage = message.ErrNoMessage

// MessagesConfig reads services.messages with its defaults.
func (t *Guest) MessagesConfig() (MessagesConfig, error) { return message.ReadConfig(t.charter) }

// box returns the guest's messages where it is active and unsealed, or a
// refusal (boxRefusal).
func (t *Guest) box(what string, write bool) (*message.Box, error) {
	sv := t.Served()
	if m := t.currentMode(); m != siteapi.ModeActive || sv == nil {
		return nil, refused(fmt.Sprintf("%s: served where the guest is active; %s is %s at site %s", what, t.id, m, t.site))
	}
	if write && sv.ReadOnly {
		return nil, refused(fmt.Sprintf("%s: %s is served read-only at site %s", what, t.id, t.site))
	}
	l := sv.Local
	return &message.Box{Charter: l.Charter, Registries: l.Registries, Keys: l.Keys, Log: l.Log, Site: t.site, Now: t.opts.Now}, nil
}

// boxRefusal is a refusal of the messages: a *RefusedError for the
// officials' API, and message.ErrRefused for the inbox beside the issuer.
type boxRefusal struct{ re *RefusedError }

func (e boxRefusal) Error() string   { return e.re.Msg }
func (e boxRefusal) Unwrap() []error { return []error{e.re, message.ErrRefused} }

func refused(msg string) error { return boxRefusal{&RefusedError{Msg: msg}} }

// refusal turns the box's refusals into boxRefusal.
func refusal(err error) error {
	if errors.Is(err, message.ErrRefused) {
		return refused(err.Error())
	}
	return err
}

// DeliverMessage writes a message from official to the citizen person,
// sealed (and, if they registered an age recipient, encrypted to it), and
// records its delivery as an access entry. The person must have a record
// in the population register.
func (t *Guest) DeliverMessage(ctx context.Context, official, person string, d MessageDraft) (*MessageHeader, error) {
	b, err := t.box("message to a citizen", true)
	if err != nil {
		return nil, err
	}
	h, err := b.Deliver(ctx, official, person, d)
	return h, refusal(err)
}

// Inbox lists the messages to person, newest first. Listing opens no body
// and records nothing; OpenMessage does.
func (t *Guest) Inbox(ctx context.Context, person string) ([]MessageHeader, error) {
	b, err := t.box("inbox", false)
	if err != nil {
		return nil, err
	}
	hs, err := b.Inbox(ctx, person)
	return hs, refusal(err)
}

// OpenMessage opens message id for person and records the reading as an
// access entry (a citizen's read, the person sealed) before it returns.
func (t *Guest) OpenMessage(ctx context.Context, person, id string) (*Message, error) {
	b, err := t.box("message", false)
	if err != nil {
		return nil, err
	}
	m, err := b.OpenMessage(ctx, person, id)
	return m, refusal(err)
}
