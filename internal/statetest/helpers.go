package statetest

import (
	"bytes"
	"crypto/ed25519"
	"sync"
	"testing"

	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
)

// SyncBuffer is a log sink that server goroutines and a test share.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// OfficialKey opens the signing key of official id in the state dir,
// sealed under pass.
func OfficialKey(t testing.TB, dir, id string, pass []byte) ed25519.PrivateKey {
	t.Helper()
	k, err := keyfile.ReadEd25519(state.Layout{Dir: dir}.Key("official", id), keyfile.Protector{Passphrase: pass})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
