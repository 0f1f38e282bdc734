package site

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestForgedSuspensionIgnored: a suspension.json the host did not sign,
// or one that names a ledger index that is not its notice, does not
// suspend the guest when the embassy starts; the log says why.
func TestForgedSuspensionIgnored(t *testing.T) {
	ctx := context.Background()
	const pass = "suspension test passphrase"
	dir := t.TempDir()
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: []byte(pass), WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	host, err := keyfile.ReadEd25519(l.Key("host", "northland"), keyfile.Protector{Passphrase: []byte(pass)})
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	given := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second).UTC()
	notice := func(key ed25519.PrivateKey, recordedAt uint64) []byte {
		body := []byte(`{"reason":"forged"}`)
		req, _ := http.NewRequest(http.MethodPost, "http://x/operator/v1/guests/"+c.Guest.ID+"/suspend", bytes.NewReader(body))
		if err := (siteapi.Signer{Guest: c.Guest.ID, Site: "embassy-north", Official: "northland", Key: key, Now: func() time.Time { return given }}).Sign(req); err != nil {
			t.Fatal(err)
		}
		sp := siteapi.Suspension{Guest: c.Guest.ID, Site: "embassy-north", Host: "northland", Signed: "embassy-north", Reason: "forged",
			GivenAt: given, EffectiveAt: given.Add(c.Safeguards.SuspendNoticePeriod()), RecordedAt: &recordedAt,
			Request: siteapi.SignedRequest{Method: req.Method, Target: req.URL.RequestURI(), Signature: req.Header.Get(siteapi.SignatureHeader), Body: body}}
		b, _ := json.Marshal(sp)
		return b
	}
	for _, tc := range []struct {
		name        string
		file        []byte
		wantLog     string
		wantPending bool // the notice is kept, as not yet recorded
	}{
		{"signed by a stranger", notice(stranger, 0), "suspension notice ignored", false},
		{"the host's, naming an index that is not its notice", notice(host, 3), "is not its record", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "north")
			gdir := guest.GuestDir(data, c.Guest.ID)
			if err := os.MkdirAll(gdir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(gdir, "suspension.json"), tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			logs := &lockedBuffer{}
			s, err := Open(ctx, &Config{Site: "embassy-north", Listen: "127.0.0.1:0", InsecureLoopback: true, DataDir: data, PassphraseFile: passFile,
				Guests: []GuestConfig{{Charter: l.Charter(), CheckpointKey: l.Key("site-checkpoint", "embassy-north")}}},
				Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tn := s.tenants[c.Guest.ID]
			if err := tn.Suspended(time.Now()); err != nil {
				t.Fatalf("the guest is suspended on a forged notice: %v", err)
			}
			st := s.tenantStatus(tn)
			if st.SuspendedNow || (st.Suspension != nil) != tc.wantPending || (st.Suspension != nil && st.Suspension.RecordedAt != nil) {
				b, _ := json.Marshal(st)
				t.Fatalf("operator status: %s", b)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Fatalf("log does not say %q:\n%s", tc.wantLog, logs)
			}
		})
	}
}
