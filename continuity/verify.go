package continuity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
)

// Why an order is refused. Every refusal wraps exactly one of these and
// says in words what is wrong and with which field, official or order.
var (
	// ErrInvalid: a field is malformed, missing, or names something the
	// charter does not allow for the action (see Validate and Verify).
	ErrInvalid = errors.New("invalid order")
	// ErrGuest: the order was issued for another guest, origin or charter
	// version.
	ErrGuest = errors.New("order is for another guest or charter")
	// ErrUnknownOfficial: a signer is not an official of the charter.
	ErrUnknownOfficial = errors.New("unknown official")
	// ErrSignature: a signature does not verify under the official's key.
	ErrSignature = errors.New("bad signature")
	// ErrQuorum: the valid signatures do not meet the charter's rule for
	// the action. It is charter.ErrQuorumNotMet, so either matches.
	ErrQuorum = charter.ErrQuorumNotMet
	// ErrNotYetValid: now is before the order's not_before.
	ErrNotYetValid = errors.New("order not yet valid")
	// ErrExpired: now is at or after the order's expires.
	ErrExpired = errors.New("order expired")
	// ErrReplayed: an order with this id or nonce was already accepted.
	ErrReplayed = errors.New("order replayed")
	// ErrEpoch: the order does not name the epoch it must (current+1 for
	// activate and failback, current for the others).
	ErrEpoch = errors.New("order out of epoch")
)

// History is what a verifier knows of the orders already accepted (in its
// ledger): whether an id or a nonce was used.
type History interface {
	HasOrderID(id string) bool
	HasNonce(nonce string) bool
}

// State is what the verifier knows at the time of verifying.
type State struct {
	// Epoch is the current epoch (1 is the home's, before any activation).
	Epoch uint64
	// Writer is the site that writes the current epoch.
	Writer string
	// Revoked lists the sites revoked by accepted orders: they can be
	// neither activated, drilled, failed back to nor revoked again.
	Revoked []string
	// History answers replays. Required: a verifier that cannot tell a
	// replay must not accept anything.
	History History
}

// SignerCheck is what one signature of an order counts for.
type SignerCheck struct {
	Official string
	// Roles are the official's roles in the charter (nil if unknown).
	Roles []string
	// Err says why the signature counts for nothing: it wraps
	// ErrUnknownOfficial or ErrSignature. A repeated official is not an
	// error but counts once (Repeat).
	Err error
	// Repeat is set on the second and later signatures of one official.
	Repeat bool
	// Counted is set when the signature is good, the first of its
	// official, and the official holds a role in the action's rule.
	Counted bool
}

// Tally is who signed an order and whether they meet the action's quorum.
type Tally struct {
	Action string
	// Rule is the charter's quorum rule for Action (zero if it has none).
	Rule    charter.Rule
	Signers []SignerCheck
	// Quorum is nil when the valid signatures meet Rule; otherwise it
	// wraps ErrQuorum and says what is missing.
	Quorum error
}

// TallyOrder checks every signature of so against c and applies the quorum
// rule of the order's action to the officials whose signatures verify,
// each counted once. It never fails; what is wrong is in the result.
func TallyOrder(c *charter.Charter, so *SignedOrder) *Tally {
	o := &so.Order
	t := &Tally{Action: o.Action}
	rule, ok := c.Rule(o.Action)
	t.Rule = rule
	msg := o.SigningMessage()
	seen := map[string]bool{}
	var valid []charter.Official
	for _, s := range so.Signatures {
		sc := SignerCheck{Official: s.Official}
		off, known := c.Official(s.Official)
		switch {
		case !known:
			sc.Err = fmt.Errorf("%w: %q is not an official of charter %s v%d", ErrUnknownOfficial, abbreviate(s.Official), c.Guest.ID, c.Version)
		default:
			sc.Roles = slices.Clone(off.Roles)
			pub, err := off.PublicKey()
			if err != nil || len(s.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, s.Sig) {
				sc.Err = fmt.Errorf("%w by official %s", ErrSignature, s.Official)
				break
			}
			if seen[s.Official] {
				sc.Repeat = true
				break
			}
			seen[s.Official] = true
			valid = append(valid, *off)
			sc.Counted = ok && slices.ContainsFunc(rule.Of, off.HasRole)
		}
		t.Signers = append(t.Signers, sc)
	}
	if !ok {
		t.Quorum = fmt.Errorf("%w: charter %s v%d has no quorum rule for %q", ErrQuorum, c.Guest.ID, c.Version, abbreviate(o.Action))
		return t
	}
	if err := rule.Satisfied(valid); err != nil {
		var notes []string
		for _, sc := range t.Signers {
			switch {
			case sc.Err != nil:
				notes = append(notes, sc.Err.Error())
			case sc.Repeat:
				notes = append(notes, fmt.Sprintf("%s signed more than once and counts once", sc.Official))
			case !sc.Counted:
				notes = append(notes, fmt.Sprintf("%s holds no role in the %s rule (roles %s)", sc.Official, o.Action, strings.Join(sc.Roles, ",")))
			}
		}
		note := ""
		if len(notes) > 0 {
			note = " (not counted: " + strings.Join(notes, "; ") + ")"
		}
		t.Quorum = fmt.Errorf("%s needs %s: %w%s", o.Action, rule, err, note)
	}
	return t
}

// Check verifies everything about so that does not depend on the ledger:
// the order is well formed, issued for c's guest, origin and version,
// names sites and registries c allows for the action, every signature is by
// an official of c and verifies, the officials meet c's quorum rule for the
// action, and now is within [not_before, expires). It returns the order,
// the tally (for people: who signed, what is missing; nil if the order is
// malformed) and the first refusal in that order of checks. c must already
// be verified (charter.VerifyChain).
func Check(c *charter.Charter, so *SignedOrder, now time.Time) (*Order, *Tally, error) {
	if c == nil || so == nil {
		return nil, nil, errors.New("verify order: no charter or no order")
	}
	o := so.Order
	o.Registries = slices.Clone(o.Registries)
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	name := o.ID
	switch {
	case o.Guest != c.Guest.ID:
		return nil, nil, fmt.Errorf("order %s: %w: guest is %s, the charter's is %s", name, ErrGuest, o.Guest, c.Guest.ID)
	case o.Origin != c.Guest.Origin:
		return nil, nil, fmt.Errorf("order %s: %w: origin is %s, the charter's is %s", name, ErrGuest, o.Origin, c.Guest.Origin)
	case o.CharterHash != c.HashHex():
		return nil, nil, fmt.Errorf("order %s: %w: issued under charter %s, this is charter %s v%d (%s)", name, ErrGuest, o.CharterHash, c.Guest.ID, c.Version, c.HashHex())
	}
	if err := checkCharterFields(c, &o); err != nil {
		return nil, nil, err
	}
	t := TallyOrder(c, so)
	var bad []error
	for _, sc := range t.Signers {
		if sc.Err != nil {
			bad = append(bad, sc.Err)
		}
	}
	// A bad or stray signature refuses the order rather than being ignored:
	// it means someone is confused or lying, and the ledger must not record
	// it as if it were fine.
	if len(bad) > 0 {
		return &o, t, fmt.Errorf("order %s: %w", name, errors.Join(bad...))
	}
	if t.Quorum != nil {
		return &o, t, fmt.Errorf("order %s: %w", name, t.Quorum)
	}
	switch {
	case now.Before(o.NotBefore):
		return &o, t, fmt.Errorf("order %s: %w: not before %s, it is %s", name, ErrNotYetValid, o.NotBefore.UTC().Format(TimeLayout), now.UTC().Format(TimeLayout))
	case !now.Before(o.Expires):
		return &o, t, fmt.Errorf("order %s: %w: expired at %s, it is %s", name, ErrExpired, o.Expires.UTC().Format(TimeLayout), now.UTC().Format(TimeLayout))
	}
	return &o, t, nil
}

// Verify decides whether so takes effect: Check, then against st that the
// order is no replay (its id and nonce unused), names the right epoch, and
// does not revoke the current writer, fail back to it, or touch a revoked
// site. It returns the order to append to the ledger, or the refusal: an
// error wrapping one of ErrInvalid, ErrGuest, ErrUnknownOfficial,
// ErrSignature, ErrQuorum, ErrNotYetValid, ErrExpired, ErrReplayed or
// ErrEpoch, naming the reason. Verify is pure; to verify and fold in one
// step under a lock, use Epochs.Accept.
func Verify(c *charter.Charter, so *SignedOrder, st State, now time.Time) (*Order, error) {
	if err := st.check(c); err != nil {
		return nil, err
	}
	o, _, err := Check(c, so, now)
	if err != nil {
		return nil, err
	}
	name := o.ID
	// Replay before epoch: a replayed activation also names a past epoch,
	// but "replayed" is the truth.
	switch {
	case st.History.HasOrderID(o.ID):
		return nil, fmt.Errorf("order %s: %w: an order with this id was already accepted", name, ErrReplayed)
	case st.History.HasNonce(o.Nonce):
		return nil, fmt.Errorf("order %s: %w: nonce %s was already used by an accepted order", name, ErrReplayed, o.Nonce)
	}
	if raisesEpoch(o.Action) && st.Epoch == math.MaxUint64 {
		return nil, fmt.Errorf("order %s: %w: epoch %d is the last there is", name, ErrEpoch, st.Epoch)
	}
	if want := wantEpoch(o.Action, st.Epoch); o.Epoch != want {
		if raisesEpoch(o.Action) {
			return nil, fmt.Errorf("order %s: %w: %s must open the next epoch %d (current is %d), it names %d", name, ErrEpoch, o.Action, want, st.Epoch, o.Epoch)
		}
		return nil, fmt.Errorf("order %s: %w: %s must name the current epoch %d, it names %d", name, ErrEpoch, o.Action, want, o.Epoch)
	}
	if slices.Contains(st.Revoked, o.Site) {
		return nil, fmt.Errorf("order %s: %w: site: %s was revoked by an earlier order", name, ErrInvalid, o.Site)
	}
	switch o.Action {
	case charter.ActionRevokeSite:
		if o.Site == st.Writer {
			return nil, fmt.Errorf("order %s: %w: site: %s writes the current epoch %d and cannot be revoked; fail back or activate another site first", name, ErrInvalid, o.Site, st.Epoch)
		}
	case charter.ActionFailback:
		if o.Site == st.Writer {
			return nil, fmt.Errorf("order %s: %w: site: %s already writes the current epoch %d", name, ErrInvalid, o.Site, st.Epoch)
		}
	}
	return o, nil
}

func (st State) check(c *charter.Charter) error {
	switch {
	case st.Epoch == 0:
		return errors.New("verify order: state: epoch 0 (the home's first epoch is 1)")
	case st.History == nil:
		return errors.New("verify order: state: no history of accepted orders, so replays cannot be refused")
	}
	if c != nil {
		if _, ok := c.Site(st.Writer); !ok {
			return fmt.Errorf("verify order: state: writer %q is not a site of charter %s v%d", abbreviate(st.Writer), c.Guest.ID, c.Version)
		}
	}
	return nil
}

func raisesEpoch(action string) bool {
	return action == charter.ActionActivate || action == charter.ActionFailback
}

func wantEpoch(action string, current uint64) uint64 {
	if raisesEpoch(action) {
		return current + 1
	}
	return current
}

// checkCharterFields checks what the order names against the charter:
// sites by role for the action, registries that exist and (for activate
// and drill) are placed at the site. Errors wrap ErrInvalid.
func checkCharterFields(c *charter.Charter, o *Order) error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("order %s: %w: %s: %s", o.ID, ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	var site *charter.Site
	if o.Site != "" {
		s, ok := c.Site(o.Site)
		if !ok {
			return fail("site", "%s is not a site of charter %s v%d", o.Site, c.Guest.ID, c.Version)
		}
		site = s
	}
	switch o.Action {
	case charter.ActionActivate, charter.ActionDrill, charter.ActionFailback, charter.ActionRevokeSite:
		if site == nil {
			return fail("site", "%s needs a site", o.Action)
		}
	}
	switch o.Action {
	case charter.ActionActivate, charter.ActionDrill:
		if site.Role != charter.RoleEmbassy {
			return fail("site", "%s is the %s site; %s takes an embassy", o.Site, site.Role, o.Action)
		}
	case charter.ActionFailback:
		if site.Role != charter.RoleHome && site.Role != charter.RoleEmbassy {
			return fail("site", "%s has role %q; failback names the home or an embassy", o.Site, site.Role)
		}
	case charter.ActionRevokeSite:
		if site.Role == charter.RoleHome {
			return fail("site", "%s is the home site, which cannot be revoked", o.Site)
		}
	}
	for i, name := range o.Registries {
		r, ok := c.Registry(name)
		if !ok {
			return fail(fmt.Sprintf("registries[%d]", i), "%s is not a registry of charter %s v%d", name, c.Guest.ID, c.Version)
		}
		if site != nil && (o.Action == charter.ActionActivate || o.Action == charter.ActionDrill) && !slices.Contains(r.Sites, site.ID) {
			return fail(fmt.Sprintf("registries[%d]", i), "registry %s is not placed at site %s (only at %s)", name, site.ID, strings.Join(r.Sites, ", "))
		}
	}
	return nil
}
