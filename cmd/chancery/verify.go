package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

type verifyOptions struct {
	target   string   // ledger directory or URL
	charters []string // charter chain, oldest first
	stateDir string   // where verified checkpoints are remembered
	noState  bool
	pinSite  string // site whose charter-pinned TLS key an https URL must present
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [--charter FILE]... LEDGER_DIR|URL",
		Short: "Audit a whole ledger: every tile, the checkpoint signature, consistency with earlier runs",
		Long: `Verify checks a Chancery ledger as an independent auditor would.

LEDGER_DIR is the folder holding "checkpoint" and "tile/" (in a state
directory: D/sites/<site>/ledger); URL is where a site serves that folder.

It rebuilds the Merkle tree from every entry bundle and compares every tile
the ledger holds, checks the root against the checkpoint, that every entry
decodes and that epochs never go backwards, and verifies the checkpoint's
signature with the site keys of the charter.

The charter comes from --charter (give every version, oldest first, to check
an amended charter's chain). Without --charter it is looked for beside the
ledger (charter.yaml in the ledger folder or up to three levels above). When
there is none, only hashes are checked and the output says plainly that no
signature was checked.

The verified checkpoint is remembered per origin (in --state-dir), and each
run checks that the ledger is consistent with the last one verified — so
checking two sites of the same guest one after the other also detects a
fork between them.

Exit status is non-zero on any discrepancy; the message names the first bad
entry index or tile.`,
		Example: `  chancery verify /var/lib/chancery/sites/home/ledger
  chancery verify --charter charter-v1.yaml --charter charter-v2.yaml https://embassy.example/guests/demo/ledger`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = args[0]
			return runVerify(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringArrayVar(&o.charters, "charter", nil, "charter file; repeat for every version of an amended charter, oldest first")
	cmd.Flags().StringVar(&o.stateDir, "state-dir", defaultVerifyStateDir(), "directory where the last verified checkpoint of each origin is kept")
	cmd.Flags().BoolVar(&o.noState, "no-state", false, "neither read nor save the last verified checkpoint")
	cmd.Flags().StringVar(&o.pinSite, "pin-site", "", "for an https URL: trust only the TLS key the charter (--charter) pins for this site id")
	return cmd
}

func defaultVerifyStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "chancery", "verified")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "chancery", "verified")
	}
	return ""
}

func runVerify(ctx context.Context, o verifyOptions, stdout, stderr io.Writer) error {
	var f ledger.Fetcher
	isURL := strings.HasPrefix(o.target, "http://") || strings.HasPrefix(o.target, "https://")
	if isURL {
		hf := ledger.HTTPFetcher{Base: o.target}
		// Not mustPin: a ledger verifies by its signatures, and may be
		// read from a static mirror that is no site.
		c, err := siteClient(o.target, lastOf(o.charters), o.pinSite, false)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		hf.Client = c
		f = hf
	} else {
		if _, err := os.Stat(filepath.Join(o.target, ledger.CheckpointPath)); err != nil {
			return fmt.Errorf("verify %s: not a ledger directory (no checkpoint): %w", o.target, err)
		}
		f = ledger.DirFetcher(o.target)
	}

	charterFiles := o.charters
	if len(charterFiles) == 0 && !isURL {
		p, err := state.FindCharter(o.target)
		if err != nil {
			return err
		}
		if p != "" {
			charterFiles = []string{p}
		}
	}
	var c *charter.Charter
	if len(charterFiles) > 0 {
		var err error
		if c, err = loadCharterChain(charterFiles); err != nil {
			return err
		}
	}

	signed, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return fmt.Errorf("verify %s: read checkpoint: %w", o.target, err)
	}
	head, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return fmt.Errorf("verify %s: %w", o.target, err)
	}

	opts := ledger.VerifyOptions{}
	if c != nil {
		opts.Origin = c.Guest.Origin
		if opts.Verifiers, err = c.CheckpointVerifiers(); err != nil {
			return fmt.Errorf("verify: charter site keys: %w", err)
		}
	}
	statePath := ""
	if !o.noState && o.stateDir != "" {
		sum := sha256.Sum256([]byte(head.Origin))
		statePath = filepath.Join(o.stateDir, hex.EncodeToString(sum[:8])+".checkpoint")
		prev, err := os.ReadFile(statePath)
		switch {
		case err == nil:
			opts.Previous = prev
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("verify: read the last verified checkpoint: %w", err)
		}
	}

	if head.Size >= 100_000 {
		opts.Progress = newProgress(stderr, head.Size)
	}
	rep, err := ledger.Verify(ctx, f, opts)
	if err != nil {
		return fmt.Errorf("verify %s: FAILED: %w", o.target, err)
	}

	cp := rep.Checkpoint
	fmt.Fprintf(stdout, "ledger %s: OK — %d entries, %d tiles and bundles verified\n", cp.Origin, rep.Entries, rep.Tiles)
	fmt.Fprintf(stdout, "checkpoint: size %d, root %x, epoch %d\n", cp.Size, cp.Root, cp.Epoch)
	if n := rep.ByType[ledger.TypeWithheld]; n > 0 {
		// A site's mirror: the tree is whole, but the bytes of registries
		// the charter does not place there never reached it.
		fmt.Fprintf(stdout, "withheld: %d entries are stubs carrying only their leaf hash (registries not placed at this site); their contents were not checked here\n", n)
	}
	if rep.SignatureChecked {
		fmt.Fprintf(stdout, "signature: verified with the site keys of charter %s v%d (%s), signed by %s\n",
			c.Guest.ID, c.Version, c.HashHex()[:16], strings.Join(state.CheckpointSigners(c, signed), ", "))
	} else {
		fmt.Fprintf(stdout, "signature: NOT CHECKED — no charter was given or found beside the ledger; only hashes were verified\n")
	}
	switch {
	case opts.Previous == nil && statePath != "":
		fmt.Fprintf(stdout, "consistency: first verification of this origin here; checkpoint saved for the next run\n")
	case opts.Previous != nil:
		fmt.Fprintf(stdout, "consistency: consistent with the checkpoint verified before (size %d)\n", rep.PreviousSize)
	}
	if statePath != "" {
		if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
			return fmt.Errorf("verify: save checkpoint: %w", err)
		}
		if err := os.WriteFile(statePath, signed, 0o600); err != nil {
			return fmt.Errorf("verify: save checkpoint: %w", err)
		}
	}
	return nil
}

// loadCharterChain reads charter versions oldest first and checks the chain:
// a single version 1 against its own quorum, later versions against their
// predecessors'. The newest is returned.
func loadCharterChain(files []string) (*charter.Charter, error) {
	var chain []*charter.Charter
	for _, p := range files {
		c, err := charter.ReadFile(p)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if chain[0].Version != 1 {
		return nil, fmt.Errorf("charter %s is version %d: give every version from 1 on (--charter, oldest first) so its amendments can be checked", files[0], chain[0].Version)
	}
	if err := charter.VerifyChain(chain); err != nil {
		return nil, fmt.Errorf("charter chain: %w", err)
	}
	return chain[len(chain)-1], nil
}

// newProgress shows a progress bar on a terminal, and otherwise a line
// every tenth of the way, so that logs of long runs show progress too.
func newProgress(w io.Writer, total uint64) func(done, total uint64) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("verifying entries"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
		return func(done, _ uint64) { bar.Set64(int64(done)) }
	}
	next := total / 10
	return func(done, total uint64) {
		if done >= next || done == total {
			fmt.Fprintf(w, "verified %d of %d entries (%d%%)\n", done, total, done*100/max(total, 1))
			next += total / 10
		}
	}
}
