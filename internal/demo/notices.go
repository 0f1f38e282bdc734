package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/services/notice"
	"github.com/chancery-gov/chancery/siteapi"
)

// announceAbroad is the demo's public notice at activation: a minister and
// the cio sign "the government is operating from abroad" offline,
// embassy-north (the writer of epoch 2) records it, and the standby
// embassy-south's Atom feed serves it with its proof, which is verified
// with the charter alone. The feed is written to the demo directory.
func announceAbroad(ctx context.Context, c *charter.Charter, layout state.Layout, pass []byte, api *siteapi.Client, southURL string, say func(string, ...any)) error {
	say("== Two officials sign a public notice, offline; embassy-north publishes it and embassy-south's feed serves it")
	s := notice.Signed{Notice: notice.Notice{Guest: c.Guest.ID, ID: "operating-abroad-1", Class: "continuity",
		Title: "The government is operating from abroad",
		Body:  "The home data centre is lost. The state's registries are served from embassy-north; certificates issued there are valid.",
		Lang:  "en", IssuedAt: time.Now().UTC().Truncate(time.Second), Epoch: 2, Site: "embassy-north"}}
	for _, id := range []string{"min-interior", "cio"} {
		key, err := keyfile.ReadEd25519(layout.Key("official", id), keyfile.Protector{Passphrase: pass})
		if err != nil {
			return err
		}
		sig, err := notice.Sign(&s.Notice, id, key)
		clear(key)
		if err != nil {
			return err
		}
		s.Signatures = append(s.Signatures, sig)
	}
	raw, err := s.Marshal()
	if err != nil {
		return err
	}
	published := time.Now()
	rc, err := api.PublishNotice(ctx, raw)
	if err != nil {
		return fmt.Errorf("demo: publish the notice at embassy-north: %w", err)
	}
	v, err := notice.NewVerifier(c)
	if err != nil {
		return err
	}
	feedURL := southURL + "/guests/" + c.Guest.ID
	for {
		feed, err := siteapi.FetchPublic(ctx, nil, feedURL, "/notices.atom", nil)
		if err != nil {
			return fmt.Errorf("demo: embassy-south's notices feed: %w", err)
		}
		ps, err := notice.ParseAtomProofs(feed)
		if err != nil {
			return fmt.Errorf("demo: embassy-south's notices feed: %w", err)
		}
		for _, p := range ps {
			got, err := v.Verify(p)
			if err != nil {
				return fmt.Errorf("demo: a notice of embassy-south's feed does not verify: %w", err)
			}
			if got.Signed.Notice.ID != s.Notice.ID {
				continue
			}
			file := filepath.Join(layout.Dir, "notices.atom")
			if err := os.WriteFile(file, feed, 0o644); err != nil {
				return err
			}
			say("   notice %q at ledger entry %d, signed by %s; embassy-south (standby) serves it in its Atom feed %v after it was posted,",
				s.Notice.Title, rc.Index, strings.Join(got.Signers, ", "), time.Since(published).Round(time.Millisecond))
			say("   proven against checkpoint %d written by %s and cosigned by %s: verified with the charter alone (%s)",
				p.TreeSize, got.Cosigned.Writer, strings.Join(got.Cosigned.Cosigners, ", "), file)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: embassy-south's feed does not serve notice %s yet: %w", s.Notice.ID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
