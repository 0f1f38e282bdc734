// Package system_test holds the whole-system tests: real `chancery serve`
// processes (a home and its embassies) on loopback, with fault proxies on
// the wire between them — crash, partition and randomized schedules of
// loss, activation and failback. They import only what a user runs (the
// binary) and the public client packages, so internals can move under
// them without a change here.
package system_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"sync"
	"testing"

	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
)

const testPass = "site test passphrase"

// founded is a Demo Republic founded once per test binary and copied into
// each test's directory.
var founded = statetest.New(testPass)

// newState returns a fresh copy of a founded Demo Republic.
func newState(t *testing.T) string { return founded.Copy(t) }

// syncBuffer is a log sink the server goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func officialKey(t *testing.T, dir, id string) ed25519.PrivateKey {
	t.Helper()
	k, err := keyfile.ReadEd25519(state.Layout{Dir: dir}.Key("official", id), keyfile.Protector{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMain(m *testing.M) {
	code := m.Run()
	founded.Remove()
	os.Exit(code)
}

func copyDir(src, dst string) error { return statetest.CopyDir(src, dst) }
