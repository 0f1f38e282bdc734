package guest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
)

// Reconciliation. A home cut off by a disaster may have gone on writing
// after the last point any site received; meanwhile another site was
// activated and wrote its own epoch. The two ledgers share a prefix and
// then fork. The active site's ledger is the state's; the home's entries
// past the fork are not dropped: Reconcile puts them in a report, moves the
// home's ledger aside (kept as evidence, never deleted) and leaves the home
// ready to start in standby and catch up. Officials then decide, entry by
// entry, to re-apply (the report's JSONL imports with chancery import
// after failback) or to discard.

// ReconcileOptions configure Reconcile.
type ReconcileOptions struct {
	StateDir string
	Site     string // the home's site id
	// From is the ledger URL of the active site for this guest, e.g.
	// http://127.0.0.1:7101/guests/demo-republic/ledger (or a directory).
	From   string
	Client *http.Client
	// Keys, if set, decrypts the forked records into the report's JSONL so
	// that officials can re-apply them; without it the report holds their
	// sealed metadata only.
	Keys *seal.Keyring
	Now  func() time.Time
}

// ReconcileReport is what Reconcile found and did.
type ReconcileReport struct {
	Guest        string            `json:"guest"`
	Site         string            `json:"site"`
	At           time.Time         `json:"at"`
	HomeSize     uint64            `json:"home_size"`
	ActiveSize   uint64            `json:"active_size"`
	ActiveEpoch  uint64            `json:"active_epoch"`
	Fork         uint64            `json:"fork"` // first index where the ledgers differ
	Entries      []ForkedEntry     `json:"entries"`
	MovedTo      string            `json:"ledger_moved_to,omitempty"`
	ReportFile   string            `json:"report_file,omitempty"`
	ReapplyFile  string            `json:"reapply_file,omitempty"`
	Decrypted    int               `json:"decrypted"`
	ByType       map[string]uint64 `json:"by_type"`
	ActiveSigner []string          `json:"active_signed_by"`
}

// ForkedEntry is one entry the home wrote past the fork.
type ForkedEntry struct {
	Index    uint64    `json:"ledger_index"`
	Type     string    `json:"type"`
	Epoch    uint64    `json:"epoch"`
	Time     time.Time `json:"time"`
	Registry string    `json:"registry,omitempty"`
	BlindID  string    `json:"blind_id,omitempty"`
	Version  uint64    `json:"version,omitempty"`
	Deleted  bool      `json:"deleted,omitempty"`
	ID       string    `json:"id,omitempty"` // when decrypted
	Entry    string    `json:"entry"`        // the encoded entry, base64
}

// Reconcile compares the home's ledger with the active site's, reports the
// home's entries past the fork and moves the home's ledger aside. The home
// must be stopped (its ledger is locked while it runs).
func Reconcile(ctx context.Context, o ReconcileOptions) (*ReconcileReport, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	l := state.Layout{Dir: o.StateDir}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		return nil, err
	}
	dir := l.Ledger(o.Site)
	home := ledger.DirFetcher(dir)
	var remote ledger.Fetcher = ledger.DirFetcher(o.From)
	if strings.HasPrefix(o.From, "http://") || strings.HasPrefix(o.From, "https://") {
		remote = ledger.HTTPFetcher{Base: o.From, Client: o.Client}
	}
	homeSize, err := durableSize(ctx, dir, c.Guest.Origin)
	if err != nil {
		return nil, err
	}
	signed, err := remote.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return nil, fmt.Errorf("reconcile: the active site's checkpoint: %w", err)
	}
	vs, err := c.CheckpointVerifiers()
	if err != nil {
		return nil, err
	}
	acp, _, err := ledger.OpenCheckpoint(signed, c.Guest.Origin, vs)
	if err != nil {
		return nil, fmt.Errorf("reconcile: the active site's checkpoint: %w", err)
	}
	rep := &ReconcileReport{Guest: c.Guest.ID, Site: o.Site, At: o.Now().UTC(), HomeSize: homeSize, ActiveSize: acp.Size,
		ActiveEpoch: acp.Epoch, ByType: map[string]uint64{}, ActiveSigner: state.CheckpointSigners(c, signed)}
	fork, err := forkPoint(ctx, home, homeSize, remote, acp.Size)
	if err != nil {
		return nil, err
	}
	rep.Fork = fork
	var reapply bytes.Buffer
	if fork < homeSize {
		err := ledger.Scan(ctx, home, fork, homeSize, func(idx uint64, raw []byte) error {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				return fmt.Errorf("home entry %d: %w", idx, err)
			}
			fe := ForkedEntry{Index: idx, Type: e.Type.String(), Epoch: e.Epoch, Time: e.Time, Entry: base64.StdEncoding.EncodeToString(raw)}
			rep.ByType[fe.Type]++
			if e.Type == ledger.TypeRecord {
				re, err := registry.UnmarshalRecordEntry(e.Payload)
				if err == nil {
					fe.Registry, fe.Version, fe.Deleted = re.Registry, re.Version, re.Kind == registry.KindTombstone
					fe.BlindID = fmt.Sprintf("%x", re.BlindID)
				}
				if o.Keys != nil {
					if rec, _, err := registry.OpenEntry(o.Keys, c.Guest.ID, raw); err == nil && !rec.Deleted {
						fe.ID = rec.ID
						line, _ := json.Marshal(struct {
							Registry string          `json:"registry"`
							ID       string          `json:"id"`
							Record   json.RawMessage `json:"record"`
						}{rec.Registry, rec.ID, rec.Data})
						reapply.Write(append(line, '\n'))
						rep.Decrypted++
					}
				}
			}
			rep.Entries = append(rep.Entries, fe)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if fork == homeSize && homeSize <= acp.Size {
		// Nothing forked: the home's ledger is a prefix of the active
		// site's, and the home may follow it as it is.
		return rep, nil
	}
	stamp := rep.At.Format("20060102T150405Z")
	rdir := filepath.Join(o.StateDir, "reconciliation")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	rep.MovedTo = dir + ".forked-" + stamp
	rep.ReportFile = filepath.Join(rdir, stamp+".json")
	if reapply.Len() > 0 {
		rep.ReapplyFile = filepath.Join(rdir, stamp+".reapply.jsonl")
		if err := fsutil.WriteNew(rep.ReapplyFile, reapply.Bytes(), 0o600); err != nil {
			return nil, fmt.Errorf("reconcile: %w", err)
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteNew(rep.ReportFile, b, 0o600); err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	// Set aside only once the report is durable: the forked entries must
	// exist somewhere at every moment.
	if err := os.Rename(dir, rep.MovedTo); err != nil {
		return nil, fmt.Errorf("reconcile: move the home's ledger aside: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	return rep, nil
}

// durableSize is the number of entries durable in the home's ledger: its
// write-ahead log is replayed, since a home killed mid-stream may hold
// entries it never published a checkpoint for, and those count too.
func durableSize(ctx context.Context, dir, origin string) (uint64, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	lg, err := ledger.Open(ctx, dir, ledger.Options{Origin: origin, Mirror: true})
	if err == nil {
		n := lg.MirrorSize()
		lg.Close()
		return n, nil
	}
	if errors.Is(err, ledger.ErrLocked) {
		return 0, fmt.Errorf("reconcile: %w: stop the home first", err)
	}
	b, rerr := os.ReadFile(filepath.Join(dir, ledger.CheckpointPath))
	if errors.Is(rerr, fs.ErrNotExist) {
		return 0, nil
	}
	if rerr != nil {
		return 0, rerr
	}
	cp, err := ledger.ParseSignedCheckpoint(b)
	return cp.Size, err
}

// forkPoint finds the first index at which the two ledgers' leaves differ,
// comparing level-0 tiles (256 leaf hashes each); withheld stubs carry the
// same leaf hashes, so a site's mirror compares as the writer's ledger.
func forkPoint(ctx context.Context, a ledger.Fetcher, aSize uint64, b ledger.Fetcher, bSize uint64) (uint64, error) {
	n := min(aSize, bSize)
	for t := uint64(0); t*ledger.TileWidth < n; t++ {
		w := int(min(ledger.TileWidth, n-t*ledger.TileWidth))
		ha, err := leafHashes(ctx, a, t, w, aSize)
		if err != nil {
			return 0, fmt.Errorf("home tile 0/%d: %w", t, err)
		}
		hb, err := leafHashes(ctx, b, t, w, bSize)
		if err != nil {
			return 0, fmt.Errorf("active site tile 0/%d: %w", t, err)
		}
		for i := 0; i < w; i++ {
			if !bytes.Equal(ha[32*i:32*i+32], hb[32*i:32*i+32]) {
				return t*ledger.TileWidth + uint64(i), nil
			}
		}
	}
	return n, nil
}

// leafHashes reads the first w leaf hashes of level-0 tile t of a ledger of
// the given size: the full tile if there is one, else the partial one.
func leafHashes(ctx context.Context, f ledger.Fetcher, t uint64, w int, size uint64) ([]byte, error) {
	have := int(min(ledger.TileWidth, size-t*ledger.TileWidth))
	paths := []string{ledger.TilePath(0, t, 0)}
	if have < ledger.TileWidth {
		paths = []string{ledger.TilePath(0, t, have), ledger.TilePath(0, t, 0)}
	}
	var last error
	for _, p := range paths {
		b, err := f.Fetch(ctx, p)
		if err != nil {
			last = err
			continue
		}
		if len(b) < 32*w {
			return nil, fmt.Errorf("%s holds %d hashes, need %d", p, len(b)/32, w)
		}
		return b[:32*w], nil
	}
	return nil, last
}
