package continuity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
)

// Format is the value of a signed order's format member and, followed by
// "\n", the domain-separation prefix of every order signature.
const Format = "chancery-order/v1"

// signingPrefix separates order signatures from every other Ed25519
// signature an official makes (charters sign "chancery-charter/v1\n" ‖ …).
const signingPrefix = Format + "\n"

// Access modes of an activation.
const (
	AccessReadOnly  = "read-only"
	AccessReadWrite = "read-write"
)

// TimeLayout is how not_before and expires are written: RFC 3339 in UTC to
// the second, with a literal Z, so that one instant has one spelling.
const TimeLayout = "2006-01-02T15:04:05Z"

// Limits. A signed order is the payload of one ledger entry, so it must fit
// in one; the other bounds keep a hostile file cheap to refuse.
const (
	MaxSignedOrderSize = 32 << 10
	maxReason          = 1024
	maxRegistries      = 64
)

// A signed order must always fit in a ledger entry: this constant does not
// compile if it would not.
const _ = uint(ledger.MaxPayloadSize - MaxSignedOrderSize)

// Order is one governance act of the guest state's officials. Every field is
// covered by their signatures (see CanonicalBytes).
type Order struct {
	// ID is 16 random bytes, lowercase hex: how the ledger and people name
	// the order. An order with an ID already accepted is a replay.
	ID string
	// Guest and Origin are the charter's guest.id and guest.origin, and
	// CharterHash the lowercase hex SHA-256 of the canonical encoding of the
	// charter version the order is issued under: an order signed for one
	// guest, or under one version of its charter, is refused under another.
	Guest       string
	Origin      string
	CharterHash string
	// Action is one of charter.Actions: its quorum rule decides who must sign.
	Action string
	// Epoch is the epoch the order opens (activate, failback: current+1)
	// or the current epoch it is valid in (every other action).
	Epoch uint64
	// Site is, for activate, the embassy activated; for failback, the new
	// writer (the home or another site); for drill, the site drilled; for
	// revoke-site, the site revoked; for rotate-keys, optionally the site
	// whose keys rotate (empty: the guest's). Empty for amend.
	Site string
	// Registries limits activate and drill (and optionally rotate-keys) to
	// these registries, sorted and without repeats; empty means every
	// registry the site holds.
	Registries []string
	// Access is AccessReadOnly or AccessReadWrite for activate, empty
	// otherwise.
	Access string
	// Amendment is, for amend, the lowercase hex hash of the new charter
	// version the order adopts; empty otherwise.
	Amendment string
	// NotBefore and Expires bound when the order may be accepted: from
	// NotBefore (inclusive) to Expires (exclusive). Second precision.
	NotBefore time.Time
	Expires   time.Time
	// Nonce is 16 random bytes, lowercase hex, drawn afresh for every
	// order; a nonce seen in an accepted order is a replay.
	Nonce string
	// Reason says why, for the people who read the ledger later. UTF-8,
	// at most 1024 bytes, no control characters.
	Reason string
}

// Signature is one official's Ed25519 signature over SigningMessage.
type Signature struct {
	Official string
	Sig      []byte
}

// SignedOrder is an order and its signatures: the file officials pass
// around and the payload of a ledger.TypeOrder entry.
type SignedOrder struct {
	Order      Order
	Signatures []Signature
}

// The canonical encoding (docs/orders.md gives it byte for byte) is JSON
// with the members below in this order, every member present, no
// insignificant whitespace, no trailing newline. Validate restricts strings
// so that Go's encoder writes each character literally except '"' and '\',
// which become \" and \\. These types pin that layout: changing one
// changes every order's bytes, so don't.

type canonOrder struct {
	ID          string   `json:"id"`
	Guest       string   `json:"guest"`
	Origin      string   `json:"origin"`
	CharterHash string   `json:"charter"`
	Action      string   `json:"action"`
	Epoch       uint64   `json:"epoch"`
	Site        string   `json:"site"`
	Registries  []string `json:"registries"`
	Access      string   `json:"access"`
	Amendment   string   `json:"amendment"`
	NotBefore   string   `json:"not_before"`
	Expires     string   `json:"expires"`
	Nonce       string   `json:"nonce"`
	Reason      string   `json:"reason"`
}

type canonSignature struct {
	Official string `json:"official"`
	Sig      string `json:"sig"`
}

type canonSigned struct {
	Format     string           `json:"format"`
	Order      canonOrder       `json:"order"`
	Signatures []canonSignature `json:"signatures"`
}

func (o *Order) canon() canonOrder {
	regs := o.Registries
	if regs == nil {
		regs = []string{}
	}
	return canonOrder{
		ID: o.ID, Guest: o.Guest, Origin: o.Origin, CharterHash: o.CharterHash,
		Action: o.Action, Epoch: o.Epoch, Site: o.Site, Registries: regs,
		Access: o.Access, Amendment: o.Amendment,
		NotBefore: o.NotBefore.UTC().Format(TimeLayout), Expires: o.Expires.UTC().Format(TimeLayout),
		Nonce: o.Nonce, Reason: o.Reason,
	}
}

func encodeJSON(v any) []byte {
	b, err := canonicalJSON(v)
	if err != nil {
		// Only strings, integers and slices of them: cannot fail.
		panic("continuity: canonical encoding failed: " + err.Error())
	}
	return b
}

// CanonicalBytes is the order's canonical JSON. It is defined for valid
// orders (see Validate); for an invalid one it is deterministic but means
// nothing, and Sign and Marshal refuse it.
func (o *Order) CanonicalBytes() []byte { return encodeJSON(o.canon()) }

// SigningMessage is what officials sign: "chancery-order/v1\n" ‖
// CanonicalBytes.
func (o *Order) SigningMessage() []byte {
	return append([]byte(signingPrefix), o.CanonicalBytes()...)
}

// NewOrder completes an order drafted in tmpl (Action, Epoch, Site,
// Registries, Access, Amendment, NotBefore, Expires, Reason) for charter c:
// a fresh random ID and Nonce, c's guest, origin and hash, times in UTC to
// the second (truncated), registries sorted. It refuses what Validate
// refuses and what c makes impossible (a site or registry c does not
// have, a registry the site does not hold, activating the home), so that
// officials are not asked to sign an order that can never be accepted.
func NewOrder(c *charter.Charter, tmpl Order) (*Order, error) {
	if c == nil {
		return nil, errors.New("new order: no charter")
	}
	o := tmpl
	var err error
	if o.ID, err = randomHex(); err != nil {
		return nil, fmt.Errorf("new order: id: %w", err)
	}
	if o.Nonce, err = randomHex(); err != nil {
		return nil, fmt.Errorf("new order: nonce: %w", err)
	}
	o.Guest, o.Origin, o.CharterHash = c.Guest.ID, c.Guest.Origin, c.HashHex()
	o.NotBefore = o.NotBefore.UTC().Truncate(time.Second)
	o.Expires = o.Expires.UTC().Truncate(time.Second)
	o.Registries = slices.Clone(o.Registries)
	slices.Sort(o.Registries)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	if err := checkCharterFields(c, &o); err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	return &o, nil
}

func randomHex() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Validate checks the order on its own, without a charter: every field
// well formed, the fields an action needs present and the others empty,
// NotBefore before Expires. The error wraps ErrInvalid and names each
// field at fault.
func (o *Order) Validate() error {
	if err := o.check(); err != nil {
		return fmt.Errorf("order %s: %w: %w", orderName(o.ID), ErrInvalid, err)
	}
	return nil
}

// check returns Validate's problems, joined, without the sentinel.
func (o *Order) check() error {
	var p []error
	add := func(field, format string, args ...any) {
		p = append(p, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !isHex(o.ID, 32) {
		add("id", "%q is not 16 bytes of lowercase hex", abbreviate(o.ID))
	}
	if !isID(o.Guest, false) {
		add("guest", "%q must be non-empty and only a-z, 0-9 and '-'", abbreviate(o.Guest))
	}
	if !isNoteName(o.Origin) {
		add("origin", "%q must be a signed-note key name: no spaces, no '+'", abbreviate(o.Origin))
	}
	if !isHex(o.CharterHash, 64) {
		add("charter", "%q is not a SHA-256 in lowercase hex", abbreviate(o.CharterHash))
	}
	if !slices.Contains(charter.Actions(), o.Action) {
		add("action", "%q is not one of %s", abbreviate(o.Action), strings.Join(charter.Actions(), ", "))
	}
	raises := o.Action == charter.ActionActivate || o.Action == charter.ActionFailback
	switch {
	case o.Epoch == 0:
		add("epoch", "must be at least 1")
	case raises && o.Epoch < 2:
		add("epoch", "%s opens a new epoch after the home's epoch 1, so it is at least 2", o.Action)
	}
	switch o.Action {
	case charter.ActionActivate, charter.ActionFailback, charter.ActionDrill, charter.ActionRevokeSite:
		if o.Site == "" {
			add("site", "%s needs a site", o.Action)
		}
	case charter.ActionAmend:
		if o.Site != "" {
			add("site", "must be empty for amend")
		}
	}
	if o.Site != "" && !isID(o.Site, false) {
		add("site", "%q must be only a-z, 0-9 and '-'", abbreviate(o.Site))
	}
	switch o.Action {
	case charter.ActionActivate, charter.ActionDrill, charter.ActionRotateKeys:
		if len(o.Registries) > maxRegistries {
			add("registries", "%d registries, at most %d", len(o.Registries), maxRegistries)
		}
		for i, r := range o.Registries {
			if !isID(r, true) {
				add(fmt.Sprintf("registries[%d]", i), "%q must be only a-z, 0-9, '-' and '_'", abbreviate(r))
			} else if i > 0 && r <= o.Registries[i-1] {
				add(fmt.Sprintf("registries[%d]", i), "%q is repeated or out of order: registries are sorted, each once", r)
			}
		}
	default:
		if len(o.Registries) > 0 {
			add("registries", "must be empty for %s", o.Action)
		}
	}
	if o.Action == charter.ActionActivate {
		if o.Access != AccessReadOnly && o.Access != AccessReadWrite {
			add("access", "%q: activate needs %s or %s", abbreviate(o.Access), AccessReadOnly, AccessReadWrite)
		}
	} else if o.Access != "" {
		add("access", "must be empty for %s (only activate has an access mode)", o.Action)
	}
	if o.Action == charter.ActionAmend {
		switch {
		case !isHex(o.Amendment, 64):
			add("amendment", "%q: amend needs the new charter version's hash in lowercase hex", abbreviate(o.Amendment))
		case o.Amendment == o.CharterHash:
			add("amendment", "is the hash of the charter the order is issued under, not of a new version")
		}
	} else if o.Amendment != "" {
		add("amendment", "must be empty for %s", o.Action)
	}
	nbOK := checkTime(add, "not_before", o.NotBefore)
	exOK := checkTime(add, "expires", o.Expires)
	if nbOK && exOK && !o.NotBefore.Before(o.Expires) {
		add("expires", "%s is not after not_before %s", o.Expires.UTC().Format(TimeLayout), o.NotBefore.UTC().Format(TimeLayout))
	}
	if !isHex(o.Nonce, 32) {
		add("nonce", "%q is not 16 bytes of lowercase hex", abbreviate(o.Nonce))
	}
	switch {
	case len(o.Reason) > maxReason:
		add("reason", "%d bytes, at most %d", len(o.Reason), maxReason)
	case !utf8.ValidString(o.Reason):
		add("reason", "is not valid UTF-8")
	case strings.IndexFunc(o.Reason, isSpecial) >= 0:
		add("reason", "contains control characters, line separators or bidi controls")
	}
	return errors.Join(p...)
}

func checkTime(add func(string, string, ...any), field string, t time.Time) bool {
	switch {
	case t.IsZero():
		add(field, "missing")
	case !t.Equal(t.Truncate(time.Second)):
		add(field, "%s has a fraction of a second: orders are to the second", t.UTC().Format(time.RFC3339Nano))
	case t.Unix() < 0 || t.UTC().Year() > 9999:
		add(field, "%s is outside 1970..9999", t.UTC().Format(time.RFC3339))
	default:
		return true
	}
	return false
}

// isSpecial is what Reason may not hold: control characters; U+2028 and
// U+2029, which Go's JSON encoder escapes (excluding them keeps every
// character of a valid order literal in its canonical bytes); and bidi
// controls, which could make the reason an official reads before signing
// differ from the bytes they sign.
func isSpecial(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}

// Sign signs so's order as official with key and adds the signature in its
// place (signatures are kept sorted by official id). It refuses an invalid
// order and an official who has already signed: each official counts once,
// and a second signature would only hide a mistake. Sign cannot check that
// key is the one the charter gives official; Verify does.
func Sign(so *SignedOrder, official string, key ed25519.PrivateKey) error {
	if so == nil {
		return errors.New("sign order: no order")
	}
	if err := so.Order.Validate(); err != nil {
		return fmt.Errorf("sign order: %w", err)
	}
	if !isID(official, false) {
		return fmt.Errorf("sign order %s: official %q must be a charter id (a-z, 0-9, '-')", so.Order.ID, abbreviate(official))
	}
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign order %s as %s: private key is %d bytes, want %d", so.Order.ID, official, len(key), ed25519.PrivateKeySize)
	}
	i, found := slices.BinarySearchFunc(so.Signatures, official, func(s Signature, id string) int { return strings.Compare(s.Official, id) })
	if found || slices.ContainsFunc(so.Signatures, func(s Signature) bool { return s.Official == official }) {
		return fmt.Errorf("sign order %s: %w: official %s has already signed it", so.Order.ID, ErrInvalid, official)
	}
	sig := ed25519.Sign(key, so.Order.SigningMessage())
	so.Signatures = slices.Insert(so.Signatures, i, Signature{Official: official, Sig: sig})
	return nil
}

// Signers returns the ids of the officials who signed, in order.
func (so *SignedOrder) Signers() []string {
	out := make([]string, len(so.Signatures))
	for i, s := range so.Signatures {
		out[i] = s.Official
	}
	return out
}

// Marshal encodes the signed order:
//
//	{"format":"chancery-order/v1","order":<CanonicalBytes>,"signatures":[{"official":ID,"sig":BASE64},…]}
//
// with signatures sorted by official id, each official once, each
// signature 64 bytes in standard base64. The bytes of the order member are
// exactly the order's CanonicalBytes.
func (so *SignedOrder) Marshal() ([]byte, error) {
	if so == nil {
		return nil, errors.New("marshal order: no order")
	}
	b, err := so.encode()
	if err != nil {
		return nil, fmt.Errorf("marshal order %s: %w: %w", orderName(so.Order.ID), ErrInvalid, err)
	}
	return b, nil
}

func (so *SignedOrder) encode() ([]byte, error) {
	if err := so.Order.check(); err != nil {
		return nil, err
	}
	cs := canonSigned{Format: Format, Order: so.Order.canon(), Signatures: make([]canonSignature, 0, len(so.Signatures))}
	for i, s := range so.Signatures {
		switch {
		case !isID(s.Official, false):
			return nil, fmt.Errorf("signatures[%d].official: %q is not a charter id", i, abbreviate(s.Official))
		case i > 0 && s.Official <= so.Signatures[i-1].Official:
			return nil, fmt.Errorf("signatures[%d].official: %s is repeated or out of order (one signature per official, sorted by id)", i, s.Official)
		case len(s.Sig) != ed25519.SignatureSize:
			return nil, fmt.Errorf("signatures[%d].sig: %d bytes, want %d (official %s)", i, len(s.Sig), ed25519.SignatureSize, s.Official)
		}
		cs.Signatures = append(cs.Signatures, canonSignature{Official: s.Official, Sig: base64.StdEncoding.EncodeToString(s.Sig)})
	}
	b := encodeJSON(cs)
	if len(b) > MaxSignedOrderSize {
		return nil, fmt.Errorf("%d bytes, at most %d fit", len(b), MaxSignedOrderSize)
	}
	return b, nil
}

// ParseSignedOrder decodes a signed order strictly: it accepts exactly the
// bytes Marshal produces and nothing else — no unknown or repeated
// members, no other member order, whitespace, escapes, number or time
// spellings, no unsorted or repeated signers. It does not verify the
// signatures: Verify does, against a charter. Errors wrap ErrInvalid.
func ParseSignedOrder(b []byte) (*SignedOrder, error) {
	so, err := parseSignedOrder(b)
	if err != nil {
		return nil, fmt.Errorf("parse order: %w: %w", ErrInvalid, err)
	}
	return so, nil
}

func parseSignedOrder(b []byte) (*SignedOrder, error) {
	if len(b) > MaxSignedOrderSize {
		return nil, fmt.Errorf("%d bytes, at most %d", len(b), MaxSignedOrderSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var cs canonSigned
	if err := dec.Decode(&cs); err != nil {
		return nil, err
	}
	if cs.Format != Format {
		return nil, fmt.Errorf("format: %q, want %q", abbreviate(cs.Format), Format)
	}
	c := cs.Order
	o := Order{
		ID: c.ID, Guest: c.Guest, Origin: c.Origin, CharterHash: c.CharterHash, Action: c.Action,
		Epoch: c.Epoch, Site: c.Site, Registries: c.Registries, Access: c.Access, Amendment: c.Amendment,
		Nonce: c.Nonce, Reason: c.Reason,
	}
	if len(o.Registries) == 0 {
		o.Registries = nil
	}
	var err error
	if o.NotBefore, err = parseTime(c.NotBefore); err != nil {
		return nil, fmt.Errorf("order.not_before: %w", err)
	}
	if o.Expires, err = parseTime(c.Expires); err != nil {
		return nil, fmt.Errorf("order.expires: %w", err)
	}
	so := &SignedOrder{Order: o}
	for i, s := range cs.Signatures {
		sig, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("signatures[%d].sig (official %s): not standard base64", i, abbreviate(s.Official))
		}
		so.Signatures = append(so.Signatures, Signature{Official: s.Official, Sig: sig})
	}
	out, err := so.encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(out, b) {
		n := 0
		for n < len(out) && n < len(b) && out[n] == b[n] {
			n++
		}
		return nil, fmt.Errorf("not in canonical form (first difference at byte %d; repeated or unknown members, whitespace, escapes or spellings differ from docs/orders.md)", n)
	}
	return so, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Format(TimeLayout) != s {
		return time.Time{}, fmt.Errorf("%q is not a UTC time to the second (%s)", abbreviate(s), TimeLayout)
	}
	return t, nil
}

// String describes the order in one line for people: action, site,
// registries, access, epoch and validity.
func (o *Order) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "order %s: %s", orderName(o.ID), o.Action)
	if o.Site != "" {
		fmt.Fprintf(&b, " %s", o.Site)
	}
	switch o.Action {
	case charter.ActionActivate, charter.ActionDrill:
		if len(o.Registries) == 0 {
			b.WriteString(", every registry the site holds")
		} else {
			fmt.Fprintf(&b, ", registries %s", strings.Join(o.Registries, ","))
		}
	case charter.ActionRotateKeys:
		if len(o.Registries) > 0 {
			fmt.Fprintf(&b, ", registries %s", strings.Join(o.Registries, ","))
		}
	case charter.ActionAmend:
		fmt.Fprintf(&b, " to charter %s", o.Amendment)
	}
	if o.Access != "" {
		fmt.Fprintf(&b, ", %s", o.Access)
	}
	fmt.Fprintf(&b, ", epoch %d, guest %s, valid %s to %s", o.Epoch, o.Guest,
		o.NotBefore.UTC().Format(TimeLayout), o.Expires.UTC().Format(TimeLayout))
	return b.String()
}

func orderName(id string) string {
	if isHex(id, 32) {
		return id
	}
	return fmt.Sprintf("%q", abbreviate(id))
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isID is the charter's id rule ([a-z0-9-]+, at most 128 bytes; '_' too
// for registry names), so an order can only name what a charter can hold.
func isID(s string, underscore bool) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || underscore && c == '_') {
			return false
		}
	}
	return true
}

// isNoteName is the charter's rule for guest.origin.
func isNoteName(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.Contains(s, "+") &&
		strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) < 0
}

// abbreviate keeps hostile values from flooding error messages.
func abbreviate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
