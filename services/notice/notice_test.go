package notice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/services/notice"
)

const testPass = "notice test passphrase"

var founded = statetest.New(testPass)

func TestMain(m *testing.M) {
	code := m.Run()
	founded.Remove()
	os.Exit(code)
}

var classes = notice.Config{Classes: map[string]charter.Rule{
	"operating-abroad": {Threshold: 2, Of: []string{"minister", "cio"}, Require: map[string]int{"minister": 1}},
	"emergency":        {Threshold: 1, Of: []string{"minister", "cio", "registrar"}},
}}

type fixture struct {
	dir string
	c   *charter.Charter
	log *ledger.Log
}

func newFixture(t *testing.T) *fixture {
	dir := founded.Copy(t)
	l := state.Layout{Dir: dir}
	c, err := charter.ReadFile(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetService("notices", classes); err != nil {
		t.Fatal(err)
	}
	log, err := state.OpenLedger(context.Background(), l, c, "home", founded.Protector(), ledger.Options{CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return &fixture{dir: dir, c: c, log: log}
}

func (f *fixture) sign(t *testing.T, n *notice.Notice, officials ...string) *notice.Signed {
	s := &notice.Signed{Notice: *n}
	for _, o := range officials {
		sig, err := notice.Sign(n, o, statetest.OfficialKey(t, f.dir, o, []byte(testPass)))
		if err != nil {
			t.Fatal(err)
		}
		s.Signatures = append(s.Signatures, sig)
	}
	return s
}

// record appends the signed notice and proves it against a checkpoint
// cosigned by embassy-north, as a site publishing its notices does.
func (f *fixture) record(t *testing.T, s *notice.Signed) *notice.Proven {
	ctx := context.Background()
	e, err := s.Entry()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := f.log.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	signed, cp, err := f.log.WaitPublished(ctx, idx+1)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.ReadEd25519(state.Layout{Dir: f.dir}.Key("site-checkpoint", "embassy-north"), founded.Protector())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := replica.NewReceiptCosigner(f.c, "embassy-north", key)
	if err != nil {
		t.Fatal(err)
	}
	if signed, err = ledger.Cosign(signed, cs); err != nil {
		t.Fatal(err)
	}
	path, err := ledger.NewProver(ledger.DirFetcher(f.log.Dir()), 8).Inclusion(ctx, idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := s.Marshal()
	p := &notice.Proven{Signed: payload, Index: idx, TreeSize: cp.Size, Checkpoint: string(signed)}
	for _, h := range path {
		p.Path = append(p.Path, h[:])
	}
	return p
}

func abroad(id string) *notice.Notice {
	return &notice.Notice{Guest: "demo-republic", ID: id, Class: "operating-abroad", Lang: "en",
		Title: "The government is operating from abroad", Body: "Services continue from embassy-north.",
		IssuedAt: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC), Epoch: 0, Site: "home"}
}

func TestNoticeVerifiesOfflineAndInFeeds(t *testing.T) {
	f := newFixture(t)
	n := abroad("activation-1")
	n.Guest = f.c.Guest.ID
	p := f.record(t, f.sign(t, n, "min-interior", "cio"))
	v, err := notice.NewVerifier(f.c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Signers, ",") != "min-interior,cio" || got.Cosigned.Writer != "home" {
		t.Fatalf("verified: %+v", got)
	}
	feed := notice.Feed{Guest: f.c.Guest.ID, Name: f.c.Guest.Name, URL: "https://127.0.0.1:7001/guests/" + f.c.Guest.ID + "/notices.atom"}
	atom, err := notice.Atom(feed, []*notice.Proven{p})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(atom, []byte(`<feed xmlns="http://www.w3.org/2005/Atom"`)) || !bytes.Contains(atom, []byte("<category term=\"operating-abroad\">")) {
		t.Fatalf("atom:\n%s", atom)
	}
	back, err := notice.ParseAtomProofs(atom)
	if err != nil || len(back) != 1 {
		t.Fatalf("proofs from the feed: %v %v", back, err)
	}
	if _, err := v.Verify(back[0]); err != nil {
		t.Fatalf("notice from the Atom feed: %v", err)
	}
	js, err := notice.JSON(feed, []*notice.Proven{p})
	if err != nil {
		t.Fatal(err)
	}
	var jf struct {
		Version string `json:"version"`
		Items   []struct {
			Chancery notice.Proven `json:"_chancery"`
		} `json:"items"`
	}
	if err := json.Unmarshal(js, &jf); err != nil || len(jf.Items) != 1 || jf.Version != "https://jsonfeed.org/version/1.1" {
		t.Fatalf("json feed: %s %v", js, err)
	}
	if _, err := v.Verify(&jf.Items[0].Chancery); err != nil {
		t.Fatalf("notice from the JSON feed: %v", err)
	}
}

// TestNoticeRefusals: without its quorum, signed twice by one official,
// altered, or proven against another entry, a notice is refused.
func TestNoticeRefusals(t *testing.T) {
	f := newFixture(t)
	n := abroad("activation-2")
	n.Guest = f.c.Guest.ID
	cfg := classes
	for name, s := range map[string]*notice.Signed{
		"one minister only": f.sign(t, n, "min-interior"),
		"no minister":       f.sign(t, n, "cio", "registrar"),
		"the same twice":    f.sign(t, n, "min-interior", "min-interior"),
	} {
		if _, err := notice.Quorum(f.c, cfg, s); err == nil {
			t.Errorf("%s: quorum met", name)
		}
	}
	other := *n
	other.Class = "curfew"
	if _, err := notice.Quorum(f.c, cfg, f.sign(t, &other, "min-interior", "cio")); err == nil || !strings.Contains(err.Error(), "class") {
		t.Errorf("class without a quorum: %v", err)
	}
	v, err := notice.NewVerifier(f.c)
	if err != nil {
		t.Fatal(err)
	}
	p := f.record(t, f.sign(t, n, "min-interior", "cio"))
	for i := range p.Signed {
		q := *p
		q.Signed = bytes.Clone(p.Signed)
		q.Signed[i] ^= 0x01
		if _, err := v.Verify(&q); err == nil {
			t.Fatalf("byte %d of the signed notice altered: accepted", i)
		}
	}
	q := *p
	q.Index++
	if _, err := v.Verify(&q); err == nil {
		t.Fatal("proof at another index accepted")
	}
}
