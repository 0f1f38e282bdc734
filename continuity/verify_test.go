package continuity_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

var (
	activateNorth = continuity.Order{Action: charter.ActionActivate, Epoch: 2, Site: "embassy-north", Access: continuity.AccessReadWrite, Reason: "home data centre flooded"}
	drillSouth    = continuity.Order{Action: charter.ActionDrill, Epoch: 1, Site: "embassy-south", Registries: []string{"population"}}
	revokeSouth   = continuity.Order{Action: charter.ActionRevokeSite, Epoch: 1, Site: "embassy-south"}
	failbackHome  = continuity.Order{Action: charter.ActionFailback, Epoch: 3, Site: "home"}
	rotate        = continuity.Order{Action: charter.ActionRotateKeys, Epoch: 1, Registries: []string{"land"}}
)

func amend(r *republic) continuity.Order {
	return continuity.Order{Action: charter.ActionAmend, Epoch: 1, Amendment: r.other.HashHex()}
}

// TestVerify runs orders of every action, signed with the Demo Republic's
// real official keys, through Verify: each must be accepted or refused as
// the charter says, with the sentinel and a message naming the reason.
//
// The Demo Republic's rules: activate and failback 2 of minister, cio with
// at least 1 minister; drill 1 of cio, registrar; revoke-site 3 of
// minister, cio, registrar with at least 1 minister; rotate-keys 2 of cio,
// registrar; amend 3 of minister, cio, notary with at least 2 ministers.
// min-interior and min-justice are ministers, notary is notary and
// registrar.
func TestVerify(t *testing.T) {
	r := demo(t)
	northState := continuity.State{Epoch: 2, Writer: "embassy-north", History: history{}}
	_, ghostKey, _ := ed25519.GenerateKey(rand.Reader)

	type tc struct {
		name    string
		so      func(t *testing.T) *continuity.SignedOrder
		st      continuity.State
		now     time.Time
		want    error    // nil: accepted
		mention []string // the message names these
	}
	signed := func(tmpl continuity.Order, officials ...string) func(t *testing.T) *continuity.SignedOrder {
		return func(t *testing.T) *continuity.SignedOrder { return r.sign(t, r.order(t, r.c, tmpl), officials...) }
	}
	// mutated signs an order after changing it past NewOrder's checks.
	mutated := func(tmpl continuity.Order, mut func(*continuity.Order), officials ...string) func(t *testing.T) *continuity.SignedOrder {
		return func(t *testing.T) *continuity.SignedOrder {
			o := r.order(t, r.c, tmpl)
			mut(o)
			return r.sign(t, o, officials...)
		}
	}
	// tampered changes an order after it was signed.
	tampered := func(tmpl continuity.Order, mut func(*continuity.Order), officials ...string) func(t *testing.T) *continuity.SignedOrder {
		return func(t *testing.T) *continuity.SignedOrder {
			so := r.sign(t, r.order(t, r.c, tmpl), officials...)
			mut(&so.Order)
			return so
		}
	}

	cases := []tc{
		// Quorum met, per action.
		{name: "activate minister and cio", so: signed(activateNorth, "min-interior", "cio")},
		{name: "activate two ministers", so: signed(activateNorth, "min-interior", "min-justice")},
		{name: "activate read-only two registries", so: signed(continuity.Order{Action: charter.ActionActivate, Epoch: 2, Site: "embassy-north", Access: continuity.AccessReadOnly, Registries: []string{"land", "population"}}, "min-justice", "cio")},
		{name: "drill registrar alone", so: signed(drillSouth, "registrar")},
		{name: "drill notary as registrar", so: signed(drillSouth, "notary")},
		{name: "revoke-site minister cio registrar", so: signed(revokeSouth, "min-interior", "cio", "registrar")},
		{name: "failback to home", so: signed(failbackHome, "min-justice", "cio"), st: northState},
		{name: "failback to another embassy", so: signed(continuity.Order{Action: charter.ActionFailback, Epoch: 3, Site: "embassy-south"}, "min-justice", "cio"), st: northState},
		{name: "rotate-keys cio registrar", so: signed(rotate, "cio", "registrar")},
		{name: "amend two ministers and notary", so: signed(amend(r), "min-interior", "min-justice", "notary")},
		{name: "extra signer without a role counts for nothing", so: signed(activateNorth, "min-interior", "cio", "registrar")},
		{name: "at not_before exactly", so: signed(activateNorth, "min-interior", "cio"), now: t0.Add(-time.Hour)},

		// Quorum not met.
		{name: "activate cio alone", so: signed(activateNorth, "cio"), want: continuity.ErrQuorum,
			mention: []string{"activate needs 2 of minister, cio", "need 2 of minister,cio, have 1", "need at least 1 minister, have 0"}},
		{name: "activate unsigned", so: signed(activateNorth), want: continuity.ErrQuorum, mention: []string{"have 0"}},
		{name: "revoke-site without a minister", so: signed(revokeSouth, "cio", "registrar", "notary"), want: continuity.ErrQuorum, mention: []string{"need at least 1 minister, have 0"}},
		{name: "amend one minister", so: signed(amend(r), "min-interior", "cio", "notary"), want: continuity.ErrQuorum, mention: []string{"need at least 2 minister, have 1"}},

		// Wrong role: the signature is good but holds no role in the rule.
		{name: "registrar signing activate", so: signed(activateNorth, "min-interior", "registrar"), want: continuity.ErrQuorum,
			mention: []string{"registrar holds no role in the activate rule", "need 2 of minister,cio, have 1"}},
		{name: "minister signing drill", so: signed(drillSouth, "min-interior"), want: continuity.ErrQuorum, mention: []string{"min-interior holds no role in the drill rule"}},
		{name: "notary signing activate", so: signed(activateNorth, "min-justice", "notary"), want: continuity.ErrQuorum, mention: []string{"notary holds no role"}},

		// Time.
		{name: "expired", so: signed(activateNorth, "min-interior", "cio"), now: t0.Add(23 * time.Hour), want: continuity.ErrExpired, mention: []string{"expired at 2026-03-02T11:00:00Z"}},
		{name: "not yet valid", so: signed(activateNorth, "min-interior", "cio"), now: t0.Add(-time.Hour - time.Second), want: continuity.ErrNotYetValid, mention: []string{"not before 2026-03-01T11:00:00Z"}},

		// Replays.
		{name: "replayed id", so: signed(activateNorth, "min-interior", "cio"), want: continuity.ErrReplayed, mention: []string{"id was already accepted"}},
		{name: "replayed nonce", so: signed(activateNorth, "min-interior", "cio"), want: continuity.ErrReplayed, mention: []string{"nonce"}},

		// Another guest or charter.
		{name: "signed for another guest", so: func(t *testing.T) *continuity.SignedOrder {
			return r.sign(t, r.order(t, r.other, activateNorth), "min-interior", "cio")
		}, want: continuity.ErrGuest, mention: []string{"guest is other-republic", "demo-republic"}},
		{name: "other origin", so: mutated(activateNorth, func(o *continuity.Order) { o.Origin = "ledger.elsewhere.example" }, "min-interior", "cio"), want: continuity.ErrGuest, mention: []string{"origin is ledger.elsewhere.example"}},
		{name: "issued under another charter version", so: mutated(activateNorth, func(o *continuity.Order) { o.CharterHash = r.other.HashHex() }, "min-interior", "cio"), want: continuity.ErrGuest, mention: []string{"issued under charter " + r.other.HashHex()}},

		// Signatures.
		{name: "site tampered after signing", so: tampered(activateNorth, func(o *continuity.Order) { o.Site = "embassy-south" }, "min-interior", "cio"), want: continuity.ErrSignature, mention: []string{"bad signature by official min-interior", "bad signature by official cio"}},
		{name: "access tampered after signing", so: tampered(continuity.Order{Action: charter.ActionActivate, Epoch: 2, Site: "embassy-north", Access: continuity.AccessReadOnly}, func(o *continuity.Order) { o.Access = continuity.AccessReadWrite }, "min-interior", "cio"), want: continuity.ErrSignature},
		{name: "expiry tampered after signing", so: tampered(activateNorth, func(o *continuity.Order) { o.Expires = o.Expires.Add(720 * time.Hour) }, "min-interior", "cio"), want: continuity.ErrSignature},
		{name: "signed with another official's key", so: func(t *testing.T) *continuity.SignedOrder {
			so := &continuity.SignedOrder{Order: *r.order(t, r.c, activateNorth)}
			if err := continuity.Sign(so, "min-interior", r.keys["min-interior"]); err != nil {
				t.Fatal(err)
			}
			if err := continuity.Sign(so, "cio", r.keys["registrar"]); err != nil {
				t.Fatal(err)
			}
			return so
		}, want: continuity.ErrSignature, mention: []string{"bad signature by official cio"}},
		{name: "unknown official", so: func(t *testing.T) *continuity.SignedOrder {
			so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior", "cio")
			if err := continuity.Sign(so, "ghost", ghostKey); err != nil {
				t.Fatal(err)
			}
			return so
		}, want: continuity.ErrUnknownOfficial, mention: []string{`"ghost" is not an official of charter demo-republic v1`}},
		{name: "one official signing twice counts once", so: func(t *testing.T) *continuity.SignedOrder {
			so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior")
			so.Signatures = append(so.Signatures, so.Signatures[0])
			return so
		}, want: continuity.ErrQuorum, mention: []string{"min-interior signed more than once and counts once", "have 1"}},

		// Epochs.
		{name: "activate skipping an epoch", so: signed(continuity.Order{Action: charter.ActionActivate, Epoch: 3, Site: "embassy-north", Access: continuity.AccessReadWrite}, "min-interior", "cio"), want: continuity.ErrEpoch, mention: []string{"activate must open the next epoch 2 (current is 1), it names 3"}},
		{name: "activate of the current epoch", so: signed(activateNorth, "min-interior", "cio"), st: northState, want: continuity.ErrEpoch},
		{name: "drill of a future epoch", so: signed(continuity.Order{Action: charter.ActionDrill, Epoch: 2, Site: "embassy-south"}, "cio"), want: continuity.ErrEpoch, mention: []string{"drill must name the current epoch 1"}},
		{name: "failback of an old epoch", so: signed(continuity.Order{Action: charter.ActionFailback, Epoch: 2, Site: "home"}, "min-interior", "cio"), st: northState, want: continuity.ErrEpoch},

		// Fields the charter does not allow.
		{name: "activate the home", so: mutated(activateNorth, func(o *continuity.Order) { o.Site = "home" }, "min-interior", "cio"), want: continuity.ErrInvalid, mention: []string{"site: home is the home site; activate takes an embassy"}},
		{name: "activate an unknown site", so: mutated(activateNorth, func(o *continuity.Order) { o.Site = "embassy-west" }, "min-interior", "cio"), want: continuity.ErrInvalid, mention: []string{"site: embassy-west is not a site"}},
		{name: "activate without access", so: func(t *testing.T) *continuity.SignedOrder {
			o := r.order(t, r.c, activateNorth)
			o.Access = ""
			// Sign refuses an invalid order: sign the bytes directly.
			so := &continuity.SignedOrder{Order: *o}
			for _, id := range []string{"cio", "min-interior"} {
				so.Signatures = append(so.Signatures, continuity.Signature{Official: id, Sig: ed25519.Sign(r.keys[id], o.SigningMessage())})
			}
			return so
		}, want: continuity.ErrInvalid, mention: []string{"access"}},
		{name: "activate a registry not placed there", so: mutated(activateNorth, func(o *continuity.Order) { o.Registries = []string{"legal-acts"} }, "min-interior", "cio"), want: continuity.ErrInvalid, mention: []string{"registries[0]: registry legal-acts is not placed at site embassy-north"}},
		{name: "activate an unknown registry", so: mutated(activateNorth, func(o *continuity.Order) { o.Registries = []string{"tax"} }, "min-interior", "cio"), want: continuity.ErrInvalid, mention: []string{"registries[0]: tax is not a registry"}},
		{name: "revoke the home", so: mutated(revokeSouth, func(o *continuity.Order) { o.Site = "home" }, "min-interior", "cio", "registrar"), want: continuity.ErrInvalid, mention: []string{"home site, which cannot be revoked"}},
		{name: "revoke the current writer", so: signed(continuity.Order{Action: charter.ActionRevokeSite, Epoch: 2, Site: "embassy-north"}, "min-interior", "cio", "registrar"), st: northState, want: continuity.ErrInvalid, mention: []string{"embassy-north writes the current epoch 2"}},
		{name: "failback to the current writer", so: signed(continuity.Order{Action: charter.ActionFailback, Epoch: 3, Site: "embassy-north"}, "min-interior", "cio"), st: northState, want: continuity.ErrInvalid, mention: []string{"already writes"}},
		{name: "activate a revoked site", so: signed(continuity.Order{Action: charter.ActionActivate, Epoch: 2, Site: "embassy-south", Access: continuity.AccessReadOnly}, "min-interior", "cio"),
			st: continuity.State{Epoch: 1, Writer: "home", Revoked: []string{"embassy-south"}, History: history{}}, want: continuity.ErrInvalid, mention: []string{"revoked by an earlier order"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			so := c.so(t)
			st := homeState()
			if c.st.Epoch != 0 {
				st.Epoch, st.Writer = c.st.Epoch, c.st.Writer
			}
			st.Revoked = c.st.Revoked
			switch c.name {
			case "replayed id":
				st.History = history{ids: map[string]bool{so.Order.ID: true}}
			case "replayed nonce":
				st.History = history{nonces: map[string]bool{so.Order.Nonce: true}}
			}
			now := c.now
			if now.IsZero() {
				now = t0
			}
			o, err := continuity.Verify(r.c, so, st, now)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if o.ID != so.Order.ID || o.Site != so.Order.Site {
					t.Fatalf("Verify returned another order: %+v", o)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
			for _, sentinel := range []error{continuity.ErrInvalid, continuity.ErrGuest, continuity.ErrUnknownOfficial, continuity.ErrSignature, continuity.ErrQuorum, continuity.ErrNotYetValid, continuity.ErrExpired, continuity.ErrReplayed, continuity.ErrEpoch} {
				if sentinel != c.want && errors.Is(err, sentinel) {
					t.Errorf("error also wraps %v: %v", sentinel, err)
				}
			}
			if !strings.Contains(err.Error(), so.Order.ID) {
				t.Errorf("error does not name the order %s: %v", so.Order.ID, err)
			}
			for _, m := range c.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not say %q: %v", m, err)
				}
			}
		})
	}
}

func TestVerifyRefusesIncompleteState(t *testing.T) {
	r := demo(t)
	so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior", "cio")
	for name, st := range map[string]continuity.State{
		"no history":     {Epoch: 1, Writer: "home"},
		"epoch 0":        {Epoch: 0, Writer: "home", History: history{}},
		"unknown writer": {Epoch: 1, Writer: "nowhere", History: history{}},
	} {
		if _, err := continuity.Verify(r.c, so, st, t0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTallyReportsEachSigner(t *testing.T) {
	r := demo(t)
	so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior", "registrar")
	tl := continuity.TallyOrder(r.c, so)
	if tl.Quorum == nil || !errors.Is(tl.Quorum, continuity.ErrQuorum) {
		t.Fatalf("quorum: %v", tl.Quorum)
	}
	got := map[string]continuity.SignerCheck{}
	for _, s := range tl.Signers {
		got[s.Official] = s
	}
	if s := got["min-interior"]; !s.Counted || s.Err != nil {
		t.Errorf("min-interior: %+v", s)
	}
	if s := got["registrar"]; s.Counted || s.Err != nil || len(s.Roles) != 1 || s.Roles[0] != "registrar" {
		t.Errorf("registrar: %+v", s)
	}
}

func TestNewOrderRefusesWhatCannotBeAccepted(t *testing.T) {
	r := demo(t)
	base := func(mut func(*continuity.Order)) continuity.Order {
		o := activateNorth
		o.NotBefore, o.Expires = t0, t0.Add(time.Hour)
		mut(&o)
		return o
	}
	for name, c := range map[string]struct {
		tmpl  continuity.Order
		field string
	}{
		"home":            {base(func(o *continuity.Order) { o.Site = "home" }), "site"},
		"no access":       {base(func(o *continuity.Order) { o.Access = "" }), "access"},
		"bad access":      {base(func(o *continuity.Order) { o.Access = "write" }), "access"},
		"epoch 1":         {base(func(o *continuity.Order) { o.Epoch = 1 }), "epoch"},
		"registry":        {base(func(o *continuity.Order) { o.Registries = []string{"legal-acts"} }), "registries[0]"},
		"expires first":   {base(func(o *continuity.Order) { o.Expires = t0.Add(-time.Hour) }), "expires"},
		"no times":        {base(func(o *continuity.Order) { o.NotBefore = time.Time{} }), "not_before"},
		"reason control":  {base(func(o *continuity.Order) { o.Reason = "a\x1b[2Jb" }), "reason"},
		"reason newline":  {base(func(o *continuity.Order) { o.Reason = "a\nb" }), "reason"},
		"amend no hash":   {continuity.Order{Action: charter.ActionAmend, Epoch: 1, NotBefore: t0, Expires: t0.Add(time.Hour)}, "amendment"},
		"drill access":    {continuity.Order{Action: charter.ActionDrill, Epoch: 1, Site: "embassy-south", Access: continuity.AccessReadOnly, NotBefore: t0, Expires: t0.Add(time.Hour)}, "access"},
		"revoke registry": {continuity.Order{Action: charter.ActionRevokeSite, Epoch: 1, Site: "embassy-south", Registries: []string{"land"}, NotBefore: t0, Expires: t0.Add(time.Hour)}, "registries"},
		"unknown action":  {continuity.Order{Action: "dissolve", Epoch: 1, NotBefore: t0, Expires: t0.Add(time.Hour)}, "action"},
	} {
		_, err := continuity.NewOrder(r.c, c.tmpl)
		if !errors.Is(err, continuity.ErrInvalid) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: %v (want ErrInvalid naming %s)", name, err, c.field)
		}
	}
	o, err := continuity.NewOrder(r.c, base(func(o *continuity.Order) {
		o.Registries = []string{"population", "land"}
		o.NotBefore = t0.Add(1500 * time.Millisecond).In(time.FixedZone("X", 3600))
	}))
	if err != nil {
		t.Fatal(err)
	}
	if o.Registries[0] != "land" || o.NotBefore.Location() != time.UTC || o.NotBefore.Nanosecond() != 0 {
		t.Errorf("not normalised: %v %v", o.Registries, o.NotBefore)
	}
	if o.Guest != "demo-republic" || o.Origin != r.c.Guest.Origin || o.CharterHash != r.c.HashHex() || len(o.ID) != 32 || len(o.Nonce) != 32 || o.ID == o.Nonce {
		t.Errorf("not filled from the charter and crypto/rand: %+v", o)
	}
}

func TestSignRefusesSecondSignatureBySameOfficial(t *testing.T) {
	r := demo(t)
	so := r.sign(t, r.order(t, r.c, activateNorth), "min-interior")
	if err := continuity.Sign(so, "min-interior", r.keys["min-interior"]); !errors.Is(err, continuity.ErrInvalid) || !strings.Contains(err.Error(), "min-interior has already signed") {
		t.Fatalf("second signature: %v", err)
	}
	if err := continuity.Sign(so, "cio", r.keys["cio"]); err != nil {
		t.Fatal(err)
	}
	if err := continuity.Sign(so, "cio", r.keys["cio"]); err == nil {
		t.Fatal("cio signed twice")
	}
	if got := strings.Join(so.Signers(), ","); got != "cio,min-interior" {
		t.Errorf("signers %s, want sorted", got)
	}
}
