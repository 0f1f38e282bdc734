package extract_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"os"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// The fixture is the Demo Republic as founded (its charter publishes the
// extract key), real ledgers on disk written by the home or an embassy
// with their own checkpoint keys, and real receipt cosignatures made with
// the other sites' checkpoint keys, as replica.Receiver makes them.

const testPass = "extract test passphrase"

var founded = statetest.New(testPass)

func TestMain(m *testing.M) {
	code := m.Run()
	founded.Remove()
	os.Exit(code)
}

type fixture struct {
	layout state.Layout
	c      *charter.Charter
	signer crypto.Signer // the state's extract key, derived from the root
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := founded.Copy(t)
	f := &fixture{layout: state.Layout{Dir: dir}}
	var err error
	if f.c, err = charter.ReadFile(f.layout.Charter()); err != nil {
		t.Fatal(err)
	}
	f.signer = f.stateSigner(t)
	return f
}

// stateSigner derives the extract key from the root key file, as any site
// holding R does: the home and an activated embassy get the same key.
func (f *fixture) stateSigner(t testing.TB) crypto.Signer {
	t.Helper()
	root, err := seal.ReadRootKeyFile(f.layout.RootKey(), []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	kr := seal.NewKeyring(f.c.Guest.ID, root)
	t.Cleanup(kr.Wipe)
	s, err := kr.StateSigner("extract", seal.StateAlgEdDSA, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) siteKey(t testing.TB, site string) ed25519.PrivateKey {
	t.Helper()
	k, err := keyfile.ReadEd25519(f.layout.Key("site-checkpoint", site), founded.Protector())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openLog opens the ledger site writes, signing with site's checkpoint key.
func (f *fixture) openLog(t testing.TB, site string) *ledger.Log {
	t.Helper()
	l, err := state.OpenLedger(context.Background(), f.layout, f.c, site, founded.Protector(), ledger.Options{CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close ledger of %s: %v", site, err)
		}
	})
	return l
}

// cosigned returns the Cosigned function a site passes: the writer's
// checkpoint with the receipts of the cosigning sites.
func (f *fixture) cosigned(t testing.TB, l *ledger.Log, sites ...string) func(context.Context, uint64) ([]byte, error) {
	t.Helper()
	var cs []note.Signer
	for _, s := range sites {
		c, err := replica.NewReceiptCosigner(f.c, s, f.siteKey(t, s))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return func(ctx context.Context, size uint64) ([]byte, error) {
		signed, _, err := l.WaitPublished(ctx, size)
		if err != nil {
			return nil, err
		}
		return ledger.Cosign(signed, cs...)
	}
}

// issuer is an issuer at site over l, in epoch, cosigned by cosigners.
func (f *fixture) issuer(t testing.TB, site string, l *ledger.Log, epoch uint64, cosigners ...string) *extract.Issuer {
	t.Helper()
	is, err := extract.NewIssuer(extract.IssuerOptions{
		Charter: f.c, Signer: f.signer, Site: site, Log: l,
		Cosigned: f.cosigned(t, l, cosigners...),
		Epoch:    func() uint64 { return epoch },
	})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func (f *fixture) verifier(t testing.TB) *offline.Verifier {
	t.Helper()
	v, err := offline.NewVerifier(f.c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func birthRequest(i int) extract.Request {
	return extract.Request{
		Registry: "population", Record: "DR-" + string(rune('A'+i%26)) + "-0001", Version: 1, Index: uint64(i),
		Fields: map[string]any{"given_name": "Ada", "last_name": "Lovelace", "birth_date": "2026-12-05", "place_of_birth": "Northland embassy"},
	}
}

func issueOne(t testing.TB, is *extract.Issuer, i int) *extract.Extract {
	t.Helper()
	es, err := is.Issue(context.Background(), birthRequest(i))
	if err != nil {
		t.Fatal(err)
	}
	return es[0]
}
