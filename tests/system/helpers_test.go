// Package system_test holds the whole-system tests: real `chancery serve`
// processes (a home and its embassies) on loopback, with fault proxies on
// the wire between them — crash, partition and randomized schedules of
// loss, activation and failback. They import only what a user runs (the
// binary) and the public client packages, so internals can move under
// them without a change here.
package system_test

import (
	"crypto/ed25519"
	"os"
	"testing"

	"github.com/chancery-gov/chancery/internal/statetest"
)

const testPass = "site test passphrase"

// founded is a Demo Republic founded once per test binary and copied into
// each test's directory.
var founded = statetest.New(testPass)

// newState returns a fresh copy of a founded Demo Republic.
func newState(t *testing.T) string { return founded.Copy(t) }

type syncBuffer = statetest.SyncBuffer

func officialKey(t *testing.T, dir, id string) ed25519.PrivateKey {
	return statetest.OfficialKey(t, dir, id, []byte(testPass))
}

func TestMain(m *testing.M) {
	code := m.Run()
	founded.Remove()
	os.Exit(code)
}

func copyDir(src, dst string) error { return statetest.CopyDir(src, dst) }
