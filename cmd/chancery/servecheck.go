package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/site"
)

// configCheck gathers the problems serve --check finds, each naming the
// configuration field it is about.
type configCheck struct {
	problems []string
	// wrongKey are the problems that make the site impersonate another
	// (a TLS or checkpoint key the charter pins for another site): serve
	// refuses to start with one.
	wrongKey []string
	pass     []byte // the sites' passphrase, when one is given: keys are then opened
}

func (k *configCheck) add(field, format string, a ...any) {
	k.problems = append(k.problems, field+": "+fmt.Sprintf(format, a...))
}

// private checks that a key file exists and that only its owner may read
// it.
func (k *configCheck) private(field, path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		k.add(field, "%v", err)
		return false
	}
	if fi.Mode().Perm()&0o077 != 0 {
		k.add(field, "%s is mode %04o: a key file must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	return true
}

// siteKey checks the site's sealed key file at path against the key the
// charter publishes for it (pub), when the passphrase is known.
func (k *configCheck) siteKey(field, path string, pub func() (ed25519.PublicKey, error), what string) {
	if !k.private(field, path) || k.pass == nil {
		return
	}
	key, err := keyfile.ReadEd25519(path, keyfile.Protector{Passphrase: k.pass})
	if err != nil {
		k.add(field, "%v", err)
		return
	}
	defer clear(key)
	want, err := pub()
	if err != nil {
		k.add(field, "the charter's %s: %v", what, err)
		return
	}
	if !want.Equal(key.Public()) {
		k.add(field, "%s is not the %s the charter pins for this site (another site's key?)", path, what)
		k.wrongKey = append(k.wrongKey, k.problems[len(k.problems)-1])
	}
}

// siteIn checks that id is a site of c with the role the config implies.
func (k *configCheck) siteIn(field string, c *charter.Charter, id, role string) *charter.Site {
	s, ok := c.Site(id)
	if !ok {
		k.add(field, "site %q is not a site of %s's charter (its sites: %s)", id, c.Guest.ID, strings.Join(siteIDs(c), ", "))
		return nil
	}
	if s.Role != role {
		k.add(field, "site %s is the %s of %s's charter, but this configuration runs it as the %s", id, s.Role, c.Guest.ID, role)
	}
	return s
}

// runServeCheck validates a site configuration as serve would load it,
// then what is on disk: the charter and the site's place in it, the key
// files (owner-only, and, with the passphrase, the TLS key against the
// charter's pin), an embassy's custody packages. It prints
// every problem and returns an error when there is one.
func runServeCheck(w io.Writer, o serveOptions) error {
	var override func(*site.Config)
	if o.insecureLoopback {
		override = func(c *site.Config) { c.InsecureLoopback, c.TLS, c.TLSKey = true, nil, "" }
	}
	cfg, err := site.LoadConfigWith(o.config, override)
	if err != nil {
		fmt.Fprintf(w, "%s: NOT OK\n  %v\n", o.config, err)
		return fmt.Errorf("serve --check: %w", err)
	}
	k := checkConfig(cfg)
	defer clear(k.pass)
	if len(k.problems) > 0 {
		fmt.Fprintf(w, "%s: NOT OK, %d problem(s)\n", o.config, len(k.problems))
		for _, p := range k.problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		return fmt.Errorf("serve --check %s: %d problem(s), the first: %s", o.config, len(k.problems), k.problems[0])
	}
	keys := "key files present and owner-only; not opened (no passphrase given)"
	if k.pass != nil {
		keys = "the TLS key opened and matches the charter's pin"
	}
	fmt.Fprintf(w, "%s: OK (site %s; %s)\n", o.config, cfg.Site, keys)
	return nil
}

// checkConfig runs serve --check's checks on a loaded configuration. The
// caller clears the passphrase it read (k.pass).
func checkConfig(cfg *site.Config) *configCheck {
	k := &configCheck{}
	if cfg.PassphraseFile != "" {
		k.private("passphrase_file", cfg.PassphraseFile)
	}
	if p, err := keyfile.PassphraseFromEnv(cfg.PassphraseFile); err == nil {
		k.pass = p
	}
	var charters []*charter.Charter
	if cfg.StateDir != "" {
		l := state.Layout{Dir: cfg.StateDir}
		c, err := charter.ReadVerified(l.Charter())
		if err != nil {
			k.add("state_dir", "%v", err)
		} else {
			charters = append(charters, c)
			if s := k.siteIn("site", c, cfg.Site, charter.RoleHome); s != nil {
				if cfg.TLSKey != "" {
					k.siteKey("tls_key", cfg.TLSKey, s.TLSPublicKey, "TLS key")
				}
				k.private("state_dir", l.Key("site-checkpoint", s.ID))
			}
			if _, err := os.Stat(l.RootKey()); err != nil {
				k.add("state_dir", "the sealed root key: %v", err)
			}
		}
	} else {
		if fi, err := os.Stat(cfg.DataDir); err == nil && !fi.IsDir() {
			k.add("data_dir", "%s is not a directory", cfg.DataDir)
		} else if err != nil {
			if _, perr := os.Stat(filepath.Dir(cfg.DataDir)); perr != nil {
				k.add("data_dir", "%v (nor does its parent exist, to create it in)", err)
			}
		}
		for i, g := range cfg.Guests {
			f := fmt.Sprintf("guests[%d]", i)
			c, err := charter.ReadVerified(g.Charter)
			if err != nil {
				k.add(f+".charter", "%v", err)
				continue
			}
			charters = append(charters, c)
			id := g.Site
			if id == "" {
				id = cfg.Site
			}
			s := k.siteIn(f+".site", c, id, charter.RoleEmbassy)
			if s == nil {
				continue
			}
			k.private(f+".checkpoint_key", g.CheckpointKey)
			if cfg.TLSKey != "" {
				k.siteKey("tls_key", cfg.TLSKey, s.TLSPublicKey, "TLS key")
			}
			if g.Custody == "" {
				k.add(f+".custody", "missing: without the guest's custody package the site can be activated but never unsealed")
			} else if p, err := seal.ReadCustodyPackageFile(g.Custody); err != nil {
				k.add(f+".custody", "%v", err)
			} else if p.Guest() != c.Guest.ID {
				k.add(f+".custody", "%s is the custody package of %s, not %s", g.Custody, p.Guest(), c.Guest.ID)
			}
		}
	}
	for id := range cfg.Peers {
		known := false
		for _, c := range charters {
			if _, ok := c.Site(id); ok {
				known = true
			}
		}
		if !known {
			k.add("peers."+id, "not a site of any charter this site holds")
		}
	}
	return k
}
