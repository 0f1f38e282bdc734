package continuity_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
)

// goldenOrder is the example of docs/orders.md: fixed id, nonce and times,
// signed by two officials whose keys come from fixed seeds (Ed25519
// signatures are deterministic, so the bytes are too).
func goldenOrder(t testing.TB) *continuity.SignedOrder {
	t.Helper()
	so := &continuity.SignedOrder{Order: continuity.Order{
		ID:          "000102030405060708090a0b0c0d0e0f",
		Guest:       "demo-republic",
		Origin:      "ledger.demo-republic.example",
		CharterHash: "5d41402abc4b2a76b9719d911017c592aa2bd3d1e8c8a5f4e2c1b0a998877665",
		Action:      charter.ActionActivate,
		Epoch:       2,
		Site:        "embassy-north",
		Registries:  []string{"land", "population"},
		Access:      continuity.AccessReadWrite,
		NotBefore:   time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
		Expires:     time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC),
		Nonce:       "f0e1d2c3b4a5968778695a4b3c2d1e0f",
		Reason:      `Home data centre flooded; see "incident 7" in C:\logs — état d'urgence`,
	}}
	for i, id := range []string{"min-interior", "cio"} {
		seed := bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)
		if err := continuity.Sign(so, id, ed25519.NewKeyFromSeed(seed)); err != nil {
			t.Fatal(err)
		}
	}
	return so
}

const goldenCanonical = `{"id":"000102030405060708090a0b0c0d0e0f","guest":"demo-republic","origin":"ledger.demo-republic.example",` +
	`"charter":"5d41402abc4b2a76b9719d911017c592aa2bd3d1e8c8a5f4e2c1b0a998877665","action":"activate","epoch":2,` +
	`"site":"embassy-north","registries":["land","population"],"access":"read-write","amendment":"",` +
	`"not_before":"2026-03-01T11:00:00Z","expires":"2026-03-02T11:00:00Z","nonce":"f0e1d2c3b4a5968778695a4b3c2d1e0f",` +
	`"reason":"Home data centre flooded; see \"incident 7\" in C:\\logs — état d'urgence"}`

// TestGoldenBytes pins the canonical encoding, the signing message and the
// signed-order file byte for byte (testdata/activate.order, the example of
// docs/orders.md). If this fails, every order ever signed fails with it.
func TestGoldenBytes(t *testing.T) {
	so := goldenOrder(t)
	if got := string(so.Order.CanonicalBytes()); got != goldenCanonical {
		t.Fatalf("canonical bytes:\n got %s\nwant %s", got, goldenCanonical)
	}
	if got := string(so.Order.SigningMessage()); got != "chancery-order/v1\n"+goldenCanonical {
		t.Fatalf("signing message: %q", got)
	}
	got, err := so.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "activate.order"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("signed order:\n got %s\nwant %s", got, want)
	}
	if !bytes.Contains(got, []byte(`"order":`+goldenCanonical+`,"signatures":[`)) {
		t.Error("the order member is not the canonical bytes verbatim")
	}
	back, err := continuity.ParseSignedOrder(want)
	if err != nil {
		t.Fatal(err)
	}
	if !ordersEqual(back, so) {
		t.Fatalf("parsed golden differs:\n%+v\n%+v", back, so)
	}
	for i, id := range []string{"min-interior", "cio"} {
		pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		j := slices.IndexFunc(back.Signatures, func(s continuity.Signature) bool { return s.Official == id })
		if j < 0 || !ed25519.Verify(pub, back.Order.SigningMessage(), back.Signatures[j].Sig) {
			t.Errorf("golden signature of %s does not verify", id)
		}
	}
}

func ordersEqual(a, b *continuity.SignedOrder) bool {
	x, y := a.Order, b.Order
	if x.ID != y.ID || x.Guest != y.Guest || x.Origin != y.Origin || x.CharterHash != y.CharterHash || x.Action != y.Action ||
		x.Epoch != y.Epoch || x.Site != y.Site || !slices.Equal(x.Registries, y.Registries) || x.Access != y.Access ||
		x.Amendment != y.Amendment || !x.NotBefore.Equal(y.NotBefore) || !x.Expires.Equal(y.Expires) || x.Nonce != y.Nonce || x.Reason != y.Reason {
		return false
	}
	return slices.EqualFunc(a.Signatures, b.Signatures, func(s, t continuity.Signature) bool {
		return s.Official == t.Official && bytes.Equal(s.Sig, t.Sig)
	})
}

// TestParseRefusesNonCanonical: every other spelling of the golden order —
// same meaning or not — is refused, so that one order has one encoding
// and the ledger, the files and the signatures cannot disagree.
func TestParseRefusesNonCanonical(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "activate.order"))
	if err != nil {
		t.Fatal(err)
	}
	g := string(golden)
	sigs := g[strings.Index(g, `"signatures":`):]
	cio := sigs[strings.Index(sigs, `{"official":"cio"`) : strings.Index(sigs, `},{`)+1]
	mi := sigs[strings.Index(sigs, `{"official":"min-interior"`) : len(sigs)-2]
	rep := func(old, new string) string {
		if !strings.Contains(g, old) {
			t.Fatalf("golden lacks %q", old)
		}
		return strings.Replace(g, old, new, 1)
	}
	for name, in := range map[string]string{
		"trailing newline":        g + "\n",
		"leading space":           " " + g,
		"space after colon":       rep(`"epoch":2`, `"epoch": 2`),
		"members reordered":       rep(`"guest":"demo-republic","origin":"ledger.demo-republic.example"`, `"origin":"ledger.demo-republic.example","guest":"demo-republic"`),
		"unknown member":          rep(`"reason":`, `"priority":1,"reason":`),
		"unknown top member":      rep(`"signatures":`, `"comment":"x","signatures":`),
		"repeated member":         rep(`"epoch":2`, `"epoch":3,"epoch":2`),
		"repeated site":           rep(`"site":"embassy-north"`, `"site":"embassy-south","site":"embassy-north"`),
		"member missing":          rep(`"amendment":"",`, ``),
		"member in upper case":    rep(`"site":`, `"SITE":`),
		"escaped letter":          rep(`"embassy-north"`, `"\u0065mbassy-north"`),
		"escaped slash":           rep(`C:\\logs`, `C:\u005clogs`),
		"epoch as float":          rep(`"epoch":2`, `"epoch":2.0`),
		"epoch exponent":          rep(`"epoch":2`, `"epoch":2e0`),
		"epoch as string":         rep(`"epoch":2`, `"epoch":"2"`),
		"time with offset":        rep(`2026-03-01T11:00:00Z`, `2026-03-01T12:00:00+01:00`),
		"time with fraction":      rep(`2026-03-01T11:00:00Z`, `2026-03-01T11:00:00.000Z`),
		"time lower-case z":       rep(`2026-03-01T11:00:00Z`, `2026-03-01T11:00:00z`),
		"upper-case hex id":       rep(`000102030405060708090a0b0c0d0e0f`, `000102030405060708090A0B0C0D0E0F`),
		"short nonce":             rep(`"nonce":"f0e1d2c3b4a5968778695a4b3c2d1e0f"`, `"nonce":"f0e1"`),
		"registries unsorted":     rep(`["land","population"]`, `["population","land"]`),
		"registries repeated":     rep(`["land","population"]`, `["land","land","population"]`),
		"registries null":         rep(`["land","population"]`, `null`),
		"signatures unsorted":     rep(cio+","+mi, mi+","+cio),
		"signature repeated":      rep(cio+","+mi, cio+","+cio+","+mi),
		"signatures null":         g[:strings.Index(g, `"signatures":`)] + `"signatures":null}`,
		"sig not base64":          rep(`"sig":"`, `"sig":"!`),
		"sig url base64":          strings.ReplaceAll(strings.ReplaceAll(g, `+`, `-`), `/`, `_`),
		"other format":            rep(`"format":"chancery-order/v1"`, `"format":"chancery-order/v2"`),
		"second object":           g + g,
		"not json":                "activate embassy-north",
		"empty":                   "",
		"invalid utf-8 in reason": rep(`état`, "\xe9tat"),
		"raw control in reason":   rep(`flooded;`, "flooded;\t"),
		"escaped newline":         rep(`flooded;`, `flooded;\n`),
		"access for drill":        rep(`"action":"activate"`, `"action":"drill"`),
		"activate at epoch 1":     rep(`"epoch":2`, `"epoch":1`),
		"expires before start":    rep(`"expires":"2026-03-02T11:00:00Z"`, `"expires":"2026-03-01T10:00:00Z"`),
		"too large":               rep(`"reason":"`, `"reason":"`+strings.Repeat("x", continuity.MaxSignedOrderSize)),
	} {
		if name == "sig url base64" && in == g {
			continue // no + or / in these signatures
		}
		_, err := continuity.ParseSignedOrder([]byte(in))
		if !errors.Is(err, continuity.ErrInvalid) {
			t.Errorf("%s: accepted or wrong error: %v", name, err)
		}
	}
}

// TestRoundTripProperty: every valid order and set of signatures Marshal
// produces parses back to itself, and re-marshals to the same bytes.
func TestRoundTripProperty(t *testing.T) {
	hexStr := func(n int) *rapid.Generator[string] {
		return rapid.StringOfN(rapid.RuneFrom([]rune("0123456789abcdef")), n, n, n)
	}
	id := rapid.StringMatching(`[a-z0-9][a-z0-9-]{0,20}`)
	name := rapid.StringMatching(`[a-z0-9_][a-z0-9_-]{0,20}`)
	keys := map[byte]ed25519.PrivateKey{}
	rapid.Check(t, func(t *rapid.T) {
		o := continuity.Order{
			ID: hexStr(32).Draw(t, "id"), Guest: id.Draw(t, "guest"),
			Origin:      rapid.StringMatching(`[a-z0-9.\-/:"\\é]{1,40}`).Draw(t, "origin"),
			CharterHash: hexStr(64).Draw(t, "charter"), Action: rapid.SampledFrom(charter.Actions()).Draw(t, "action"),
			Nonce:  hexStr(32).Draw(t, "nonce"),
			Reason: rapid.StringOfN(rapid.RuneFrom(nil, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs), 0, 200, 1024).Draw(t, "reason"),
		}
		o.Epoch = rapid.Uint64Range(2, 1<<63).Draw(t, "epoch")
		if rapid.Bool().Draw(t, "current") && o.Action != charter.ActionActivate && o.Action != charter.ActionFailback {
			o.Epoch = 1
		}
		nb := rapid.Int64Range(0, 253402300799-2).Draw(t, "not_before")
		o.NotBefore = time.Unix(nb, 0).UTC()
		o.Expires = time.Unix(rapid.Int64Range(nb+1, 253402300799).Draw(t, "expires"), 0)
		switch o.Action {
		case charter.ActionActivate, charter.ActionDrill, charter.ActionRotateKeys:
			o.Registries = rapid.SliceOfNDistinct(name, 0, 5, rapid.ID[string]).Draw(t, "registries")
			slices.Sort(o.Registries)
			if len(o.Registries) == 0 {
				o.Registries = nil
			}
		}
		if o.Action != charter.ActionAmend && (o.Action != charter.ActionRotateKeys || rapid.Bool().Draw(t, "site?")) {
			o.Site = id.Draw(t, "site")
		}
		if o.Action == charter.ActionActivate {
			o.Access = rapid.SampledFrom([]string{continuity.AccessReadOnly, continuity.AccessReadWrite}).Draw(t, "access")
		}
		if o.Action == charter.ActionAmend {
			o.Amendment = hexStr(64).Filter(func(s string) bool { return s != o.CharterHash }).Draw(t, "amendment")
		}
		so := &continuity.SignedOrder{Order: o}
		for _, official := range rapid.SliceOfNDistinct(id, 0, 6, rapid.ID[string]).Draw(t, "officials") {
			k := rapid.Byte().Draw(t, "key")
			if keys[k] == nil {
				keys[k] = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{k}, 32))
			}
			if err := continuity.Sign(so, official, keys[k]); err != nil {
				t.Fatal(err)
			}
		}
		b, err := so.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := continuity.ParseSignedOrder(b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if !ordersEqual(back, so) {
			t.Fatalf("round trip changed the order:\n%+v\n%+v", back, so)
		}
		b2, err := back.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-marshal differs: %v\n%s\n%s", err, b, b2)
		}
	})
}
