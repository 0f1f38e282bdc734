package audit

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/pintls"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

// Source says where a ledger is read from and what it is checked against.
type Source struct {
	// Target is a ledger directory (holding "checkpoint" and "tile/") or
	// the http(s) URL a site serves it at.
	Target string
	// Charters is the charter chain, oldest first. Empty: for a
	// directory, the charter found beside it (state.FindCharter); for a
	// URL, none.
	Charters []string
	// PinSite, for an https URL, is the site whose charter-pinned TLS key
	// the server must present. It needs Charters.
	PinSite string
}

// Ledger is a ledger opened for audit.
type Ledger struct {
	Target  string
	Fetcher ledger.Fetcher
	// Charter is the charter in force the ledger is checked against; nil
	// when none was given or found, and then only hashes are checked.
	Charter *charter.Charter
}

// isURL reports whether target names a served ledger rather than a
// directory.
func isURL(target string) bool {
	return strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://")
}

// Open resolves src: the charter chain, verified, and the fetcher, pinned
// to a site's TLS key when src asks.
func Open(src Source) (*Ledger, error) {
	l := &Ledger{Target: src.Target}
	files := src.Charters
	if !isURL(src.Target) {
		if _, err := os.Stat(filepath.Join(src.Target, ledger.CheckpointPath)); err != nil {
			return nil, fmt.Errorf("%s is not a ledger directory (no checkpoint): %w", src.Target, err)
		}
		if len(files) == 0 {
			p, err := state.FindCharter(src.Target)
			if err != nil {
				return nil, err
			}
			if p != "" {
				files = []string{p}
			}
		}
	}
	if len(files) > 0 {
		c, err := charter.ReadChain(files)
		if err != nil {
			return nil, err
		}
		l.Charter = c
	}
	switch {
	case !isURL(src.Target):
		l.Fetcher = ledger.DirFetcher(src.Target)
	case src.PinSite == "":
		l.Fetcher = ledger.HTTPFetcher{Base: src.Target}
	case l.Charter == nil:
		return nil, fmt.Errorf("pinning site %q needs the charter (--charter)", src.PinSite)
	default:
		client, err := PinnedClient(l.Charter, src.PinSite)
		if err != nil {
			return nil, err
		}
		l.Fetcher = ledger.HTTPFetcher{Base: src.Target, Client: client}
	}
	return l, nil
}

// PinnedClient is an HTTPS client that trusts only the TLS key charter c
// pins for site siteID: no certificate authority is consulted.
func PinnedClient(c *charter.Charter, siteID string) (*http.Client, error) {
	s, ok := c.Site(siteID)
	if !ok {
		return nil, fmt.Errorf("--pin-site %q is not a site of %s's charter", siteID, c.Guest.ID)
	}
	pub, err := s.TLSPublicKey()
	if err != nil {
		return nil, fmt.Errorf("tls key of site %s: %w", siteID, err)
	}
	cfg, err := pintls.ClientConfig(nil, pub)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: pintls.Transport(cfg)}, nil
}

// Checkpoint is a ledger's signed checkpoint as read, and who signed it.
type Checkpoint struct {
	ledger.Checkpoint
	// Signed is the signed note as served.
	Signed []byte
	// Checked: the signature was verified with the charter's site keys.
	// Without a charter nothing was, and Signers is empty.
	Checked bool
	// Signers names the charter's sites whose checkpoint keys signed it
	// ("site home").
	Signers []string
}

// ReadCheckpoint reads the ledger's signed checkpoint and, with a
// charter, checks its signature with the charter's site keys and resolves
// which sites signed it.
func (l *Ledger) ReadCheckpoint(ctx context.Context) (*Checkpoint, error) {
	signed, err := l.Fetcher.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return nil, fmt.Errorf("read the checkpoint: %w", err)
	}
	cp := &Checkpoint{Signed: signed}
	if l.Charter == nil {
		if cp.Checkpoint, err = ledger.ParseSignedCheckpoint(signed); err != nil {
			return nil, err
		}
		return cp, nil
	}
	c := l.Charter
	v, err := c.CheckpointVerifiers()
	if err != nil {
		return nil, fmt.Errorf("charter site keys: %w", err)
	}
	if cp.Checkpoint, _, err = ledger.OpenCheckpoint(signed, c.Guest.Origin, v); err != nil {
		return nil, fmt.Errorf("the ledger's checkpoint does not verify with charter %s v%d: %w", c.Guest.ID, c.Version, err)
	}
	cp.Checked, cp.Signers = true, state.CheckpointSigners(c, signed)
	return cp, nil
}
