package audit_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/internal/demo"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/internal/state"
)

// TestPinnedURL: a ledger served over TLS with the home's charter-pinned
// key verifies through a client pinned to the home, and the same server
// is refused when the pin names another site.
func TestPinnedURL(t *testing.T) {
	ctx := context.Background()
	c, dir, prot := foundState(t)
	if _, err := demo.Run(ctx, demo.Options{Dir: dir, Passphrase: prot.Passphrase, Persons: 5, DeedPersons: 1, Updates: 1, Appenders: 1}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	key, err := keyfile.ReadEd25519(l.Key("site-tls", "home"), prot)
	if err != nil {
		t.Fatal(err)
	}
	peers, err := pintls.SiteKeys(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pintls.ServerConfig(key, "home", peers)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.StripPrefix("/ledger/", http.FileServer(http.Dir(l.Ledger("home")))))
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	defer srv.Close()

	src := audit.Source{Target: srv.URL + "/ledger", Charters: []string{l.Charter()}, PinSite: "home"}
	led, err := audit.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	v, err := led.Verify(ctx, audit.VerifyOptions{})
	if err != nil || !v.Report.SignatureChecked || len(v.Signers) == 0 {
		t.Fatalf("pinned to the home: %+v, %v", v, err)
	}
	src.PinSite = "embassy-north"
	if led, err = audit.Open(src); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Verify(ctx, audit.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "read checkpoint") {
		t.Fatalf("pinned to another site's key: %v, want the connection refused", err)
	}
}
