// Package state lays out a guest state's directory — its charter, its
// sealed key files and each site's ledger — and creates the Demo Republic
// that `chancery init` and `chancery demo` use.
//
// Layout of a state directory D:
//
//	D/charter.yaml                    the signed charter (current version)
//	D/custody.json                    the root key split among custodians (shares sealed)
//	D/keys/root.key                   the home's root key, age-encrypted, mode 0600
//	D/keys/<kind>-<id>.key            private keys, age-encrypted, mode 0600
//	D/sites/<site>/ledger/            the guest's ledger as that site holds it
//	                                  (checkpoint, tile/, and wal/ which is not served)
//	D/sites/<site>/blobs/             the site's blob store (fs backend)
package state

import (
	"errors"

	"golang.org/x/mod/sumdb/note"

	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
)

// CharterFile is the name of the charter inside a state directory.
const CharterFile = "charter.yaml"

// Layout names the files of one state directory.
type Layout struct{ Dir string }

// Charter is the path of the current charter.
func (l Layout) Charter() string { return filepath.Join(l.Dir, CharterFile) }

// Keys is the directory of private key files.
func (l Layout) Keys() string { return filepath.Join(l.Dir, "keys") }

// Key is the path of one private key file: kind is "official", "host",
// "custodian", "site-checkpoint" or "site-tls".
func (l Layout) Key(kind, id string) string {
	return filepath.Join(l.Keys(), kind+"-"+id+".key")
}

// RootKey is the home's sealed root key file.
func (l Layout) RootKey() string { return filepath.Join(l.Keys(), "root.key") }

// Custody is the custody package: the root key split among the custodians,
// each share sealed to its custodian. It holds nothing in clear.
func (l Layout) Custody() string { return filepath.Join(l.Dir, "custody.json") }

// Blobs is the blob store directory of a site (fs backend).
func (l Layout) Blobs(site string) string {
	return filepath.Join(l.Dir, "sites", site, "blobs")
}

// Ledger is the ledger directory of a site.
func (l Layout) Ledger(site string) string {
	return filepath.Join(l.Dir, "sites", site, "ledger")
}

// FindCharter looks for a charter beside a ledger directory: in the
// directory itself and up to three levels above it, which covers
// D/sites/<site>/ledger. It returns "" when there is none.
func FindCharter(ledgerDir string) (string, error) {
	dir, err := filepath.Abs(ledgerDir)
	if err != nil {
		return "", err
	}
	for i := 0; i < 4; i++ {
		p := filepath.Join(dir, CharterFile)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("look for charter: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", nil
}

// CheckpointSigners names the charter's sites whose checkpoint keys signed
// a checkpoint note ("site home").
func CheckpointSigners(c *charter.Charter, signed []byte) []string {
	var out []string
	for _, s := range c.Sites {
		v, err := ledger.ParseVerifierKey(s.CheckpointKey)
		if err != nil {
			continue
		}
		if _, _, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, note.VerifierList(v)); err == nil {
			out = append(out, "site "+s.ID)
		}
	}
	return out
}
