// Package demo tells the continuity story of the Demo Republic on one
// machine and reports what happened with measured figures. It is what
// `chancery demo` runs; later stages (replication, activation, failback)
// extend the same story.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
)

// Options configure Run.
type Options struct {
	// Dir is the state directory. Empty means a fresh temporary one, removed
	// afterwards unless Keep is set.
	Dir string
	// Passphrase opens the state's key files. For a fresh temporary state
	// a random one is generated and held in memory only.
	Passphrase []byte
	// Entries is how many typed entries to append (default 5000).
	Entries int
	// Appenders is how many concurrent writers append them (default 64).
	Appenders int
	// Keep leaves a temporary state directory in place.
	Keep bool
	// WorkFactor is the scrypt work factor for a fresh state's key files.
	WorkFactor int
}

// Report is what Run measured.
type Report struct {
	Dir            string
	Charter        string // hash
	Entries        uint64
	ByType         map[ledger.Type]uint64
	AppendRate     float64 // entries/s, durable
	P50, P99       time.Duration
	VerifyTime     time.Duration
	ProofsChecked  int
	CheckpointSize uint64
	Root           string
}

// Run tells the story so far: create (or open) the Demo Republic, append a
// few thousand typed entries to the home ledger from concurrent writers,
// audit the whole ledger against the charter's keys, and prove the
// inclusion of sample entries.
func Run(ctx context.Context, opts Options, out io.Writer) (*Report, error) {
	if opts.Entries <= 0 {
		opts.Entries = 5000
	}
	if opts.Appenders <= 0 {
		opts.Appenders = 64
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	rep := &Report{ByType: map[ledger.Type]uint64{}}

	dir := opts.Dir
	fresh := false
	if dir == "" {
		d, err := os.MkdirTemp("", "chancery-demo-")
		if err != nil {
			return nil, err
		}
		dir, fresh = d, true
		if !opts.Keep {
			defer os.RemoveAll(d)
		}
	}
	rep.Dir = dir
	layout := state.Layout{Dir: dir}
	pass := opts.Passphrase
	if _, err := os.Stat(layout.Charter()); os.IsNotExist(err) {
		if len(pass) == 0 {
			if !fresh {
				return nil, fmt.Errorf("demo: %s holds no state and no passphrase was given to create one", dir)
			}
			pass = []byte(rand.Text())
		}
		wf := opts.WorkFactor
		if wf == 0 {
			wf = 14
		}
		say("== Founding the Demo Republic in %s", dir)
		if _, err := state.Init(ctx, state.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: wf},
			Log: func(f string, a ...any) { say("   "+f, a...) }}); err != nil {
			return nil, err
		}
	} else if len(pass) == 0 {
		return nil, fmt.Errorf("demo: the state in %s needs its passphrase (--passphrase-file or $%s)", dir, keyfile.EnvPassphrase)
	}
	prot := keyfile.Protector{Passphrase: pass}

	c, err := charter.ReadFile(layout.Charter())
	if err != nil {
		return nil, err
	}
	if err := charter.VerifySignatures(c, nil); err != nil {
		return nil, fmt.Errorf("demo: charter: %w", err)
	}
	rep.Charter = c.HashHex()
	say("== Charter v%d of %s: %d sites in %d host states, %d officials, custodians %d of %d",
		c.Version, c.Guest.Name, len(c.Sites), len(c.Hosts), len(c.Officials), c.Custodians.Threshold, len(c.Custodians.Members))

	home, ok := c.Home()
	if !ok {
		return nil, fmt.Errorf("demo: the charter names no home site")
	}
	log, err := state.OpenLedger(ctx, layout, c, home.ID, prot, ledger.Options{})
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			log.Close()
		}
	}()
	start := log.Size()
	epoch := max(log.Epoch(), 1)
	if start == 0 {
		cb := c.CanonicalBytes()
		if _, err := log.Append(ctx, ledger.Entry{Type: ledger.TypeCharter, Epoch: epoch, Time: time.Now(), Payload: cb}); err != nil {
			return nil, fmt.Errorf("demo: ledger the charter: %w", err)
		}
		say("   charter v%d recorded as ledger entry 0", c.Version)
	}

	say("== Home writes %d typed entries from %d concurrent writers (each durable before it is acknowledged)", opts.Entries, opts.Appenders)
	lat, elapsed, err := appendStory(ctx, log, c, epoch, opts.Entries, opts.Appenders)
	if err != nil {
		return nil, err
	}
	rep.AppendRate = float64(opts.Entries) / elapsed.Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep.P50, rep.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	say("   %d entries in %v: %.0f entries/s durable; latency p50 %v, p99 %v",
		opts.Entries, elapsed.Round(time.Millisecond), rep.AppendRate, rep.P50.Round(time.Microsecond), rep.P99.Round(time.Microsecond))
	if err := log.Close(); err != nil {
		return nil, err
	}
	closed = true

	say("== An auditor verifies the whole ledger against the charter's keys")
	verifiers, err := c.CheckpointVerifiers()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	f := ledger.DirFetcher(layout.Ledger(home.ID))
	vr, err := ledger.Verify(ctx, f, ledger.VerifyOptions{Origin: c.Guest.Origin, Verifiers: verifiers})
	if err != nil {
		return nil, fmt.Errorf("demo: verify: %w", err)
	}
	rep.VerifyTime = time.Since(t0)
	rep.Entries, rep.ByType = vr.Entries, vr.ByType
	rep.CheckpointSize, rep.Root = vr.Checkpoint.Size, hex.EncodeToString(vr.Checkpoint.Root[:])
	signed, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return nil, err
	}
	say("   %d entries, %d tiles checked in %v; checkpoint signed by %s; epochs %v",
		vr.Entries, vr.Tiles, rep.VerifyTime.Round(time.Millisecond), strings.Join(state.CheckpointSigners(c, signed), ", "), vr.Epochs)
	types := make([]ledger.Type, 0, len(vr.ByType))
	for t := range vr.ByType {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	for _, t := range types {
		say("   %-13s %6d", t, vr.ByType[t])
	}

	n, err := proveSamples(ctx, f, vr.Checkpoint, 20)
	if err != nil {
		return nil, err
	}
	rep.ProofsChecked = n
	say("   %d random entries proven included in checkpoint %d (root %s…)", n, vr.Checkpoint.Size, rep.Root[:16])
	if fresh && opts.Keep {
		say("== State kept in %s", dir)
	}
	return rep, nil
}

// appendStory appends a mix of entry types the way a home site would
// produce them.
func appendStory(ctx context.Context, log *ledger.Log, c *charter.Charter, epoch uint64, n, workers int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				e, err := storyEntry(c, epoch, i)
				if err != nil {
					errs <- err
					return
				}
				s := time.Now()
				if _, err := log.Append(ctx, e); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, 0, fmt.Errorf("demo: append: %w", err)
	}
	return lat, time.Since(t0), nil
}

// storyEntry is entry i of the demo's traffic. Record entries carry an
// opaque payload of the size a sealed population record has: the seal layer
// (a later stage) puts real ciphertext there. Notices are public and
// readable by design.
func storyEntry(c *charter.Charter, epoch uint64, i int) (ledger.Entry, error) {
	e := ledger.Entry{Epoch: epoch, Time: time.Now()}
	var body any
	switch {
	case i%50 == 0:
		e.Type = ledger.TypeNotice
		body = map[string]any{"notice": i / 50, "title": "Public service notice", "text": "Registry offices are open as usual."}
	case i%25 == 0:
		e.Type = ledger.TypeAccess
		body = map[string]any{"official": c.Officials[i%len(c.Officials)].ID, "registry": c.Registries[i%len(c.Registries)].Name, "op": "read"}
	case i%1000 == 999:
		e.Type = ledger.TypeKeyEvent
		body = map[string]any{"event": "checkpoint-key-in-use", "site": "home"}
	default:
		e.Type = ledger.TypeRecord
		sealed := make([]byte, 480)
		if _, err := rand.Read(sealed); err != nil {
			return e, err
		}
		body = map[string]any{"registry": c.Registries[i%len(c.Registries)].Name, "sealed": sealed}
	}
	p, err := json.Marshal(body)
	e.Payload = p
	return e, err
}

// proveSamples proves the inclusion of n random entries against the
// checkpoint, re-reading them from the tiles as a client would.
func proveSamples(ctx context.Context, f ledger.Fetcher, cp ledger.Checkpoint, n int) (int, error) {
	if cp.Size == 0 {
		return 0, nil
	}
	p := ledger.NewProver(f, 64)
	for i := 0; i < n; i++ {
		r, err := rand.Int(rand.Reader, new(big.Int).SetUint64(cp.Size))
		if err != nil {
			return i, err
		}
		idx := r.Uint64()
		raw, err := ledger.ReadEntry(ctx, f, idx, cp.Size)
		if err != nil {
			return i, err
		}
		leaf := ledger.LeafHash(raw)
		prf, err := p.Inclusion(ctx, idx, cp.Size)
		if err != nil {
			return i, err
		}
		if err := ledger.VerifyInclusion(idx, cp.Size, leaf, prf, cp.Root); err != nil {
			return i, fmt.Errorf("demo: inclusion proof of entry %d: %w", idx, err)
		}
	}
	return n, nil
}
