package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
)

const accessPass = "access test passphrase"

// accessFixture is a Demo Republic whose embassy-north was activated
// (read-write, the home gone) and unsealed, in this process: the state
// every access entry is written in.
type accessFixture struct {
	dir   string // the founded state (the home's)
	guest string
	s     *Site
	tn    *tenant
	api   *siteapi.Client // registrar at embassy-north
}

func accessKey(t *testing.T, l state.Layout, id string) ed25519.PrivateKey {
	t.Helper()
	k, err := keyfile.ReadEd25519(l.Key("official", id), keyfile.Protector{Passphrase: []byte(accessPass)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startAccessFixture founds a state, writes population records at home
// (three of them named Access), gives embassy-north a mirror of the
// home's ledger, activates it and unseals it with three custodians.
func startAccessFixture(t *testing.T) *accessFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	pass := []byte(accessPass)
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	for i, last := range []string{"Access", "Access", "Access", "Other"} {
		id := fmt.Sprintf("DR-ACCESS-%d", i)
		rec := json.RawMessage(fmt.Sprintf(`{"national_id":%q,"last_name":%q,"first_name":"Ada"}`, id, last))
		if _, err := loc.Registries.Put(ctx, "population", id, rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A second version, for the history.
	if _, err := loc.Registries.Put(ctx, "population", "DR-ACCESS-0", json.RawMessage(`{"national_id":"DR-ACCESS-0","last_name":"Access","first_name":"Adah"}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := loc.Close(); err != nil {
		t.Fatal(err)
	}

	// embassy-north's mirror: the home's ledger as replication leaves it.
	data := filepath.Join(t.TempDir(), "north")
	statetest.Mirror(t, l.Ledger("home"), filepath.Join(data, "guests", c.Guest.ID, "ledger"))
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, &Config{Site: "embassy-north", Listen: "127.0.0.1:0", InsecureLoopback: true, DataDir: data, PassphraseFile: passFile,
		Guests: []GuestConfig{{Charter: l.Charter(), CheckpointKey: l.Key("site-checkpoint", "embassy-north"), Custody: l.Custody()}}},
		Options{Logger: slog.New(slog.DiscardHandler), Local: guest.LocalOptions{Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		// A test that closed the ledger to make appends fail has the site
		// find it closed.
		if err := s.Close(); err != nil && !errors.Is(err, ledger.ErrClosed) {
			t.Error(err)
		}
	})

	o, err := continuity.NewOrder(c, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite,
		Epoch: 2, NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour), Reason: "access entries test"})
	if err != nil {
		t.Fatal(err)
	}
	so := &continuity.SignedOrder{Order: *o}
	for _, id := range []string{"min-interior", "cio"} {
		if err := continuity.Sign(so, id, accessKey(t, l, id)); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := so.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cc := &siteapi.ContinuityClient{BaseURL: srv.URL, Guest: c.Guest.ID, AcceptUnfenced: true,
		Signer: &siteapi.Signer{Guest: "demo-republic", Site: "embassy-north", Official: "cio", Key: accessKey(t, l, "cio")}}
	if _, err := cc.Submit(ctx, signed); err != nil {
		t.Fatal(err)
	}
	sess, err := cc.OpenUnseal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The site-key hand-off takes only an official's signed request, and
	// only a key sealed to the session: not an unsigned one, not one in
	// clear.
	skURL := srv.URL + "/continuity/v1/guests/" + c.Guest.ID + "/unseal/" + sess.Session + "/site-keys/embassy-south"
	for name, tc := range map[string]struct {
		sign bool
		want int
	}{"unsigned": {false, http.StatusUnauthorized}, "in clear": {true, http.StatusUnprocessableEntity}} {
		req, _ := http.NewRequest(http.MethodPost, skURL, bytes.NewReader([]byte("a wrapped key in clear")))
		if tc.sign {
			if err := siteapi.SignRequest(req, c.Guest.ID, "embassy-north", "cio", accessKey(t, l, "cio")); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("site key %s: status %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	for i, sealed := range statetest.SealedShares(t, dir, pass, sess.RecipientStatement, "cust-parliament", "cust-court", "cust-bank") {
		if _, err := cc.SubmitShare(ctx, sess.Session, sealed); err != nil {
			t.Fatalf("share %d: %v", i+1, err)
		}
	}
	f := &accessFixture{dir: dir, guest: c.Guest.ID, s: s, tn: s.tenants[c.Guest.ID]}
	if f.tn == nil || f.tn.Unsealed() == nil {
		t.Fatal("embassy-north is not unsealed")
	}
	f.api = &siteapi.Client{BaseURL: srv.URL + "/guests/" + c.Guest.ID, HTTP: srv.Client(),
		Signer: siteapi.Signer{Guest: "demo-republic", Site: "embassy-north", Official: "registrar", Key: accessKey(t, l, "registrar")}}
	return f
}

func (f *accessFixture) keys(reg string) *seal.RegistryKeys {
	return f.tn.Unsealed().Keys.Registry(reg)
}

// entriesSince returns the access entries appended at index from or
// later, their raw payloads, and the ledger's size.
func (f *accessFixture) entriesSince(t *testing.T, from uint64) ([]continuity.AccessEntry, [][]byte, uint64) {
	t.Helper()
	ctx := context.Background()
	lg := f.tn.Ledger()
	size := lg.Size()
	_, cp, err := lg.WaitPublished(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	var out []continuity.AccessEntry
	var raws [][]byte
	for i := from; i < size; i++ {
		raw, err := ledger.ReadEntry(ctx, ledger.DirFetcher(lg.Dir()), i, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != ledger.TypeAccess {
			continue
		}
		var ae continuity.AccessEntry
		dec := json.NewDecoder(bytes.NewReader(e.Payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ae); err != nil {
			t.Fatalf("access entry %d: %v: %s", i, err, e.Payload)
		}
		out = append(out, ae)
		raws = append(raws, e.Payload)
	}
	return out, raws, size
}

// oneEntry runs read and checks that it appended exactly one entry to the
// ledger, an access entry by registrar at embassy-north in reg, holding
// none of the plaintext given.
func (f *accessFixture) oneEntry(t *testing.T, reg string, plaintext []string, read func() error) continuity.AccessEntry {
	t.Helper()
	from := f.tn.Ledger().Size()
	if err := read(); err != nil {
		t.Fatal(err)
	}
	es, raws, size := f.entriesSince(t, from)
	if size != from+1 || len(es) != 1 {
		t.Fatalf("the read appended %d entries, %d of them access entries; want exactly one access entry", size-from, len(es))
	}
	e := es[0]
	if e.Official != "registrar" || e.Site != "embassy-north" || e.Registry != reg {
		t.Fatalf("access entry by %q at %q in %q", e.Official, e.Site, e.Registry)
	}
	for _, p := range plaintext {
		if bytes.Contains(raws[0], []byte(p)) {
			t.Fatalf("the access entry holds %q in clear: %s", p, raws[0])
		}
	}
	return e
}

// TestAccessEntries: at an activated embassy every kind of read of
// plaintext — a record, a history, a find (with results or none), an
// attachment — appends one access entry that says which kind of read it
// was and what it read, blinded, before anything is served; and a read
// whose entry cannot be appended is refused with 503, never served.
func TestAccessEntries(t *testing.T) {
	f := startAccessFixture(t)
	ctx := context.Background()
	pop := f.keys("population")
	blind := func(rk *seal.RegistryKeys, id string) []byte { b := rk.BlindID(id); return b[:] }

	// An attachment, written at the embassy (business is asynchronous:
	// the embassy writes it alone). Writing appends no access entry.
	attBytes := bytes.Repeat([]byte("certificate of incorporation "), 100)
	const attName = "incorporation-Access-Trading.pdf"
	from := f.tn.Ledger().Size()
	up, err := f.api.PutBlob(ctx, "business", bytes.NewReader(attBytes))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.api.Put(ctx, "business", "BR-ACCESS-1", json.RawMessage(`{"registration_no":"BR-ACCESS-1","name":"Access Trading"}`),
		siteapi.AttachmentInput{Name: attName, Ref: up.Ref}); err != nil {
		t.Fatal(err)
	}
	if es, _, _ := f.entriesSince(t, from); len(es) != 0 {
		t.Fatalf("a write appended %d access entries", len(es))
	}

	t.Run("record", func(t *testing.T) {
		var rec *registry.Record
		e := f.oneEntry(t, "population", []string{"DR-ACCESS-0", "Adah"}, func() (err error) {
			rec, err = f.api.Get(ctx, "population", "DR-ACCESS-0", registry.AsOf{})
			return err
		})
		if e.Kind != continuity.AccessRecord || e.ReadKind() != continuity.AccessRecord || !bytes.Equal(e.BlindID, blind(pop, "DR-ACCESS-0")) || e.Version != 2 || rec.Version != 2 {
			t.Fatalf("record read of version %d recorded as %+v", rec.Version, e)
		}
		if e.Results != nil || e.Field != "" || e.Value != nil || e.Attachment != nil || e.Digest != nil || e.Part != 0 {
			t.Fatalf("record read recorded with fields of other kinds: %+v", e)
		}
	})

	t.Run("record as of an index", func(t *testing.T) {
		vs, err := f.tn.Unsealed().Registries.History(ctx, "population", "DR-ACCESS-0")
		if err != nil {
			t.Fatal(err)
		}
		at := vs[0].Index
		e := f.oneEntry(t, "population", []string{"DR-ACCESS-0"}, func() error {
			_, err := f.api.Get(ctx, "population", "DR-ACCESS-0", registry.AsOf{Index: &at})
			return err
		})
		if e.Kind != continuity.AccessRecord || e.Version != 1 {
			t.Fatalf("read of version 1 recorded as %+v", e)
		}
	})

	t.Run("history", func(t *testing.T) {
		var vs []registry.VersionInfo
		e := f.oneEntry(t, "population", []string{"DR-ACCESS-0"}, func() (err error) {
			vs, err = f.api.History(ctx, "population", "DR-ACCESS-0")
			return err
		})
		if e.Kind != continuity.AccessHistory || !bytes.Equal(e.BlindID, blind(pop, "DR-ACCESS-0")) || len(vs) != 2 || e.Version != 2 {
			t.Fatalf("history of %d versions recorded as %+v", len(vs), e)
		}
	})

	t.Run("find", func(t *testing.T) {
		var recs []*registry.Record
		e := f.oneEntry(t, "population", []string{"Access", "DR-ACCESS"}, func() (err error) {
			recs, err = f.api.Find(ctx, "population", "last_name", "Access")
			return err
		})
		v := pop.BlindIndex("last_name", "Access")
		if e.Kind != continuity.AccessFind || e.Field != "last_name" || !bytes.Equal(e.Value, v[:]) || e.BlindID != nil || e.Part != 0 || e.Parts != 0 {
			t.Fatalf("find recorded as %+v", e)
		}
		if len(recs) != 3 || len(e.Results) != len(recs) {
			t.Fatalf("find returned %d records, its entry lists %d", len(recs), len(e.Results))
		}
		for i, rec := range recs {
			if r := e.Results[i]; !bytes.Equal(r.BlindID, blind(pop, rec.ID)) || r.Version != rec.Version {
				t.Fatalf("result %d: %s version %d recorded as %x version %d", i, rec.ID, rec.Version, r.BlindID, r.Version)
			}
		}
	})

	t.Run("find with no result", func(t *testing.T) {
		e := f.oneEntry(t, "population", []string{"Nobody"}, func() error {
			recs, err := f.api.Find(ctx, "population", "last_name", "Nobody")
			if err == nil && len(recs) != 0 {
				err = fmt.Errorf("found %d records named Nobody", len(recs))
			}
			return err
		})
		v := pop.BlindIndex("last_name", "Nobody")
		if e.Kind != continuity.AccessFind || !bytes.Equal(e.Value, v[:]) || len(e.Results) != 0 {
			t.Fatalf("empty find recorded as %+v", e)
		}
	})

	t.Run("attachment", func(t *testing.T) {
		var got bytes.Buffer
		e := f.oneEntry(t, "business", []string{"BR-ACCESS-1", attName, "Access Trading"}, func() error {
			_, err := f.api.GetAttachment(ctx, "business", "BR-ACCESS-1", attName, registry.AsOf{}, &got)
			return err
		})
		if !bytes.Equal(got.Bytes(), attBytes) {
			t.Fatalf("attachment: got %d bytes, want %d", got.Len(), len(attBytes))
		}
		rec, err := f.tn.Unsealed().Registries.Get(ctx, "business", "BR-ACCESS-1", registry.AsOf{})
		if err != nil {
			t.Fatal(err)
		}
		biz := f.keys("business")
		name, digest := biz.BlindIndex("\x00attachment", attName), guest.AttachmentDigest(biz, rec.Attachments[0].Ref)
		if bare := rec.Attachments[0].Ref.Hash(); bytes.Equal(e.Digest, bare[:]) {
			t.Fatal("the access entry carries the attachment's unkeyed reference hash: a host can search its size out of it")
		}
		if e.Kind != continuity.AccessAttachment || !bytes.Equal(e.BlindID, blind(biz, "BR-ACCESS-1")) || e.Version != rec.Version ||
			!bytes.Equal(e.Attachment, name[:]) || !bytes.Equal(e.Digest, digest[:]) {
			t.Fatalf("attachment read recorded as %+v", e)
		}
	})

	t.Run("not found is a read too", func(t *testing.T) {
		// Whether a record exists is itself what a lookup reads: a miss
		// is recorded, with no version, and then answered 404.
		for _, tc := range []struct {
			kind string
			read func() error
		}{
			{continuity.AccessRecord, func() error { _, err := f.api.Get(ctx, "population", "DR-NOBODY", registry.AsOf{}); return err }},
			{continuity.AccessHistory, func() error { _, err := f.api.History(ctx, "population", "DR-NOBODY"); return err }},
		} {
			e := f.oneEntry(t, "population", []string{"DR-NOBODY"}, func() error {
				var ae *siteapi.APIError
				if err := tc.read(); !errors.As(err, &ae) || ae.Status != 404 {
					return fmt.Errorf("%s of a missing record: %v, want 404", tc.kind, err)
				}
				return nil
			})
			if e.Kind != tc.kind || !bytes.Equal(e.BlindID, blind(pop, "DR-NOBODY")) || e.Version != 0 {
				t.Fatalf("%s miss recorded as %+v", tc.kind, e)
			}
		}
	})

	// Every kind of read, refused when its entry cannot be appended.
	reads := []struct {
		kind, reg string
		read      func(w io.Writer) error
	}{
		{continuity.AccessRecord, "population", func(io.Writer) error {
			_, err := f.api.Get(ctx, "population", "DR-ACCESS-0", registry.AsOf{})
			return err
		}},
		{continuity.AccessHistory, "population", func(io.Writer) error {
			_, err := f.api.History(ctx, "population", "DR-ACCESS-0")
			return err
		}},
		{continuity.AccessFind, "population", func(io.Writer) error {
			_, err := f.api.Find(ctx, "population", "last_name", "Access")
			return err
		}},
		{continuity.AccessAttachment, "business", func(w io.Writer) error {
			_, err := f.api.GetAttachment(ctx, "business", "BR-ACCESS-1", attName, registry.AsOf{}, w)
			return err
		}},
	}
	refused := func(t *testing.T, want string) {
		t.Helper()
		for _, rd := range reads {
			from := f.tn.Ledger().Size()
			var body bytes.Buffer
			err := rd.read(&body)
			var ae *siteapi.APIError
			if !errors.As(err, &ae) || ae.Status != 503 {
				t.Fatalf("%s read with no access entry possible: %v, want a 503", rd.kind, err)
			}
			if !strings.Contains(ae.ErrorBody.Error, "registry "+rd.reg) || !strings.Contains(ae.ErrorBody.Error, "access entry") ||
				!strings.Contains(ae.ErrorBody.Error, want) || ae.Registry != rd.reg {
				t.Fatalf("%s read refused with %q (registry %q)", rd.kind, ae.ErrorBody.Error, ae.Registry)
			}
			if body.Len() != 0 {
				t.Fatalf("%s read refused but %d bytes of it served", rd.kind, body.Len())
			}
			if n := f.tn.Ledger().Size(); n != from {
				t.Fatalf("refused %s read appended %d entries", rd.kind, n-from)
			}
		}
	}

	t.Run("refused when a newer epoch is in the ledger", func(t *testing.T) {
		// What a site finds when a newer writer's entry reached its
		// ledger: its own epoch's appends are stale.
		p, _ := json.Marshal(continuity.AccessEntry{Kind: continuity.AccessRecord, Official: "registrar", Site: "elsewhere", Registry: "population"})
		if _, err := f.tn.Ledger().Append(ctx, ledger.Entry{Type: ledger.TypeAccess, Epoch: 3, Time: time.Now(), Payload: p}); err != nil {
			t.Fatal(err)
		}
		refused(t, "newer epoch")
	})

	t.Run("refused when the ledger is closed", func(t *testing.T) {
		if err := f.tn.Ledger().Close(); err != nil {
			t.Fatal(err)
		}
		refused(t, "ledger is closed")
	})
}
