package identity

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/services/access"
	"github.com/chancery-gov/chancery/services/message"
)

// withMessages adds the messages registry, services.messages and the
// citizens' link of their messages to the world's charter.
func withMessages(t *testing.T, w *world) {
	t.Helper()
	w.c.Registries = append(w.c.Registries, charter.Registry{Name: "messages", Sites: []string{"home", "embassy-north"}, Index: []string{"person"}, Sync: charter.SyncAsync})
	if err := w.c.SetService(message.Section, message.Config{Registry: "messages", People: "population", RecipientField: "age_recipient"}); err != nil {
		t.Fatal(err)
	}
	var ac access.Config
	if _, err := w.c.Service(access.Service, &ac); err != nil {
		t.Fatal(err)
	}
	ac.Citizens["messages"] = "person"
	if err := w.c.SetService(access.Service, ac); err != nil {
		t.Fatal(err)
	}
}

// TestInboxOnlyForTheCitizen: an official sends Alice and Bob a message
// each. Signed in to the portal, Alice lists and opens hers; Bob's token
// does not open Alice's, a relying party's token and no token open no
// inbox. The delivery and Alice's reading are in her data tracker, and no
// byte the host stores carries the text or Alice's person id. A citizen
// with an age recipient gets a body only their identity decrypts.
func TestInboxOnlyForTheCitizen(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	withMessages(t, w)
	_, signKey, _ := ed25519.GenerateKey(rand.Reader)
	dir := filepath.Join(t.TempDir(), "home")
	home := w.openSite(t, "home", dir, signKey)
	w.seed(t, home)
	ident, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := home.regs.Put(ctx, "population", "P-300", json.RawMessage(`{"national_id":"P-300","last_name":"Kovac","age_recipient":"`+ident.Recipient().String()+`"}`), nil); err != nil {
		t.Fatal(err)
	}
	box := &message.Box{Charter: w.c, Registries: home.regs, Keys: home.keys, Log: home.log, Site: "home"}
	const secret = "Your pension of 812 marks is paid abroad from the 3rd"
	toAlice, err := box.Deliver(ctx, "reg-1", "P-100", message.Draft{Subject: "Pension", Body: secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := box.Deliver(ctx, "reg-1", "P-200", message.Draft{Subject: "Bob's notice", Body: "for Bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := box.Deliver(ctx, "reg-1", "P-404", message.Draft{Subject: "x", Body: "y"}); err == nil || !strings.Contains(err.Error(), "P-404") {
		t.Fatalf("a message to no one: %v", err)
	}

	srv := httptest.NewUnstartedServer(home.svc.WithInbox(box))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{w.pki.tlsCert}}
	srv.StartTLS()
	defer srv.Close()
	res := &resolver{}
	res.point(&site{srv: srv})
	browser := res.client(w.pki.tlsPool, false)
	portal := newRP(t, res, w, w.portal, portalReturn, ScopeRecords)
	alice, _ := portal.signIn(t, browser, w.alice)
	bob, _ := portal.signIn(t, browser, w.bob)

	st, body, _ := portal.get(t, "/inbox", alice)
	var hs []message.Header
	if st != http.StatusOK || json.Unmarshal(body, &hs) != nil || len(hs) != 1 || hs[0].ID != toAlice.ID || hs[0].Subject != "Pension" {
		t.Fatalf("Alice's inbox: %d %s", st, body)
	}
	if bytes.Contains(body, []byte(secret)) {
		t.Fatal("the inbox list carries the body")
	}
	st, body, _ = portal.get(t, "/inbox/"+toAlice.ID, alice)
	var m message.Message
	if st != http.StatusOK || json.Unmarshal(body, &m) != nil || m.Body != secret || m.From != "reg-1" {
		t.Fatalf("Alice opens her message: %d %s", st, body)
	}
	if st, body, _ := portal.get(t, "/inbox/"+toAlice.ID, bob); st != http.StatusNotFound || bytes.Contains(body, []byte(secret)) {
		t.Fatalf("Bob opens Alice's message: %d %s, want 404", st, body)
	}
	if st, body, _ := portal.get(t, "/inbox", bob); st != http.StatusOK || bytes.Contains(body, []byte(toAlice.ID)) || !bytes.Contains(body, []byte("Bob's notice")) {
		t.Fatalf("Bob's inbox: %d %s", st, body)
	}
	tax := newRP(t, res, w, w.tax, rpRedirect, oidc.ScopeProfile, ScopeRecords)
	taxTok, _ := tax.signIn(t, browser, w.alice)
	if st, _, _ := tax.get(t, "/inbox", taxTok); st != http.StatusForbidden {
		t.Fatalf("a relying party's token for Alice: %d, want 403", st)
	}
	req, _ := http.NewRequest("GET", testIssuer+"/inbox", nil)
	resp, err := portal.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", resp.StatusCode)
	}

	// Alice's data tracker lists the delivery and her reading.
	st, body, _ = portal.get(t, "/tracker", alice)
	var seen []access.Seen
	if st != http.StatusOK || json.Unmarshal(body, &seen) != nil {
		t.Fatalf("tracker: %d %s", st, body)
	}
	var got []string
	for _, s := range seen {
		if s.Registry == "messages" {
			got = append(got, s.Kind+" "+s.Reader+" "+s.Who)
		}
	}
	if strings.Join(got, "; ") != "deliver official reg-1; record citizen self" {
		t.Fatalf("tracker's message entries: %q", got)
	}

	// A citizen with an age recipient: the stored body is the age file.
	toKovac, err := box.Deliver(ctx, "reg-1", "P-300", message.Draft{Subject: "Passport", Body: "collect it at embassy-north"})
	if err != nil || !toKovac.SealedToCitizen {
		t.Fatalf("to an age recipient: %+v %v", toKovac, err)
	}
	km, err := box.OpenMessage(ctx, "P-300", toKovac.ID)
	if err != nil || km.Body != "" {
		t.Fatalf("open: %+v %v", km, err)
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(km.AgeBody)), ident)
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(r); string(plain) != "collect it at embassy-north" {
		t.Fatalf("decrypted %q", plain)
	}

	// What the host stores: neither the text nor Alice's person id.
	if _, _, err := home.log.WaitPublished(ctx, home.log.Size()); err != nil {
		t.Fatal(err)
	}
	leaks := []string{secret, "Pension", "P-100", "collect it at embassy-north"}
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, l := range leaks {
			if bytes.Contains(b, []byte(l)) {
				t.Errorf("%s holds %q in clear", p, l)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
