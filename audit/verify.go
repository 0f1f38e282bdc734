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

// ErrFork reports a ledger whose origin is that of a checkpoint verified
// before but whose tree does not extend that checkpoint's: one log that
// has shown two histories. A different log is never reported so, because
// it carries another origin (every founding gets its own) and is
// remembered apart.
var ErrFork = errors.New("FORK")

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
	// Custody is the ledger's custody events, checked against the
	// charter's pinned package; nil when the ledger holds no key event
	// and the charter pins none.
	Custody *Custody
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
// by its sites' keys and the newest custody event against the package the
// charter pins. With a state directory, the ledger must also be
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
		if opts.Previous != nil {
			if ferr := l.fork(ctx, opts.Previous, head, v.StatePath, err); ferr != nil {
				return nil, ferr
			}
		}
		return nil, fmt.Errorf("FAILED: %w", err)
	}
	v.Report, v.Previous = rep, opts.Previous != nil
	if l.Charter != nil {
		v.Signers = state.CheckpointSigners(l.Charter, signed)
	}
	if rep.ByType[ledger.TypeKeyEvent] > 0 || (l.Charter != nil && l.Charter.Custodians.Package != "") {
		if v.Custody, err = l.custody(ctx, rep.Checkpoint.Size); err != nil {
			return nil, fmt.Errorf("FAILED: %w", err)
		}
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

// fork tells whether a failed verification is a fork: the ledger rolled
// back below the checkpoint verified before, or its own tiles prove a tree
// that does not extend it. It returns an error saying so, wrapping
// ErrFork and the verification error, or nil when the failure is
// something else (a damaged tile, an unreadable entry).
func (l *Ledger) fork(ctx context.Context, previous []byte, head ledger.Checkpoint, statePath string, verr error) error {
	prev, err := ledger.ParseSignedCheckpoint(previous)
	if err != nil || prev.Origin != head.Origin {
		return nil
	}
	if head.Size >= prev.Size {
		prf, err := ledger.NewProver(l.Fetcher, 0).Consistency(ctx, prev.Size, head.Size)
		if err != nil || ledger.VerifyConsistency(prev.Size, head.Size, prf, prev.Root, head.Root) == nil {
			return nil
		}
	}
	return fmt.Errorf("FAILED: %w: %w\n"+
		"This ledger has origin %s, the origin of the checkpoint of size %d verified before (kept in %s), "+
		"and its tree does not extend that checkpoint. The same origin with an inconsistent tree is a fork "+
		"(or a rollback) of one log: it has shown two histories. A different log would have a different "+
		"origin, and would be verified apart without this error. Only a state founded before every "+
		"founding got its own origin (origin exactly %s) can be a different log here; remove %s if you know it is one.",
		ErrFork, verr, head.Origin, prev.Size, statePath, state.DemoOrigin, statePath)
}
