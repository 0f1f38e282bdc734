package site

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
)

// TestReadyzNamesMissingCustody: an embassy opened without its custody
// package serves its mirror, but /readyz says it is not ready and why;
// with the package it is ready.
func TestReadyzNamesMissingCustody(t *testing.T) {
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
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, custody := range []string{"", l.Custody()} {
		data := filepath.Join(t.TempDir(), "north")
		statetest.Mirror(t, l.Ledger("home"), filepath.Join(data, "guests", c.Guest.ID, "ledger"))
		s, err := Open(ctx, &Config{Site: "embassy-north", Listen: "127.0.0.1:0", InsecureLoopback: true, DataDir: data, PassphraseFile: passFile,
			Guests: []GuestConfig{{Charter: l.Charter(), CheckpointKey: l.Key("site-checkpoint", "embassy-north"), Custody: custody}}},
			Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		var body struct {
			Status  string   `json:"status"`
			Reasons []string `json:"reasons"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		s.Close()
		if custody == "" {
			if w.Code != http.StatusServiceUnavailable || len(body.Reasons) != 1 || !strings.Contains(body.Reasons[0], "no custody package") {
				t.Fatalf("embassy without custody: %d %s", w.Code, w.Body)
			}
		} else if w.Code != http.StatusOK {
			t.Fatalf("embassy with custody: %d %s", w.Code, w.Body)
		}
	}
}
