package site_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/services/message"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestOfficialSendsAMessage: through the officials' API a registrar
// sends a citizen a message; the home's guest lists it in the citizen's
// inbox and no one else's; a message to someone not in the population
// register is refused naming them, and an official without the
// registrar role may not send. No file the site stores holds the text.
func TestOfficialSendsAMessage(t *testing.T) {
	dir := t.TempDir()
	_, err := found.Init(context.Background(), found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: []byte(testPass), WorkFactor: 10},
		Amend: func(c *charter.Charter) error {
			c.Registries = append(c.Registries, charter.Registry{Name: "messages", Classification: charter.ClassSecret,
				Sites: []string{"home", "embassy-north", "embassy-south"}, Index: []string{"person"}, Sync: charter.SyncAsync})
			return c.SetService(message.Section, message.Config{Registry: "messages", People: "population"})
		}})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testSite{dir: dir, logs: &syncBuffer{}}
	ts.start(t)
	ctx := context.Background()
	reg := ts.client(t, "registrar")
	if _, err := reg.Put(ctx, "population", "DR-7", json.RawMessage(`{"national_id":"DR-7","last_name":"Okafor"}`)); err != nil {
		t.Fatal(err)
	}
	const text = "Your passport is ready at embassy-north"
	rc, err := reg.SendMessage(ctx, siteapi.MessageRequest{Person: "DR-7", Subject: "Passport", Body: text})
	if err != nil || rc.ID == "" || rc.Version != 1 {
		t.Fatalf("send: %+v %v", rc, err)
	}
	var ae *siteapi.APIError
	if _, err := reg.SendMessage(ctx, siteapi.MessageRequest{Person: "DR-404", Subject: "x", Body: "y"}); !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "DR-404") {
		t.Fatalf("to no one: %v", err)
	}
	if _, err := reg.SendMessage(ctx, siteapi.MessageRequest{Person: "DR-7", Subject: "", Body: "y"}); err == nil || !strings.Contains(err.Error(), "subject") {
		t.Fatalf("no subject: %v", err)
	}
	if _, err := ts.client(t, "cio").SendMessage(ctx, siteapi.MessageRequest{Person: "DR-7", Subject: "x", Body: "y"}); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("the cio sends: %v, want 403", err)
	}
	g := ts.site.HomeGuest()
	hs, err := g.Inbox(ctx, "DR-7")
	if err != nil || len(hs) != 1 || hs[0].ID != rc.ID || hs[0].Subject != "Passport" || hs[0].From != "registrar" {
		t.Fatalf("DR-7's inbox: %+v %v", hs, err)
	}
	if other, err := g.Inbox(ctx, "DR-8"); err != nil || len(other) != 0 {
		t.Fatalf("another's inbox: %+v %v", other, err)
	}
	m, err := g.OpenMessage(ctx, "DR-7", rc.ID)
	if err != nil || m.Body != text {
		t.Fatalf("open: %+v %v", m, err)
	}
	if _, err := g.OpenMessage(ctx, "DR-8", rc.ID); err == nil {
		t.Fatal("another citizen opened DR-7's message")
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(text)) {
			t.Errorf("%s holds the message in clear", p)
		}
		return nil
	})
}
