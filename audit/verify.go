package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

// VerifyOptions are the options of Verify.
type VerifyOptions struct {
	// StateDir keeps the last verified checkpoint of each log origin, so
	// that each run checks the ledger is consistent with the one before
	// (and checking two sites of one guest in turn detects a fork between
	// them). Empty: nothing is read or kept.
	StateDir string
	// Progress, if set, is called as entries are checked.
	Progress func(done, total uint64)
}

// Verified is what Verify found.
type Verified struct {
	Report *ledger.VerifyReport
	// Signed is the checkpoint verified, as served.
	Signed []byte
	// Signers names the sites whose keys signed it (with a charter).
	Signers []string
	// Previous: a checkpoint of this origin verified before was found,
	// and the ledger is consistent with it (Report.PreviousSize).
	Previous bool
	// StatePath is where the checkpoint was saved for the next run; empty
	// without a state directory.
	StatePath string
}

// StatePath is the file in dir that keeps the last verified checkpoint of
// a log origin.
func StatePath(dir, origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".checkpoint")
}

// Verify audits the whole ledger (ledger.Verify): every tile rebuilt from
// the entry bundles, the root against the checkpoint, every entry
// decoded, epochs in order, and with a charter the checkpoint's signature
// by its sites' keys. With a state directory, the ledger must also be
// consistent with the checkpoint of its origin verified before, and the
// checkpoint verified now replaces it, written atomically and durably.
func (l *Ledger) Verify(ctx context.Context, o VerifyOptions) (*Verified, error) {
	signed, err := l.Fetcher.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	head, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		return nil, err
	}
	opts := ledger.VerifyOptions{Progress: o.Progress}
	if c := l.Charter; c != nil {
		opts.Origin = c.Guest.Origin
		if opts.Verifiers, err = c.CheckpointVerifiers(); err != nil {
			return nil, fmt.Errorf("charter site keys: %w", err)
		}
	}
	v := &Verified{Signed: signed}
	if o.StateDir != "" {
		v.StatePath = StatePath(o.StateDir, head.Origin)
		prev, err := os.ReadFile(v.StatePath)
		switch {
		case err == nil:
			opts.Previous = prev
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read the last verified checkpoint %s: %w", v.StatePath, err)
		}
	}
	rep, err := ledger.Verify(ctx, l.Fetcher, opts)
	if err != nil {
		return nil, fmt.Errorf("FAILED: %w", err)
	}
	v.Report, v.Previous = rep, opts.Previous != nil
	if l.Charter != nil {
		v.Signers = state.CheckpointSigners(l.Charter, signed)
	}
	if v.StatePath != "" {
		if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("save the verified checkpoint: %w", err)
		}
		if err := fsutil.Replace(v.StatePath, signed, 0o600); err != nil {
			return nil, fmt.Errorf("save the verified checkpoint %s: %w", v.StatePath, err)
		}
	}
	return v, nil
}
