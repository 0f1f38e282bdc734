package statetest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
)

// Mirror copies the home ledger src to dst as replication leaves an
// embassy's mirror of it: the writer's lock dropped, its checkpoint the
// last one received.
func Mirror(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CopyDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dst, "wal", "lock")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(dst, ledger.CheckpointPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "wal", "received"), cp, 0o600); err != nil {
		t.Fatal(err)
	}
}

// SealedShares are the shares of the custodians of the state in dir
// (their keys sealed under pass), each opened from the custody package
// and sealed to the unseal session whose recipient statement is given,
// as the custodians do at an activation.
func SealedShares(t testing.TB, dir string, pass []byte, recipient []byte, custodians ...string) [][]byte {
	t.Helper()
	l := state.Layout{Dir: dir}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := seal.ReadCustodyPackageFile(l.Custody())
	if err != nil {
		t.Fatal(err)
	}
	_, rcpt, err := continuity.VerifyRecipient(c, pkg, recipient, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, cust := range custodians {
		id, err := keyfile.ReadAgeIdentity(l.Key("custodian", cust), keyfile.Protector{Passphrase: pass})
		if err != nil {
			t.Fatal(err)
		}
		sh, err := pkg.OpenShare(cust, id)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := sh.SealTo(rcpt)
		sh.Wipe()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sealed)
	}
	return out
}
