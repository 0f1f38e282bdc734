package site

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

// The tests here hold the rules that one writer path gives every site:
// what an active embassy does is what a home does, and the reverse.

// TestHomeFollowsOnlyInStandby: a home whose ledger says another site
// writes now — it followed embassy-north in standby — refuses to start as
// the writer, and says how to start it; started in standby it follows.
func TestHomeFollowsOnlyInStandby(t *testing.T) {
	f := startAccessFixture(t)
	l := state.Layout{Dir: f.dir}
	// The home's ledger becomes a copy of embassy-north's mirror, as a
	// standby home holds it: it has the activation of epoch 2.
	home := l.Ledger("home")
	if err := os.RemoveAll(home); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", f.tn.Ledger().Dir(), home).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	os.Remove(filepath.Join(home, "wal", "lock"))
	cfg := &Config{StateDir: f.dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: ReplicationConfig{Disabled: true}}
	opts := Options{Local: guest.LocalOptions{Passphrase: []byte(accessPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}}
	_, err := Open(context.Background(), cfg, opts)
	if err == nil || !strings.Contains(err.Error(), "embassy-north writes epoch 2") || !strings.Contains(err.Error(), "standby: true") {
		t.Fatalf("home opened over a ledger that embassy-north writes: %v, want a refusal saying to start in standby", err)
	}
	cfg.Standby = true
	s, err := Open(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("standby: %v", err)
	}
	defer s.Close()
	if !s.home.Ledger().IsMirror() || s.Local() != nil {
		t.Fatal("the standby home writes, or holds keys")
	}
}
