// Package demo tells the continuity story of the Demo Republic on one
// machine and reports what happened with measured figures. It is what
// `chancery demo` runs; later stages (replication, activation, failback)
// extend the same story.
package demo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/demogen"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
)

// Options configure Run.
type Options struct {
	// Dir is the state directory. Empty means a fresh temporary one, removed
	// afterwards unless Keep is set.
	Dir string
	// Passphrase opens the state's key files. For a fresh temporary state
	// a random one is generated and held in memory only.
	Passphrase []byte
	// Persons is the size of the population loaded at home (default 2000).
	Persons int
	// DeedPersons is how many further persons come with land parcels whose
	// scanned deeds are attached (default 40).
	DeedPersons int
	// Updates is how many record changes officials make (default 2000).
	Updates int
	// Appenders is how many officials write at once (default 64).
	Appenders int
	// Keep leaves a temporary state directory in place.
	Keep bool
	// Force lets Run use a Dir whose home ledger already holds records.
	// The story destroys that home and revokes embassy-north: without
	// Force, Run refuses such a state rather than wreck a real one.
	Force bool
	// WorkFactor is the scrypt work factor for a fresh state's key files.
	WorkFactor int
	// Binary is the chancery executable the sites run as, each its own
	// process. Empty: the story stops at the home (no replication or
	// continuity).
	Binary string
	// Postgres adds the PostgreSQL step (postgres.go) to the continuity
	// story: skipped, saying so, where PostgreSQL is not installed.
	Postgres bool
}

// Report is what Run measured.
type Report struct {
	Dir            string
	Charter        string // hash
	Imported       int
	ImportRate     float64 // records/s
	Attachments    int
	AttachBytes    int64
	AttachRate     float64 // MB/s
	UpdateRate     float64 // record versions/s, durable
	P50, P99       time.Duration
	Entries        uint64
	ByType         map[ledger.Type]uint64
	VerifyTime     time.Duration
	ProofsChecked  int
	CheckpointSize uint64
	Root           string
	ScannedBytes   int64
	PlaintextHits  int

	// The continuity story (Options.Binary set).
	CatchUp    time.Duration // both embassies caught up with the home
	RPOEntries uint64        // the worst site's recovery point right after the officials' writes (the disaster waits for 0)
	RPOSeconds float64
	RTO        time.Duration // order and threshold of shares to the first served read
	// ExtractTime: a certified extract issued at the activated embassy,
	// its act cosigned by the other embassy.
	ExtractTime time.Duration
	Epochs      uint64 // epoch after failback
	FinalSize   uint64 // ledger size at home after failback
	// Revocation of embassy-north: deeds readable at its copy before (with
	// its outer key) and after (with every key the guest still holds).
	ShreddedBefore, ShreddedAfter int

	// The --postgres step: commit to ledger at home (median, max), changes
	// the activated embassy streamed, rows checked against their records
	// after failback, rows restored into a fresh database.
	PGLagMedian, PGLagMax time.Duration
	PGEmbassyChanges      int64
	PGChecked             int
	PGRestored            int64

	// With Options.Keep: the sites left running (id to URL), Stop, which
	// stops them, and PassphraseFile, where a fresh state's passphrase
	// was written (mode 0600) for commands run against the kept sites.
	SiteURLs       map[string]string
	Stop           func()
	PassphraseFile string
	// ActiveSite is the site that writes at the end of the story (the
	// home, after failback): the one serving the portal and the desk.
	ActiveSite string
	// Front, with Options.Keep, serves the issuer's name over TLS on
	// loopback, forwarding to ActiveSite: how a browser reaches the
	// citizen portal (Report.Stop closes it).
	Front *IssuerFront
}

// Run tells the story so far. The Demo Republic is founded (or opened); its
// home site loads the population and land registers, sealed, with scanned
// deeds in the blob store; officials update records from many desks at
// once, each change durable before it is acknowledged; an official looks a
// citizen up; the bytes a host would hold are searched for that citizen's
// name; an auditor verifies the whole ledger against the charter's keys and
// proves random entries included.
func Run(ctx context.Context, opts Options, out io.Writer) (*Report, error) {
	opts.Persons = cmp.Or(opts.Persons, 2000)
	opts.DeedPersons = cmp.Or(opts.DeedPersons, 40)
	opts.Updates = cmp.Or(opts.Updates, 2000)
	opts.Appenders = cmp.Or(opts.Appenders, 64)
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	rep := &Report{}

	dir := opts.Dir
	fresh := false
	if dir != "" {
		// The sites run as processes in their own working directories, and
		// their configs name state paths: a relative --dir would point
		// each of them somewhere else.
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("demo: --dir %s: %w", dir, err)
		}
		dir = abs
	}
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
			if opts.Keep {
				// The kept sites are there to rehearse on: the person
				// needs the passphrase that opens their keys.
				rep.PassphraseFile = filepath.Join(dir, "passphrase")
				if err := os.WriteFile(rep.PassphraseFile, append(pass, '\n'), 0o600); err != nil {
					return nil, fmt.Errorf("demo: --keep: %w", err)
				}
			}
		}
		say("== Founding the Demo Republic in %s", dir)
		if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: pass, WorkFactor: cmp.Or(opts.WorkFactor, 14)},
			Log: func(f string, a ...any) { say("   "+f, a...) }}); err != nil {
			return nil, err
		}
	} else if len(pass) == 0 {
		return nil, fmt.Errorf("demo: the state in %s needs its passphrase (--passphrase-file or $%s)", dir, keyfile.EnvPassphrase)
	}

	home := "home"
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: home, Passphrase: pass})
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			loc.Close()
		}
	}()
	if n := loc.Log.Size(); n > found.FoundingEntries && !fresh && !opts.Force {
		return nil, fmt.Errorf("demo: the home ledger in %s already holds %d entries; the demo destroys that home and revokes embassy-north, so it runs only on a state 'chancery init' just made (or give --force to run it anyway)", dir, n)
	}
	c := loc.Charter
	rep.Charter = c.HashHex()
	say("== Charter v%d of %s: %d sites in %d host states, %d officials, custodians %d of %d; hash %s…",
		c.Version, c.Guest.Name, len(c.Sites), len(c.Hosts), len(c.Officials), c.Custodians.Threshold, len(c.Custodians.Members), rep.Charter[:16])
	if loc.Log.Size() == 0 {
		// A state founded before founding recorded itself in the ledger.
		if _, err := loc.Log.Append(ctx, ledger.Entry{Type: ledger.TypeCharter, Epoch: 1, Time: time.Now(), Payload: c.CanonicalBytes()}); err != nil {
			return nil, fmt.Errorf("demo: ledger the charter: %w", err)
		}
		say("   charter recorded as ledger entry 0")
	}

	if err := loadRegisters(ctx, loc, opts, rep, say); err != nil {
		return nil, err
	}
	if err := loadPensions(ctx, loc, say); err != nil {
		return nil, err
	}
	if err := officialsAtWork(ctx, loc, opts, rep, say); err != nil {
		return nil, err
	}
	probe, err := lookUpCitizen(ctx, loc, say)
	if err != nil {
		return nil, err
	}
	if err := loc.Close(); err != nil {
		return nil, err
	}
	closed = true

	say("== What the host of a site holds: sealed bytes only")
	hits, scanned, err := searchPlaintext(dir, probe)
	if err != nil {
		return nil, err
	}
	rep.ScannedBytes, rep.PlaintextHits = scanned, hits
	say("   searched %.1f MB of ledger and blob store for %q and %d other plaintext strings of that citizen: %d found",
		float64(scanned)/1e6, probe[0], len(probe)-1, hits)
	if hits > 0 {
		return rep, fmt.Errorf("demo: plaintext found at rest")
	}

	if err := audit(ctx, layout, c, home, rep, say); err != nil {
		return nil, err
	}
	if opts.Binary != "" {
		if err := continuityStory(ctx, opts, dir, pass, c, probe[0], rep, say); err != nil {
			return rep, err
		}
		say("== The whole story: RPO %d entries (%.3f s) at worst right after the officials' writes, none when home was lost; RTO %v; a certified extract issued abroad in %v and verified offline; failback without losing a record (epoch %d, %d entries); a revoked site's copy shredded (%d of %d deeds readable)",
			rep.RPOEntries, rep.RPOSeconds, rep.RTO.Round(time.Millisecond), rep.ExtractTime.Round(time.Millisecond), rep.Epochs, rep.FinalSize, rep.ShreddedAfter, rep.ShreddedBefore)
	}
	if opts.Keep && rep.Stop != nil && rep.ActiveSite != "" {
		front, err := startIssuerFront(dir, rep.SiteURLs[rep.ActiveSite])
		if err != nil {
			rep.Stop()
			return nil, err
		}
		stop := rep.Stop
		rep.Front, rep.Stop = front, func() { front.Close(); stop() }
	}
	if fresh && opts.Keep {
		say("== State kept in %s", dir)
	}
	return rep, nil
}

// loadRegisters imports a generated population, then persons with land
// parcels whose deeds are attached, and reports the rates.
func loadRegisters(ctx context.Context, loc *guest.Local, opts Options, rep *Report, say func(string, ...any)) error {
	say("== Home loads its registers: %d persons with their documents, parcels and businesses", opts.Persons)
	res, err := importGenerated(ctx, loc, demogen.Options{Persons: opts.Persons, Seed: 1}, "")
	if err != nil {
		return err
	}
	rep.Imported = res.Records
	rep.ImportRate = float64(res.Records) / res.Elapsed.Seconds()
	say("   %d records sealed and ledgered durably in %v: %.0f records/s", res.Records, res.Elapsed.Round(time.Millisecond), rep.ImportRate)

	deeds, err := os.MkdirTemp("", "chancery-deeds-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(deeds)
	say("== The land register gets its scanned deeds: %d more persons, their parcels with deeds attached", opts.DeedPersons)
	res, err = importGenerated(ctx, loc, demogen.Options{Persons: opts.DeedPersons, Seed: 2, Deeds: true, DeedDir: deeds}, deeds)
	if err != nil {
		return err
	}
	var size int64
	filepath.WalkDir(deeds, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	rep.Attachments, rep.AttachBytes = res.Attachments, size
	rep.AttachRate = float64(size) / 1e6 / res.Elapsed.Seconds()
	say("   %d records, %d deeds (%.1f MB) chunked, compressed, sealed and deduplicated in %v: %.0f MB/s",
		res.Records, res.Attachments, float64(size)/1e6, res.Elapsed.Round(time.Millisecond), rep.AttachRate)
	return nil
}

// importGenerated generates registers first, so that the import's figures
// are the import's alone, then imports them.
func importGenerated(ctx context.Context, loc *guest.Local, g demogen.Options, dir string) (registry.ImportResult, error) {
	var buf bytes.Buffer
	if err := demogen.WriteJSONL(ctx, g, &buf, nil); err != nil {
		return registry.ImportResult{}, fmt.Errorf("demo: generate: %w", err)
	}
	res, err := loc.Registries.Import(ctx, &buf, registry.ImportOptions{Dir: dir})
	if err != nil {
		return res, fmt.Errorf("demo: import: %w", err)
	}
	return res, nil
}

// officialsAtWork has many officials change population records at once:
// each reads a person, changes their address and writes a new version.
func officialsAtWork(ctx context.Context, loc *guest.Local, opts Options, rep *Report, say func(string, ...any)) error {
	say("== Officials at %d desks record %d address changes (each durable before it is acknowledged)", opts.Appenders, opts.Updates)
	var ids []string
	for i := 0; i < opts.Persons && len(ids) < 512; i += max(1, opts.Persons/512) {
		ids = append(ids, demogen.NationalID(1, i))
	}
	lat := make([]time.Duration, opts.Updates)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, opts.Appenders)
	t0 := time.Now()
	for w := 0; w < opts.Appenders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= opts.Updates {
					return
				}
				id := ids[i%len(ids)]
				s := time.Now()
				if err := moveHouse(ctx, loc.Registries, id, i); err != nil {
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
		return fmt.Errorf("demo: update: %w", err)
	}
	elapsed := time.Since(t0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep.P50, rep.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	rep.UpdateRate = float64(opts.Updates) / elapsed.Seconds()
	say("   %d new versions in %v: %.0f/s, each a read, an unseal, a seal and a durable append; latency p50 %v, p99 %v",
		opts.Updates, elapsed.Round(time.Millisecond), rep.UpdateRate, rep.P50.Round(time.Microsecond), rep.P99.Round(time.Microsecond))
	return nil
}

func moveHouse(ctx context.Context, regs *registry.Registries, id string, n int) error {
	rec, err := regs.Get(ctx, "population", id, registry.AsOf{})
	if err != nil {
		return err
	}
	var person map[string]any
	if err := json.Unmarshal(rec.Data, &person); err != nil {
		return err
	}
	if addr, ok := person["address"].(map[string]any); ok {
		addr["number"] = fmt.Sprint(1 + n%400)
	}
	data, err := json.Marshal(person)
	if err != nil {
		return err
	}
	_, err = regs.Put(ctx, "population", id, data, nil)
	return err
}

// lookUpCitizen finds a citizen by national id, as an official would, and
// returns strings that identify them for the plaintext search.
func lookUpCitizen(ctx context.Context, loc *guest.Local, say func(string, ...any)) ([]string, error) {
	id := demogen.NationalID(1, 0)
	hits, err := loc.Registries.Find(ctx, "population", "national_id", id)
	if err != nil || len(hits) != 1 {
		return nil, fmt.Errorf("demo: look up %s: %v (%d found)", id, err, len(hits))
	}
	var p struct {
		First   string `json:"first_name"`
		Last    string `json:"last_name"`
		Address struct {
			Street string `json:"street"`
			City   string `json:"city"`
		} `json:"address"`
		Email string `json:"email"`
	}
	if err := json.Unmarshal(hits[0].Data, &p); err != nil {
		return nil, err
	}
	h, err := loc.Registries.History(ctx, "population", id)
	if err != nil {
		return nil, err
	}
	say("== An official looks up national id %s: %s %s, %s, %s — version %d of %d, ledger entry %d",
		id, p.First, p.Last, p.Address.Street, p.Address.City, hits[0].Version, len(h), hits[0].Index)
	return []string{id, p.First + " " + p.Last, p.Address.Street, p.Email}, nil
}

// searchPlaintext reads every file of every site of the state (ledger,
// write-ahead log, blob store) and counts occurrences of the probes.
func searchPlaintext(dir string, probes []string) (int, int64, error) {
	var hits int
	var scanned int64
	err := filepath.WalkDir(filepath.Join(dir, "sites"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned += int64(len(b))
		for _, p := range probes {
			if p != "" {
				hits += bytes.Count(b, []byte(p))
			}
		}
		return nil
	})
	return hits, scanned, err
}

// audit verifies the home ledger as an outside auditor would.
func audit(ctx context.Context, layout state.Layout, c *charter.Charter, home string, rep *Report, say func(string, ...any)) error {
	say("== An auditor verifies the whole ledger against the charter's keys")
	verifiers, err := c.CheckpointVerifiers()
	if err != nil {
		return err
	}
	t0 := time.Now()
	f := ledger.DirFetcher(layout.Ledger(home))
	vr, err := ledger.Verify(ctx, f, ledger.VerifyOptions{Origin: c.Guest.Origin, Verifiers: verifiers})
	if err != nil {
		return fmt.Errorf("demo: verify: %w", err)
	}
	rep.VerifyTime = time.Since(t0)
	rep.Entries, rep.ByType = vr.Entries, vr.ByType
	rep.CheckpointSize, rep.Root = vr.Checkpoint.Size, hex.EncodeToString(vr.Checkpoint.Root[:])
	signed, err := f.Fetch(ctx, ledger.CheckpointPath)
	if err != nil {
		return err
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
		return err
	}
	rep.ProofsChecked = n
	say("   %d random entries proven included in checkpoint %d (root %s…)", n, vr.Checkpoint.Size, rep.Root[:16])
	return nil
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
		if _, err := p.ReadProven(ctx, cp, idx); err != nil {
			return i, fmt.Errorf("demo: %w", err)
		}
	}
	return n, nil
}
