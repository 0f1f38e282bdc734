package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// TestVerifyReportsSiteKeyRotation: chancery verify names each site outer
// key rotation the ledger records (site, generation, key fingerprint), as
// a site appends it when it rotates (guest/rotate.go).
func TestVerifyReportsSiteKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := keyfile.Protector{Passphrase: []byte("test passphrase"), WorkFactor: 10}
	c, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: p})
	if err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	root, err := seal.ReadRootKeyFile(l.RootKey(), p.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	keys := seal.NewKeyring(c.Guest.ID, root)
	root.Wipe()
	defer keys.Wipe()
	next, _, ev, err := keys.RotateSiteKey("embassy-north", 0, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Wipe()
	payload, err := ev.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	log, err := state.OpenLedger(ctx, l, c, "home", p, ledger.Options{CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := log.Append(ctx, ledger.Entry{Type: ledger.TypeKeyEvent, Epoch: 1, Time: time.Now(), Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := log.WaitPublished(ctx, idx+1); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := verifyOut(t, verifyOptions{target: l.Ledger("home"), noState: true})
	if err != nil {
		t.Fatal(err)
	}
	id := next.ID()
	want := fmt.Sprintf("site key: entry %d rotates the outer key of site embassy-north to generation 1 (key id %x)", idx, id[:8])
	if !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}
