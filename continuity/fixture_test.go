package continuity_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

const testPass = "continuity test passphrase"

// republic is the Demo Republic founded once per test binary (scrypt at
// work factor 10, as the site tests do), with its officials' real keys,
// and a second guest built from it: same officials, sites and keys, other
// guest id and origin, signed afresh by the same amend quorum and hosts.
type republic struct {
	layout state.Layout
	prot   keyfile.Protector
	c      *charter.Charter
	other  *charter.Charter
	keys   map[string]ed25519.PrivateKey
}

var founded struct {
	once sync.Once
	r    *republic
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if founded.dir != "" {
		os.RemoveAll(founded.dir)
	}
	os.Exit(code)
}

func demo(t testing.TB) *republic {
	t.Helper()
	founded.once.Do(func() {
		founded.dir, founded.err = os.MkdirTemp("", "continuity-test-")
		if founded.err != nil {
			return
		}
		founded.r, founded.err = foundRepublic(founded.dir)
	})
	if founded.err != nil {
		t.Fatal(founded.err)
	}
	return founded.r
}

func foundRepublic(dir string) (*republic, error) {
	r := &republic{layout: state.Layout{Dir: dir}, prot: keyfile.Protector{Passphrase: []byte(testPass), WorkFactor: 10}, keys: map[string]ed25519.PrivateKey{}}
	c, err := found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: r.prot})
	if err != nil {
		return nil, err
	}
	r.c = c
	for _, o := range c.Officials {
		k, err := keyfile.ReadEd25519(r.layout.Key("official", o.ID), r.prot)
		if err != nil {
			return nil, err
		}
		r.keys[o.ID] = k
	}
	// Another guest: a deep copy with its own id and origin. Checkpoint
	// keys are named after the origin, so the sites get fresh ones.
	data, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	other, err := charter.Parse(data)
	if err != nil {
		return nil, err
	}
	other.Guest.ID, other.Guest.Name, other.Guest.Origin = "other-republic", "Other Republic", "ledger.other-republic.example"
	other.Signatures = nil
	for i := range other.Sites {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		other.Sites[i].CheckpointKey = ledger.VerifierKeyString(other.Guest.Origin, 0x01, pub)
	}
	for _, id := range found.DemoSigners {
		if err := charter.Sign(other, nil, charter.KindOfficial, id, r.keys[id]); err != nil {
			return nil, err
		}
	}
	for _, h := range other.Hosts {
		k, err := keyfile.ReadEd25519(r.layout.Key("host", h.ID), r.prot)
		if err != nil {
			return nil, err
		}
		if err := charter.Sign(other, nil, charter.KindHost, h.ID, k); err != nil {
			return nil, err
		}
	}
	if err := charter.VerifySignatures(other, nil); err != nil {
		return nil, err
	}
	r.other = other
	return r, nil
}

// t0 is the fixed "now" of the verification tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// order drafts an order under c valid for a day around t0.
func (r *republic) order(t testing.TB, c *charter.Charter, tmpl continuity.Order) *continuity.Order {
	t.Helper()
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = t0.Add(-time.Hour)
	}
	if tmpl.Expires.IsZero() {
		tmpl.Expires = t0.Add(23 * time.Hour)
	}
	o, err := continuity.NewOrder(c, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// sign returns o signed by the given officials with their real keys.
func (r *republic) sign(t testing.TB, o *continuity.Order, officials ...string) *continuity.SignedOrder {
	t.Helper()
	so := &continuity.SignedOrder{Order: *o}
	for _, id := range officials {
		if err := continuity.Sign(so, id, r.keys[id]); err != nil {
			t.Fatal(err)
		}
	}
	return so
}

// history is a History over sets of ids and nonces.
type history struct{ ids, nonces map[string]bool }

func (h history) HasOrderID(id string) bool  { return h.ids[id] }
func (h history) HasNonce(nonce string) bool { return h.nonces[nonce] }

func homeState() continuity.State {
	return continuity.State{Epoch: 1, Writer: "home", History: history{}}
}
