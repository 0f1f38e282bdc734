package system_test

// Randomized schedules over the Demo Republic's three sites as real
// `chancery serve` processes: the home, embassy-north and embassy-south,
// with a fault proxy on every directed link between two of them (each
// site's peers point at its outgoing proxies), so that a partition is a
// proxy Cut (resets) or HalfOpen (a blackhole), and a crash a SIGKILL.
// Each seed draws its schedule from a PCG seeded with it:
//
//   - phase 1, the home writes epoch 1: bursts of concurrent writes at the
//     home from a few goroutines (population is a quorum registry,
//     business async; some rewrite a record), partitions and heals,
//     crashes and restarts of any site;
//   - most seeds then lose the home — killed, or cut off from every
//     embassy and still running — and the officials activate the most
//     complete embassy: two officials sign the order, three custodians
//     reseal their shares to the site's unseal session, and the escrow's
//     wrapped outer keys are handed over, as in internal/demo;
//   - phase 2, that site writes epoch 2 while the cut-off home may go on
//     taking writes (the forked writes), with partitions between the
//     embassies and crashes of either (the active one is unsealed again
//     after a restart) and of the old home; the home may be let back in
//     touch with the active site, and must then fence itself;
//   - failback, as docs/continuity.md has it: the home is stopped,
//     guest.Reconcile sets what it wrote past the fork aside in a report,
//     the home starts in standby and catches up, the active site is
//     sealed, a failback order submitted to it makes the home the writer
//     of epoch 3, and the home returns to its normal configuration;
//     phase 3 writes there, with more faults.
//
// Checked for every seed: (1) no two writers in one epoch — every ledger
// (each site's, and the home's set aside) folds its orders to the same
// writer for every epoch, the one the schedule's orders named; every
// checkpoint a site published, sampled while the schedule runs (its
// checkpoint file read in a tight loop around each order) and found on
// disk at the end, verifies with the key of its epoch's writer alone; no
// two ledgers hold different entries of one epoch at one index; every
// status a site served names one writer per epoch; a fenced home
// acknowledges no write. (2) Every write acknowledged in quorum mode, and
// every other write the state's ledger keeps, reads back at the home
// after the final failback with its version, index and content. (3)
// Every write the home acknowledged past the fork is in the
// reconciliation report, at its index, with its record id (the report is
// decrypted with the root key).
//
// `make test` runs 50 seeds, 4 at a time (5 with -short, as under
// -race). CHANCERY_SCHEDULE_SEEDS=500 runs more; CHANCERY_SCHEDULE_FIRST
// moves the first seed; CHANCERY_SCHEDULE_SEED=17 runs seed 17 alone;
// CHANCERY_SCHEDULE_PARALLEL sets how many run at once. A failing seed
// prints its schedule, every step timed, and the sites' log tails.
//
// What the default schedules do not draw, and `make test` runs as a second
// set of 20 seeds (CHANCERY_SCHEDULE_HAZARDS=pick,heal
// CHANCERY_SCHEDULE_ROUNDS=2), each once a hazard of the design:
//
//   - CHANCERY_SCHEDULE_HAZARDS=pick: the officials activate either
//     embassy, not the most complete one. The activated site fences the
//     other first (site/fence.go) and refuses if it holds more, or if it
//     cannot be reached (population, k=1, may have writes there alone);
//     the officials then activate the other, or accept the unfenced
//     activation, and the quorum writes only the other held are checked
//     to be in the reconciliation report instead.
//   - CHANCERY_SCHEDULE_HAZARDS=heal: any link heals at any time. A
//     cut-off home may reach an embassy that has not received the new
//     epoch: the fence makes it refuse the home's batches.
//   - CHANCERY_SCHEDULE_ROUNDS=2: after a failback (the home back in its
//     normal configuration) the home is lost again and an embassy
//     activated, up to n times. A home rebuilt a second time receives,
//     as it catches up, the earlier failback order that named it, and
//     must not act on it (site/continuity.go live).

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
)

const schedHome = "home"

var (
	schedSites     = []string{schedHome, procNorth, procSouth}
	schedEmbassies = []string{procNorth, procSouth}
)

// scheduleSeeds are the seeds this run covers.
func scheduleSeeds(t *testing.T) []uint64 {
	t.Helper()
	num := func(name string, def uint64) uint64 {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: not a number", name, v)
		}
		return n
	}
	if os.Getenv("CHANCERY_SCHEDULE_SEED") != "" {
		return []uint64{num("CHANCERY_SCHEDULE_SEED", 0)}
	}
	n := uint64(50)
	if testing.Short() {
		n = 5
	}
	n = num("CHANCERY_SCHEDULE_SEEDS", n)
	first := num("CHANCERY_SCHEDULE_FIRST", 1)
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = first + uint64(i)
	}
	return seeds
}

// TestRandomSchedules runs the seeds a few at a time. The subtests are
// not t.Parallel: the package's -parallel (GOMAXPROCS, 2 here) would cap
// them, while a seed spends most of its time waiting on processes, the
// network and the shippers' backoff, not on a CPU. Workers call t.Run
// concurrently instead; CHANCERY_SCHEDULE_PARALLEL sets how many.
func TestRandomSchedules(t *testing.T) {
	seeds := scheduleSeeds(t)
	atoi := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	workers := atoi("CHANCERY_SCHEDULE_PARALLEL", 4)
	opts := schedOptions{hazards: map[string]bool{}, rounds: atoi("CHANCERY_SCHEDULE_ROUNDS", 1)}
	for _, h := range strings.Split(os.Getenv("CHANCERY_SCHEDULE_HAZARDS"), ",") {
		switch h {
		case "":
		case "pick", "heal":
			opts.hazards[h] = true
		default:
			t.Fatalf("CHANCERY_SCHEDULE_HAZARDS: %q is not pick or heal", h)
		}
	}
	for _, name := range []string{"CHANCERY_SCHEDULE_HAZARDS", "CHANCERY_SCHEDULE_ROUNDS"} {
		if v := os.Getenv(name); v != "" {
			opts.env += name + "=" + v + " "
		}
	}
	bin := testnet.BuildChancery(t)
	start := time.Now()
	next := make(chan uint64)
	var wg sync.WaitGroup
	for range min(workers, len(seeds)) {
		wg.Go(func() {
			for seed := range next {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runSchedule(t, bin, seed, opts) })
			}
		})
	}
	for _, seed := range seeds {
		next <- seed
	}
	close(next)
	wg.Wait()
	t.Logf("%d seeds, %d at a time, in %v", len(seeds), workers, time.Since(start).Round(time.Millisecond))
}

// schedAck is a write a site acknowledged.
type schedAck struct {
	Site    string
	Reg, ID string
	Version uint64
	Index   uint64
	Epoch   uint64
	Data    json.RawMessage
	Step    int
	Start   time.Time
}

// schedOptions draw schedules the default leaves out (see the top of
// this file).
type schedOptions struct {
	hazards map[string]bool // "pick", "heal"
	rounds  int
	env     string // how to ask for them again
}

// schedReport is the reconciliation of one failback: what the home wrote
// in epoch homeEpoch past the fork.
type schedReport struct {
	homeEpoch uint64
	rep       *guest.ReconcileReport
}

// sched is one seed's world: the processes, the links, the model the
// schedule is drawn against, and what was acknowledged.
type sched struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	bin   string
	dir   string
	lay   state.Layout
	c     *charter.Charter
	pass  []byte
	began time.Time
	logs  string // the processes' log files

	addr    map[string]string
	links   map[[2]string]*testnet.Proxy // directed: from, to
	procs   map[string]*testnet.Process  // the home's is the one running now
	standby bool                         // the home runs as a standby (tenant) site
	embDir  map[string]string
	signers map[string]ed25519.PrivateKey
	custody *seal.CustodyPackage
	ids     map[string]age.Identity

	// The model the schedule is drawn against.
	epoch   uint64
	active  string // the writer of the current epoch
	writers []string
	down    map[string]bool
	cut     map[[2]string]string // partitioned pairs (sorted) → "cut" or "blackhole"
	oldHome bool                 // phase 2: the cut-off home runs
	// acceptUnfenced: the officials activated a site that could not fence
	// the other embassy (the pick hazard), accepting that quorum writes
	// only that one held go to reconciliation.
	acceptUnfenced bool
	fenced         time.Time     // when the old home was seen fenced
	lostEpoch      uint64        // the epoch the home wrote when it was lost
	reports        []schedReport // one per failback
	homeStarts     int           // starts of the home in a new configuration
	aside          []string      // home ledgers moved aside by hand

	schedOptions

	steps []string
	step  int

	mu       sync.Mutex
	acks     []schedAck
	failed   int
	problems []string
	cps      map[string]string            // signed checkpoint → who served it
	views    map[uint64]map[string]string // epoch → writer → who said so
}

func pairOf(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (s *sched) logf(format string, args ...any) {
	s.t.Helper()
	line := fmt.Sprintf("%6.2fs %2d. ", time.Since(s.began).Seconds(), s.step) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.steps = append(s.steps, line)
	s.mu.Unlock()
	s.t.Log(line)
}

// violation records a broken invariant; the seed fails at its end (or
// at once, from the test goroutine, via fatal).
func (s *sched) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.problems = append(s.problems, msg)
	s.mu.Unlock()
}

func (s *sched) fatal(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("seed %d, step %d: "+format, append([]any{s.seed, s.step}, args...)...)
}

// newSched starts one seed's world: the state, the three sites and the
// proxies between them.
func newSched(t *testing.T, bin string, seed uint64, opts schedOptions) *sched {
	s := &sched{t: t, schedOptions: opts, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5c4ed01e)), bin: bin, pass: []byte(testPass), began: time.Now(),
		addr: map[string]string{}, links: map[[2]string]*testnet.Proxy{}, procs: map[string]*testnet.Process{},
		embDir: map[string]string{}, signers: map[string]ed25519.PrivateKey{}, ids: map[string]age.Identity{},
		epoch: 1, active: schedHome, writers: []string{schedHome}, down: map[string]bool{}, cut: map[[2]string]string{},
		cps: map[string]string{}, views: map[uint64]map[string]string{}}
	// The processes log here (testnet's default); asked for first, so
	// that it is removed only after the cleanup below has read it.
	s.logs = t.ArtifactDir()
	t.Cleanup(func() {
		if t.Failed() {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Logf("seed %d failed; reproduce with %sCHANCERY_SCHEDULE_SEED=%d go test -run '%s' ./site/\nschedule:\n%s\n%s",
				seed, s.env, seed, strings.SplitN(t.Name(), "/", 2)[0], strings.Join(s.steps, "\n"), s.logTails())
		}
	})
	s.setUp()
	return s
}

func runSchedule(t *testing.T, bin string, seed uint64, opts schedOptions) {
	s := newSched(t, bin, seed, opts)
	ctx, stop := context.WithCancel(t.Context())
	sampled := make(chan struct{})
	go func() { defer close(sampled); s.sample(ctx) }()
	defer func() { stop(); <-sampled }()

	activate := s.rng.IntN(10) < 8
	s.logf("plan: %s (hazards %v, up to %d rounds)", map[bool]string{true: "activation and failback", false: "the home writes throughout"}[activate], slices.Sorted(maps.Keys(s.hazards)), s.rounds)
	for range 3 + s.rng.IntN(5) {
		s.phase1Step()
	}
	for round := 1; activate && round <= s.rounds; round++ {
		if round > 1 && s.rng.IntN(3) == 0 {
			break
		}
		s.disaster()
		for range 3 + s.rng.IntN(5) {
			s.phase2Step()
		}
		s.failback()
		for range 1 + s.rng.IntN(3) {
			s.phase3Step()
		}
	}
	s.finish()
	stop()
	<-sampled
	s.checkViews()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) > 0 {
		t.Errorf("seed %d: %d violations:\n  %s", seed, len(s.problems), strings.Join(s.problems, "\n  "))
	}
	t.Logf("seed %d: %d writes acknowledged, %d refused or failed, epoch %d, %v", seed, len(s.acks), s.failed, s.epoch, time.Since(s.began).Round(time.Millisecond))
}

// setUp founds the state, starts the proxies and the three sites.
func (s *sched) setUp() {
	t := s.t
	s.dir = newState(t)
	s.lay = state.Layout{Dir: s.dir}
	var err error
	if s.c, err = charter.ReadVerified(s.lay.Charter()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"min-interior", "min-justice", "cio", "registrar"} {
		s.signers[id] = officialKey(t, s.dir, id)
	}
	if s.custody, err = seal.ReadCustodyPackageFile(s.lay.Custody()); err != nil {
		t.Fatal(err)
	}
	for _, id := range schedSites {
		s.addr[id] = testnet.RestartableAddr(t)
	}
	for _, from := range schedSites {
		for _, to := range schedSites {
			if from == to {
				continue
			}
			px, err := testnet.NewProxy(t.Context(), s.addr[to])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(px.Close)
			s.links[[2]string{from, to}] = px
		}
	}
	root := t.TempDir()
	for _, id := range schedEmbassies {
		s.embDir[id] = filepath.Join(root, id)
		s.startEmbassy(id)
	}
	s.startHome(false)
	s.logf("three sites up: home %s, north %s, south %s", s.addr[schedHome], s.addr[procNorth], s.addr[procSouth])
}

func (s *sched) peers(from string) string {
	var b strings.Builder
	b.WriteString("peers:\n")
	for _, to := range schedSites {
		if to != from {
			fmt.Fprintf(&b, "  %s: http://%s\n", to, s.links[[2]string{from, to}].Addr())
		}
	}
	return b.String()
}

func (s *sched) startEmbassy(id string) {
	cfg := fmt.Sprintf("site: %s\nlisten: %s\ninsecure_loopback: true\ndata_dir: %q\nguests:\n  - charter: %q\n    checkpoint_key: %q\n    custody: %q\n%s",
		id, s.addr[id], s.embDir[id], s.lay.Charter(), s.lay.Key("site-checkpoint", id), s.lay.Custody(), s.peers(id))
	path := writeProcConfig(s.t, id+".yaml", cfg)
	s.procs[id] = testnet.Start(s.t, testnet.Spec{Name: id, Binary: s.bin, Args: []string{"serve", "--config", path},
		Env: procEnv, HealthURL: "http://" + s.addr[id] + "/healthz"})
}

// startHome starts the home: as the writer of epoch 1, or in standby.
func (s *sched) startHome(standby bool) {
	s.t.Helper()
	cfg := fmt.Sprintf("state_dir: %q\nsite: home\nlisten: %s\ninsecure_loopback: true\n%sreplication:\n  quorum_timeout: 2s\n",
		s.dir, s.addr[schedHome], s.peers(schedHome))
	// Each configuration is its own testnet.Process, named for its log.
	s.homeStarts++
	name := schedHome
	if s.homeStarts > 1 {
		name += "-" + strconv.Itoa(s.homeStarts)
	}
	if standby {
		cfg += "standby: true\n"
		name += "-standby"
	}
	path := writeProcConfig(s.t, name+".yaml", cfg)
	s.procs[schedHome] = testnet.Start(s.t, testnet.Spec{Name: name, Binary: s.bin, Args: []string{"serve", "--config", path},
		Env: procEnv, HealthURL: "http://" + s.addr[schedHome] + "/healthz"})
	s.standby = standby
}

func (s *sched) url(id string) string { return "http://" + s.addr[id] }

// api is the officials' API of the guest at a site.
func (s *sched) api(id string) *siteapi.Client {
	base := s.url(id)
	if id != schedHome || s.standby {
		base += "/guests/" + procGuest
	}
	return &siteapi.Client{BaseURL: base, HTTP: &http.Client{Timeout: 20 * time.Second},
		Signer: siteapi.Signer{Guest: "demo-republic", Site: id, Official: "registrar", Key: s.signers["registrar"]}}
}

func (s *sched) cont(id string) *siteapi.ContinuityClient {
	sg := siteapi.Signer{Guest: "demo-republic", Site: id, Official: "cio", Key: s.signers["cio"]}
	return &siteapi.ContinuityClient{BaseURL: s.url(id), Guest: procGuest, Signer: &sg, HTTP: &http.Client{Timeout: 20 * time.Second}}
}

func (s *sched) status(id string) (*siteapi.ContinuityStatus, error) {
	ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
	defer cancel()
	return s.cont(id).Status(ctx)
}

// waitStatus polls a site's continuity status until ok says so.
func (s *sched) waitStatus(id string, timeout time.Duration, what string, ok func(*siteapi.ContinuityStatus) bool) *siteapi.ContinuityStatus {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *siteapi.ContinuityStatus
	var lastErr error
	for {
		st, err := s.status(id)
		if err == nil {
			last = st
			if ok(st) {
				return st
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(last)
			s.fatal("%s: not so after %v; status of %s: %s (last error %v)", what, timeout, id, b, lastErr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// partition cuts both directions between two sites: resets, or a
// blackhole that holds what is in flight until the heal.
func (s *sched) partition(a, b string, how string) {
	for _, l := range [][2]string{{a, b}, {b, a}} {
		if how == "cut" {
			s.links[l].Cut()
		} else {
			s.links[l].HalfOpen()
		}
	}
	s.cut[pairOf(a, b)] = how
}

func (s *sched) heal(a, b string) {
	for _, l := range [][2]string{{a, b}, {b, a}} {
		s.links[l].Restore()
	}
	delete(s.cut, pairOf(a, b))
}

func (s *sched) partitionKind() string {
	if s.rng.IntN(3) == 0 {
		return "cut"
	}
	return "blackhole"
}

func (s *sched) kill(id string) {
	s.procs[id].Kill()
	s.down[id] = true
}

func (s *sched) restart(id string) {
	s.procs[id].Restart(s.t)
	delete(s.down, id)
}

// logTails are the last lines of every process's log that are not a
// served request: the tail testnet prints is mostly the sampler's polls.
func (s *sched) logTails() string {
	files, _ := filepath.Glob(filepath.Join(s.logs, "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var keep []string
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" && !strings.Contains(l, `"msg":"request"`) {
				keep = append(keep, l)
			}
		}
		fmt.Fprintf(&b, "--- %s, last lines but requests:\n%s\n", filepath.Base(f), strings.Join(keep[max(0, len(keep)-25):], "\n"))
	}
	return b.String()
}

// ---- writes ----

// burst writes from a few goroutines at a site for about d, a share pop
// of them to the population register (quorum) and the rest to business
// (async); some rewrite a record already acknowledged. Every
// acknowledged write is recorded.
func (s *sched) burst(at string, d time.Duration, workers int, pop float64) {
	s.t.Helper()
	s.step++
	client := s.api(at)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked, failed := map[string]int{}, 0
	var lastErr error
	for w := range workers {
		rng := rand.New(rand.NewPCG(s.seed, uint64(s.step)<<8|uint64(w)))
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				reg := "business"
				if rng.Float64() < pop {
					reg = "population"
				}
				id := fmt.Sprintf("S%d-%02d-%d-%03d", s.seed, s.step, w, i)
				if rng.IntN(5) == 0 {
					if prev, ok := s.someAcked(rng, reg); ok {
						id = prev
					}
				}
				data := procRecord(reg, id, fmt.Sprintf("s%dw%di%d", s.step, w, i))
				// A quorum write waits at most the home's quorum timeout
				// (2s) there; an active embassy would wait 30s, longer than
				// a step lasts: the client gives up first, unacknowledged.
				timeout := 3 * time.Second
				if reg == "population" {
					timeout = 2500 * time.Millisecond
				}
				ctx, cancel := context.WithTimeout(s.t.Context(), timeout)
				start := time.Now()
				rec, err := client.Put(ctx, reg, id, data)
				cancel()
				if err != nil {
					mu.Lock()
					failed++
					lastErr = err
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
					continue
				}
				s.acked(schedAck{Site: at, Reg: reg, ID: id, Version: rec.Version, Index: rec.Index, Epoch: rec.Epoch, Data: data, Step: s.step, Start: start})
				mu.Lock()
				acked[reg]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.mu.Lock()
	s.failed += failed
	s.mu.Unlock()
	msg := ""
	if lastErr != nil {
		msg = fmt.Sprintf(" (last: %.160s)", lastErr.Error())
	}
	s.logf("writes at %s for %v by %d: population %d, business %d acknowledged; %d failed%s", at, d, workers, acked["population"], acked["business"], failed, msg)
}

// acked records an acknowledged write, and checks it against what the
// writer may acknowledge now.
func (s *sched) acked(a schedAck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Site == schedHome && !s.fenced.IsZero() && a.Start.After(s.fenced) {
		s.problems = append(s.problems, fmt.Sprintf("the fenced home acknowledged %s %s v%d at index %d, epoch %d, a write sent after it was seen fenced",
			a.Reg, a.ID, a.Version, a.Index, a.Epoch))
	}
	s.acks = append(s.acks, a)
}

func (s *sched) someAcked(rng *rand.Rand, reg string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acks) == 0 {
		return "", false
	}
	a := s.acks[rng.IntN(len(s.acks))]
	return a.ID, a.Reg == reg
}

// ---- phase 1: the home writes epoch 1 ----

func (s *sched) phase1Step() {
	switch r := s.rng.IntN(12); {
	case r < 5:
		s.burst(schedHome, s.burstLen(), 1+s.rng.IntN(3), 0.5)
	case r < 7:
		s.randomPartition(schedSites)
	case r < 9:
		s.randomHeal(schedSites)
	case r < 10:
		s.crashEmbassy()
	case r < 11:
		s.restartEmbassy()
	default:
		s.step++
		s.kill(schedHome)
		s.logf("home killed (SIGKILL)")
		if s.rng.IntN(2) == 0 {
			s.burst(schedHome, 150*time.Millisecond, 1, 0.5)
		}
		s.step++
		s.restart(schedHome)
		s.logf("home restarted")
	}
}

func (s *sched) burstLen() time.Duration {
	return time.Duration(150+s.rng.IntN(350)) * time.Millisecond
}

func (s *sched) randomPartition(among []string) {
	var free [][2]string
	for i, a := range among {
		for _, b := range among[i+1:] {
			if _, ok := s.cut[pairOf(a, b)]; !ok {
				free = append(free, pairOf(a, b))
			}
		}
	}
	if len(free) == 0 {
		s.randomHeal(among)
		return
	}
	p := free[s.rng.IntN(len(free))]
	how := s.partitionKind()
	s.step++
	s.partition(p[0], p[1], how)
	s.logf("partition %s | %s (%s)", p[0], p[1], how)
}

// randomHeal heals a partitioned pair of sites among those given (in
// phase 2 the home's links are left to learnEpoch and failback).
func (s *sched) randomHeal(among []string) {
	var cut [][2]string
	for p := range s.cut {
		if slices.Contains(among, p[0]) && slices.Contains(among, p[1]) {
			cut = append(cut, p)
		}
	}
	slices.SortFunc(cut, func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	if len(cut) == 0 {
		s.burst(s.active, s.burstLen(), 2, 0.5)
		return
	}
	p := cut[s.rng.IntN(len(cut))]
	s.step++
	s.heal(p[0], p[1])
	s.logf("heal %s | %s", p[0], p[1])
}

func (s *sched) crashEmbassy() {
	id := schedEmbassies[s.rng.IntN(2)]
	if s.down[id] {
		s.restartEmbassy()
		return
	}
	s.step++
	s.kill(id)
	s.logf("%s killed (SIGKILL)", id)
}

func (s *sched) restartEmbassy() {
	for _, id := range schedEmbassies {
		if s.down[id] {
			s.step++
			s.restart(id)
			s.logf("%s restarted", id)
			if id == s.active {
				s.unseal(id)
			}
			return
		}
	}
	s.crashEmbassy()
}

// ---- the loss of the home, and activation ----

// disaster takes the home away — killed, or cut off from every embassy
// and still running — and has the officials activate the most complete
// embassy, every embassy brought up first so that they can compare.
func (s *sched) disaster() {
	s.step++
	s.lostEpoch = s.epoch
	for _, e := range schedEmbassies {
		if _, ok := s.cut[pairOf(schedHome, e)]; !ok {
			s.partition(schedHome, e, s.partitionKind())
		}
	}
	if s.rng.IntN(5) < 2 {
		s.kill(schedHome)
		s.logf("disaster: the home is killed and its links cut (%s, %s)", s.cut[pairOf(schedHome, procNorth)], s.cut[pairOf(schedHome, procSouth)])
	} else {
		s.oldHome = true
		s.logf("disaster: the home is cut off from every embassy (%s, %s) and keeps running", s.cut[pairOf(schedHome, procNorth)], s.cut[pairOf(schedHome, procSouth)])
	}
	for _, e := range schedEmbassies {
		if s.down[e] {
			s.restart(e)
			s.logf("%s restarted for the officials to compare", e)
		}
	}
	pick := schedEmbassies[s.rng.IntN(2)]
	sizes := map[string]uint64{}
	for _, e := range schedEmbassies {
		st, err := s.status(e)
		if err != nil {
			s.fatal("status of %s: %v", e, err)
		}
		sizes[e] = st.Size
	}
	other := procNorth
	if pick == procNorth {
		other = procSouth
	}
	if sizes[other] > sizes[pick] && !s.hazards["pick"] {
		pick, other = other, pick
	}
	s.step++
	// The activated site fences the other embassy first (site/fence.go).
	// It refuses if that one holds more: the officials activate the
	// other. It refuses if it cannot reach it, since population (k=1)
	// writes may be there alone: the officials restore the link, or
	// (the pick hazard) activate anyway, and those writes go to
	// reconciliation.
	for tries := 0; ; tries++ {
		err := s.tryActivate(pick)
		if err == nil {
			break
		}
		var ae *siteapi.APIError
		behind := errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity && strings.Contains(err.Error(), "order out of epoch")
		if tries > 2 || !errors.As(err, &ae) || (ae.Status != http.StatusConflict && !behind) {
			s.fatal("activate %s: %v", pick, err)
		}
		if behind {
			// The picked embassy has not received the order that opened
			// the current epoch (it was down or cut off when it was
			// given), so it cannot open the next one: the officials ask
			// the other, as the runbook says (docs/continuity.md, "Ask
			// more than one site").
			s.logf("officials try %s, which is behind the current epoch: %v", pick, err)
			pick, other = other, pick
			continue
		}
		s.logf("officials try %s, which refuses: %v", pick, err)
		// The sizes read above may be stale: a batch in flight can reach
		// the other embassy after they were read. Officials read the
		// state again after a refusal, and so does the harness.
		for _, e := range schedEmbassies {
			st, err := s.status(e)
			if err != nil {
				s.fatal("status of %s: %v", e, err)
			}
			sizes[e] = st.Size
		}
		switch {
		case strings.Contains(err.Error(), "holds more of the ledger") && strings.Contains(err.Error(), other+" holds"):
			pick, other = other, pick
		case strings.Contains(err.Error(), "too few embassies could be fenced") && s.hazards["pick"]:
			s.acceptUnfenced = true
		case strings.Contains(err.Error(), "too few embassies could be fenced"):
			s.heal(pick, other)
			s.logf("the officials restore the link between %s and %s", pick, other)
		default:
			s.fatal("activate %s: %v", pick, err)
		}
	}
	s.logf("officials activate %s (mirrors: north %d, south %d entries): epoch %d", pick, sizes[procNorth], sizes[procSouth], s.epoch)
}

func (s *sched) signOrder(tmpl continuity.Order, signers ...string) []byte {
	s.t.Helper()
	tmpl.NotBefore, tmpl.Expires = time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour)
	o, err := continuity.NewOrder(s.c, tmpl)
	if err != nil {
		s.fatal("order: %v", err)
	}
	so := &continuity.SignedOrder{Order: *o}
	for _, id := range signers {
		if err := continuity.Sign(so, id, s.signers[id]); err != nil {
			s.fatal("sign: %v", err)
		}
	}
	b, err := so.Marshal()
	if err != nil {
		s.fatal("order: %v", err)
	}
	return b
}

func (s *sched) activate(target string) {
	s.t.Helper()
	if err := s.tryActivate(target); err != nil {
		s.fatal("activate %s: %v", target, err)
	}
}

// tryActivate has the officials sign and submit an activation of target;
// if the site accepts it, it is unsealed.
func (s *sched) tryActivate(target string) error {
	s.t.Helper()
	signed := s.signOrder(continuity.Order{Action: charter.ActionActivate, Site: target, Access: continuity.AccessReadWrite,
		Epoch: s.epoch + 1, Reason: fmt.Sprintf("schedule %d: home lost", s.seed)}, "min-interior", "cio")
	ctx, cancel := context.WithTimeout(s.t.Context(), 20*time.Second)
	defer cancel()
	stop := s.watchCheckpoints()
	cc := s.cont(target)
	cc.AcceptUnfenced = s.acceptUnfenced
	or, err := cc.Submit(ctx, signed)
	stop()
	if err != nil {
		return err
	}
	s.epoch++
	s.active = target
	s.writers = append(s.writers, target)
	if or.Status.Epoch != s.epoch || or.Status.Writer != target {
		s.violation("activation of %s accepted at index %d, but its status says epoch %d, writer %s", target, or.Index, or.Status.Epoch, or.Status.Writer)
	}
	s.unseal(target)
	return nil
}

// unseal has three custodians (a random three of five) reseal their
// shares to the site's session, and hands over the escrow's wrapped
// outer keys of both embassies.
func (s *sched) unseal(id string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	cc := s.cont(id)
	sess, err := cc.OpenUnseal(ctx)
	if err != nil {
		s.fatal("open unseal at %s: %v", id, err)
	}
	// The custodians and officials seal only to a recipient the site
	// signed under the charter.
	st, rcpt, err := continuity.VerifyRecipient(s.c, s.custody, sess.RecipientStatement, time.Now())
	if err != nil {
		s.fatal("unseal recipient of %s: %v", id, err)
	}
	for _, e := range schedEmbassies {
		w, err := os.ReadFile(filepath.Join(guest.EscrowDir(s.lay), guest.OuterKeyFile(e)))
		if err != nil {
			s.fatal("escrow: %v", err)
		}
		if err := cc.SubmitSiteKey(ctx, st, e, w); err != nil {
			s.fatal("hand over %s's outer key to %s: %v", e, id, err)
		}
	}
	custs := []string{"cust-parliament", "cust-court", "cust-bank", "cust-ombudsman", "cust-archive"}
	s.rng.Shuffle(len(custs), func(i, j int) { custs[i], custs[j] = custs[j], custs[i] })
	var r *siteapi.UnsealResponse
	for _, cust := range custs[:3] {
		ident, ok := s.ids[cust]
		if !ok {
			if ident, err = keyfile.ReadAgeIdentity(s.lay.Key("custodian", cust), keyfile.Protector{Passphrase: s.pass}); err != nil {
				s.fatal("custodian %s: %v", cust, err)
			}
			s.ids[cust] = ident
		}
		sh, err := s.custody.OpenShare(cust, ident)
		if err != nil {
			s.fatal("custodian %s: %v", cust, err)
		}
		sealed, err := sh.SealTo(rcpt)
		sh.Wipe()
		if err != nil {
			s.fatal("custodian %s: %v", cust, err)
		}
		if r, err = cc.SubmitShare(ctx, sess.Session, sealed); err != nil {
			s.fatal("share of %s to %s: %v", cust, id, err)
		}
	}
	if !r.Unsealed {
		s.fatal("%s not unsealed at the threshold: %+v", id, r)
	}
	s.logf("%s unsealed by %s", id, strings.Join(custs[:3], ", "))
}

// ---- phase 2: an embassy writes epoch 2 ----

func (s *sched) phase2Step() {
	switch r := s.rng.IntN(14); {
	case r < 4:
		s.burst(s.active, s.burstLen(), 1+s.rng.IntN(3), 0.5)
	case r < 7:
		if s.oldHome && !s.down[schedHome] && s.fenced.IsZero() {
			// The forked writes: mostly async, which the cut-off home
			// acknowledges alone.
			s.burst(schedHome, s.burstLen(), 1+s.rng.IntN(2), 0.1)
		} else {
			s.burst(s.active, s.burstLen(), 2, 0.5)
		}
	case r < 8:
		s.randomPartition(s.phase2Links())
	case r < 9:
		s.randomHeal(s.phase2Links())
	case r < 10:
		s.crashEmbassy()
	case r < 11:
		s.restartEmbassy()
	case r < 12:
		switch {
		case s.oldHome && !s.down[schedHome]:
			s.step++
			s.kill(schedHome)
			s.logf("old home killed (SIGKILL)")
		case s.oldHome:
			s.step++
			s.restart(schedHome)
			s.fenced = time.Time{} // fencing is not kept across a restart
			s.logf("old home restarted (links: north %q, south %q)", s.cut[pairOf(schedHome, procNorth)], s.cut[pairOf(schedHome, procSouth)])
		default:
			s.burst(s.active, s.burstLen(), 2, 0.5)
		}
	default:
		s.learnEpoch()
	}
}

// phase2Links are the sites between which phase 2 partitions and heals:
// the embassies, unless any link may heal (CHANCERY_SCHEDULE_HAZARDS=heal).
func (s *sched) phase2Links() []string {
	if s.hazards["heal"] {
		return schedSites
	}
	return schedEmbassies
}

// learnEpoch lets the cut-off home back in touch with the active site
// (and with the other embassy if that one already knows the new epoch):
// the home must fence itself, and refuse writes from then on.
func (s *sched) learnEpoch() {
	if !s.oldHome || s.down[schedHome] || !s.fenced.IsZero() {
		s.burst(s.active, s.burstLen(), 2, 0.5)
		return
	}
	s.step++
	if s.down[s.active] {
		s.restart(s.active)
		s.logf("%s restarted", s.active)
		s.unseal(s.active)
	}
	s.heal(schedHome, s.active)
	healed := []string{s.active}
	for _, e := range schedEmbassies {
		if e == s.active || s.down[e] {
			continue
		}
		if st, err := s.status(e); s.hazards["heal"] || err == nil && st.Epoch >= s.epoch {
			s.heal(schedHome, e)
			healed = append(healed, e)
		}
	}
	s.logf("heal the home's links to %s", strings.Join(healed, ", "))
	// Writes at the home make its shippers talk to the sites; each
	// acknowledged one is a forked write.
	client := s.api(schedHome)
	start := time.Now()
	for i := 0; ; i++ {
		st, err := s.status(schedHome)
		if err == nil && st.Mode == siteapi.ModeFenced {
			s.mu.Lock()
			s.fenced = time.Now()
			s.mu.Unlock()
			break
		}
		if time.Since(start) > 30*time.Second {
			s.violation("the home was not fenced within 30s of reaching %s, the writer of epoch %d (status %+v, %v)", s.active, s.epoch, st, err)
			return
		}
		if i%10 == 0 {
			id := fmt.Sprintf("S%d-%02d-nudge-%d", s.seed, s.step, i)
			data := procRecord("business", id, "nudge")
			ctx, cancel := context.WithTimeout(s.t.Context(), 3*time.Second)
			t0 := time.Now()
			rec, err := client.Put(ctx, "business", id, data)
			cancel()
			if err == nil {
				s.acked(schedAck{Site: schedHome, Reg: "business", ID: id, Version: rec.Version, Index: rec.Index, Epoch: rec.Epoch, Data: data, Step: s.step, Start: t0})
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.logf("the home fenced itself after %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
	defer cancel()
	id := fmt.Sprintf("S%d-%02d-after-fence", s.seed, s.step)
	if rec, err := client.Put(ctx, "business", id, procRecord("business", id, "fenced")); err == nil {
		s.violation("the fenced home acknowledged business %s at index %d, epoch %d", id, rec.Index, rec.Epoch)
	}
}

// ---- failback ----

// failback follows docs/continuity.md, "Failback": the home stopped and
// reconciled, brought back as a standby mirror, caught up; the active
// site sealed; the failback order submitted to it; the home back in its
// normal configuration once it writes.
func (s *sched) failback() {
	s.step++
	if !s.down[schedHome] {
		s.procs[schedHome].Stop()
		s.down[schedHome] = true
	}
	s.oldHome = false
	s.mu.Lock()
	s.fenced = time.Time{} // the home comes back as a new site: in standby
	s.mu.Unlock()
	root, err := seal.ReadRootKeyFile(s.lay.RootKey(), s.pass)
	if err != nil {
		s.fatal("root key: %v", err)
	}
	keys := seal.NewKeyring(s.c.Guest.ID, root)
	root.Wipe()
	defer keys.Wipe()
	if s.down[s.active] {
		// Unsealed with the sites' outer keys, or the home never catches up.
		s.restart(s.active)
		s.logf("%s restarted", s.active)
		s.unseal(s.active)
	}
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	rep, err := guest.Reconcile(ctx, guest.ReconcileOptions{StateDir: s.dir, Site: schedHome, From: s.url(s.active) + "/guests/" + procGuest + "/ledger", Keys: keys})
	if err != nil {
		s.fatal("reconcile against %s: %v", s.active, err)
	}
	s.reports = append(s.reports, schedReport{homeEpoch: s.lostEpoch, rep: rep})
	s.logf("home stopped; reconciled against %s: home %d entries, active %d (epoch %d), fork at %d, %d entries set aside (%d decrypted)",
		s.active, rep.HomeSize, rep.ActiveSize, rep.ActiveEpoch, rep.Fork, len(rep.Entries), rep.Decrypted)
	if dir := s.lay.Ledger(schedHome); rep.MovedTo == "" && s.lostEpoch > 1 {
		// Nothing forked, but the home's ledger ends in an epoch it took
		// back by failback: in standby it would come back as that epoch's
		// writer. The runbook has it moved aside by hand.
		aside := fmt.Sprintf("%s.before-failback-%d", dir, len(s.reports))
		if err := os.Rename(dir, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.fatal("move the home's ledger aside: %v", err)
		}
		s.aside = append(s.aside, aside)
		s.logf("the home's ledger of epoch %d moved aside by hand to %s", s.lostEpoch, filepath.Base(aside))
	}

	s.step++
	s.startHome(true)
	delete(s.down, schedHome)
	for _, e := range schedEmbassies {
		if _, ok := s.cut[pairOf(schedHome, e)]; ok {
			s.heal(schedHome, e)
		}
	}
	as, err := s.status(s.active)
	if err != nil {
		s.fatal("status of %s: %v", s.active, err)
	}
	t0 := time.Now()
	hs := s.waitStatus(schedHome, 60*time.Second, "the standby home catches up", func(st *siteapi.ContinuityStatus) bool {
		return st.Epoch == s.epoch && st.Size >= as.Size
	})
	s.logf("home in standby, links healed; caught up to %d entries in %v", hs.Size, time.Since(t0).Round(time.Millisecond))

	s.step++
	from := s.active
	sctx, scancel := context.WithTimeout(s.t.Context(), 20*time.Second)
	defer scancel()
	// The runbook has no need of a seal before a failback (the order
	// fences the active site first); officials may seal anyway.
	if s.rng.IntN(2) == 0 {
		if _, err := s.cont(from).Seal(sctx); err != nil {
			s.fatal("seal %s before the failback: %v", from, err)
		}
		s.logf("%s sealed before the failback", from)
	}
	signed := s.signOrder(continuity.Order{Action: charter.ActionFailback, Site: schedHome, Epoch: s.epoch + 1,
		Reason: fmt.Sprintf("schedule %d: home rebuilt", s.seed)}, "min-justice", "cio")
	stop := s.watchCheckpoints()
	or, err := s.cont(from).Submit(sctx, signed)
	if err != nil {
		stop()
		s.fatal("failback order at %s: %v", from, err)
	}
	s.epoch++
	s.active = schedHome
	s.writers = append(s.writers, schedHome)
	t0 = time.Now()
	s.waitStatus(schedHome, 60*time.Second, "the home writes after the failback", func(st *siteapi.ContinuityStatus) bool {
		return st.Writer == schedHome && st.Epoch == s.epoch && st.Mode == siteapi.ModeActive && st.Unsealed
	})
	took := time.Since(t0)
	stop()
	s.waitStatus(from, 60*time.Second, from+" reseals after the failback", func(st *siteapi.ContinuityStatus) bool {
		return st.Mode == siteapi.ModeStandby && !st.Unsealed
	})
	s.logf("%s sealed, failback order there (index %d): the home writes epoch %d after %v; %s is a sealed mirror again",
		from, or.Index, s.epoch, took.Round(time.Millisecond), from)

	s.step++
	s.procs[schedHome].Stop()
	s.startHome(false)
	st := s.waitStatus(schedHome, 30*time.Second, "the home in its normal configuration writes", func(st *siteapi.ContinuityStatus) bool {
		return st.Writer == schedHome && st.Epoch == s.epoch && st.Mode == siteapi.ModeActive
	})
	s.logf("home back in its normal configuration: writer of epoch %d, %d entries", st.Epoch, st.Size)
}

// ---- phase 3: the home writes again ----

func (s *sched) phase3Step() {
	switch r := s.rng.IntN(10); {
	case r < 5:
		s.burst(schedHome, s.burstLen(), 1+s.rng.IntN(3), 0.5)
	case r < 6:
		s.randomPartition(schedSites)
	case r < 7:
		s.randomHeal(schedSites)
	case r < 8:
		s.crashEmbassy()
	case r < 9:
		s.restartEmbassy()
	default:
		s.step++
		s.kill(schedHome)
		s.logf("home killed (SIGKILL) while it writes epoch %d", s.epoch)
		s.step++
		s.restart(schedHome)
		st := s.waitStatus(schedHome, 30*time.Second, "the restarted home writes", func(st *siteapi.ContinuityStatus) bool {
			return st.Writer == schedHome && st.Epoch == s.epoch && st.Mode == siteapi.ModeActive
		})
		s.logf("home restarted: writer of epoch %d again, %d entries", st.Epoch, st.Size)
	}
}

// ---- the end: read back, stop, check the ledgers ----

func (s *sched) finish() {
	s.step++
	for p := range s.cut {
		s.heal(p[0], p[1])
	}
	for _, id := range schedSites {
		if s.down[id] {
			s.restart(id)
		}
	}
	s.logf("every link healed and every site up")
	if s.active != schedHome {
		s.fatal("the schedule ended with %s writing", s.active)
	}
	s.waitStatus(schedHome, 30*time.Second, "the home writes", func(st *siteapi.ContinuityStatus) bool {
		return st.Writer == schedHome && st.Epoch == s.epoch && st.Mode == siteapi.ModeActive && st.Unsealed
	})
	s.checkAcked()
	s.step++
	for _, id := range schedSites {
		s.procs[id].Stop()
	}
	s.logf("every site stopped")
	s.checkLedgers()
	s.checkReport()
}

// forkedIn is the reconciliation whose report must hold an acknowledged
// write, if it is one the home wrote past a fork; nil for every write the
// state's ledger must keep.
func (s *sched) forkedIn(a schedAck) *schedReport {
	for i, r := range s.reports {
		if a.Site == schedHome && a.Epoch == r.homeEpoch && a.Index >= r.rep.Fork {
			return &s.reports[i]
		}
	}
	return nil
}

// checkAcked reads back, at the home, every acknowledged write the
// state's ledger must keep: the version in force at its index is the
// acknowledged one, with its content.
func (s *sched) checkAcked() {
	client := s.api(schedHome)
	s.mu.Lock()
	acks := slices.Clone(s.acks)
	s.mu.Unlock()
	n := 0
	for _, a := range acks {
		if r := s.forkedIn(a); r != nil {
			if a.Reg == "population" && !s.acceptUnfenced {
				s.violation("population %s v%d, acknowledged by a quorum at the home at index %d (epoch %d), is past the fork at %d: the activated site never had it",
					a.ID, a.Version, a.Index, a.Epoch, r.rep.Fork)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
		idx := a.Index
		rec, err := client.Get(ctx, a.Reg, a.ID, registry.AsOf{Index: &idx})
		cancel()
		n++
		if err != nil {
			s.violation("%s %s v%d acknowledged by %s at index %d (epoch %d, step %d): not readable at the home: %v", a.Reg, a.ID, a.Version, a.Site, a.Index, a.Epoch, a.Step, err)
			continue
		}
		if rec.Version != a.Version || rec.Index != a.Index || !sameJSON(rec.Data, a.Data) {
			s.violation("%s %s acknowledged by %s as v%d at index %d (epoch %d, step %d): the home has v%d at index %d (epoch %d): %s",
				a.Reg, a.ID, a.Site, a.Version, a.Index, a.Epoch, a.Step, rec.Version, rec.Index, rec.Epoch, rec.Data)
		}
	}
	s.logf("%d acknowledged writes read back at the home", n)
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// checkReport: every write the home acknowledged past the fork is in
// the report, at its index, with its record id.
func (s *sched) checkReport() {
	s.mu.Lock()
	acks := slices.Clone(s.acks)
	s.mu.Unlock()
	for i := range s.reports {
		r := &s.reports[i]
		byIndex := map[uint64]guest.ForkedEntry{}
		for _, e := range r.rep.Entries {
			byIndex[e.Index] = e
		}
		if uint64(len(r.rep.Entries)) != r.rep.HomeSize-min(r.rep.Fork, r.rep.HomeSize) {
			s.violation("report %d: %d entries, but the home held %d past the fork at %d", i+1, len(r.rep.Entries), r.rep.HomeSize-r.rep.Fork, r.rep.Fork)
		}
		n := 0
		for _, a := range acks {
			if s.forkedIn(a) != r {
				continue
			}
			n++
			e, ok := byIndex[a.Index]
			switch {
			case !ok:
				s.violation("%s %s v%d acknowledged by the home at index %d, past the fork at %d: not in the reconciliation report", a.Reg, a.ID, a.Version, a.Index, r.rep.Fork)
			case e.ID != a.ID || e.Registry != a.Reg || e.Version != a.Version || e.Epoch != a.Epoch:
				s.violation("report entry %d is %s %q v%d epoch %d; the home acknowledged %s %s v%d epoch %d there", a.Index, e.Registry, e.ID, e.Version, e.Epoch, a.Reg, a.ID, a.Version, a.Epoch)
			}
		}
		s.logf("report %d: %d forked writes of epoch %d found in it (%d entries)", i+1, n, r.homeEpoch, len(r.rep.Entries))
	}
}

// ledgerView is one ledger on disk, read whole.
type ledgerView struct {
	name    string
	entries [][]byte
	signed  []byte
	writers []string // writers[e-1] writes epoch e, as its orders say
}

func (s *sched) readLedger(name, dir string) *ledgerView {
	v := &ledgerView{name: name}
	b, err := os.ReadFile(filepath.Join(dir, ledger.CheckpointPath))
	if errors.Is(err, os.ErrNotExist) {
		return v
	}
	if err != nil {
		s.fatal("ledger of %s: %v", name, err)
	}
	v.signed = b
	text, err := ledger.SplitNote(b)
	if err != nil {
		s.fatal("ledger of %s: %v", name, err)
	}
	cp, err := ledger.ParseCheckpoint(text)
	if err != nil {
		s.fatal("ledger of %s: %v", name, err)
	}
	err = ledger.Scan(s.t.Context(), ledger.DirFetcher(dir), 0, cp.Size, func(_ uint64, e []byte) error {
		v.entries = append(v.entries, slices.Clone(e))
		return nil
	})
	if err != nil {
		s.fatal("ledger of %s: scan: %v", name, err)
	}
	ep, err := continuity.NewEpochs(s.c)
	if err != nil {
		s.fatal("%v", err)
	}
	var last uint64
	for i, raw := range v.entries {
		e, err := ledger.DecodeEntry(raw)
		if err != nil {
			s.violation("%s: entry %d: %v", name, i, err)
			continue
		}
		if e.Type == ledger.TypeOrder {
			so, err := continuity.ParseSignedOrder(e.Payload)
			if err != nil {
				s.violation("%s: entry %d: order: %v", name, i, err)
				continue
			}
			if err := ep.Apply(&so.Order); err != nil {
				s.violation("%s: entry %d: the order does not fold: %v", name, i, err)
			}
		}
		if e.Epoch < last {
			s.violation("%s: entry %d is of epoch %d, after an entry of epoch %d", name, i, e.Epoch, last)
		}
		if e.Epoch > ep.Current() {
			s.violation("%s: entry %d is of epoch %d, which no order before it opened (current %d)", name, i, e.Epoch, ep.Current())
		}
		last = e.Epoch
	}
	for e := uint64(1); e <= ep.Current(); e++ {
		w, _ := ep.WriterAt(e)
		v.writers = append(v.writers, w)
	}
	return v
}

// checkLedgers reads every ledger the sites hold, and the home's ledger
// set aside by reconciliation, and checks invariant (1).
func (s *sched) checkLedgers() {
	views := []*ledgerView{s.readLedger("home", s.lay.Ledger(schedHome))}
	for i, r := range s.reports {
		if r.rep.MovedTo != "" {
			views = append(views, s.readLedger(fmt.Sprintf("home (set aside at failback %d)", i+1), r.rep.MovedTo))
		}
	}
	for _, dir := range s.aside {
		views = append(views, s.readLedger("home ("+filepath.Base(dir)+")", dir))
	}
	for _, e := range schedEmbassies {
		views = append(views, s.readLedger(e, filepath.Join(guest.GuestDir(s.embDir[e], procGuest), "ledger")))
	}
	// One writer per epoch, the same in every ledger, and the one the
	// orders of the schedule named.
	global := map[uint64]string{}
	from := map[uint64]string{}
	for _, v := range views {
		for i, w := range v.writers {
			e := uint64(i + 1)
			if g, ok := global[e]; ok && g != w {
				s.violation("epoch %d: %s says its writer is %s, %s says %s", e, from[e], g, v.name, w)
				continue
			}
			global[e], from[e] = w, v.name
		}
	}
	for i, w := range s.writers {
		if g := global[uint64(i+1)]; g != w {
			s.violation("epoch %d: the ledgers say its writer is %q; the schedule's orders named %s", i+1, g, w)
		}
	}
	// No two trees in one epoch: at an index where two ledgers hold
	// entries of the same epoch, they hold the same entry (a withheld
	// stub carries the leaf hash of what it stands for).
	for i, a := range views {
		for _, b := range views[i+1:] {
			for k := range min(len(a.entries), len(b.entries)) {
				ea, eb := a.entries[k], b.entries[k]
				da, _ := ledger.DecodeEntry(ea)
				db, _ := ledger.DecodeEntry(eb)
				if da.Epoch == db.Epoch && ledger.EntryLeafHash(ea) != ledger.EntryLeafHash(eb) {
					s.violation("index %d: %s and %s hold different entries of the same epoch %d (%s, %s)", k, a.name, b.name, da.Epoch, da.Type, db.Type)
					break
				}
			}
		}
	}
	// Every checkpoint published for an epoch verifies with its writer's
	// key alone.
	s.mu.Lock()
	cps := maps.Clone(s.cps)
	s.mu.Unlock()
	for _, v := range views {
		if v.signed != nil {
			cps[string(v.signed)] = v.name + " (on disk at the end)"
		}
	}
	roots := map[[2]uint64]ledger.Hash{}
	rootFrom := map[[2]uint64]string{}
	for signed, who := range cps {
		text, err := ledger.SplitNote([]byte(signed))
		if err != nil {
			s.violation("checkpoint served by %s: %v", who, err)
			continue
		}
		cp, err := ledger.ParseCheckpoint(text)
		if err != nil {
			s.violation("checkpoint served by %s: %v", who, err)
			continue
		}
		if cp.Size == 0 {
			// The empty tree commits to nothing and is of no epoch (0):
			// a ledger opened empty signs it with whatever key it has.
			continue
		}
		w, ok := global[cp.Epoch]
		if !ok {
			s.violation("checkpoint of size %d, epoch %d, served by %s: no ledger knows a writer of that epoch", cp.Size, cp.Epoch, who)
			continue
		}
		def, ok := s.c.Site(w)
		if !ok {
			s.fatal("writer %s not in the charter", w)
		}
		vk, err := ledger.ParseVerifierKey(def.CheckpointKey)
		if err != nil {
			s.fatal("%v", err)
		}
		if _, _, err := ledger.OpenCheckpoint([]byte(signed), s.c.Guest.Origin, note.VerifierList(vk)); err != nil {
			s.violation("checkpoint of size %d, epoch %d, served by %s, does not verify with the key of %s, the writer of epoch %d: %v\n%s",
				cp.Size, cp.Epoch, who, w, cp.Epoch, err, signed)
		}
		k := [2]uint64{cp.Epoch, cp.Size}
		if r, ok := roots[k]; ok && r != cp.Root {
			s.violation("two checkpoints of epoch %d and size %d with different roots: from %s and %s", cp.Epoch, cp.Size, rootFrom[k], who)
		}
		roots[k], rootFrom[k] = cp.Root, who
	}
	sizes := make([]string, len(views))
	for i, v := range views {
		sizes[i] = fmt.Sprintf("%s %d", v.name, len(v.entries))
	}
	s.logf("ledgers checked (%s); %d distinct checkpoints verified; writers by epoch %v", strings.Join(sizes, ", "), len(cps), s.writers)
}

// sample polls every site for its published checkpoint and its view of
// the epochs while the schedule runs.
func (s *sched) sample(ctx context.Context) {
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(url string) ([]byte, bool) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, false
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return b, err == nil && resp.StatusCode == http.StatusOK
	}
	for ctx.Err() == nil {
		for _, id := range schedSites {
			base := "http://" + s.addr[id]
			if cp, ok := get(base + "/guests/" + procGuest + "/ledger/checkpoint"); ok && len(cp) > 0 {
				s.mu.Lock()
				if _, seen := s.cps[string(cp)]; !seen {
					s.cps[string(cp)] = id
				}
				s.mu.Unlock()
			}
			if b, ok := get(base + "/continuity/v1/guests/" + procGuest + "/status"); ok {
				var st siteapi.ContinuityStatus
				if json.Unmarshal(b, &st) == nil && st.Writer != "" {
					s.mu.Lock()
					if s.views[st.Epoch] == nil {
						s.views[st.Epoch] = map[string]string{}
					}
					if _, seen := s.views[st.Epoch][st.Writer]; !seen {
						s.views[st.Epoch][st.Writer] = id
					}
					s.mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ledgerDir is where a site keeps the guest's ledger: the home in its
// state directory (also in standby), an embassy under its data directory.
func (s *sched) ledgerDir(id string) string {
	if id == schedHome {
		return s.lay.Ledger(schedHome)
	}
	return filepath.Join(guest.GuestDir(s.embDir[id], procGuest), "ledger")
}

// watchCheckpoints reads the sites' published checkpoint files in a
// tight loop until stopped: around an order that makes a site the
// writer, a checkpoint lives for milliseconds before the next replaces
// it, far too briefly for the sampler's polls.
func (s *sched) watchCheckpoints() (stop func()) {
	ctx, cancel := context.WithCancel(s.t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, id := range schedSites {
				b, err := os.ReadFile(filepath.Join(s.ledgerDir(id), ledger.CheckpointPath))
				if err != nil || len(b) == 0 {
					continue
				}
				s.mu.Lock()
				if _, seen := s.cps[string(b)]; !seen {
					s.cps[string(b)] = id + " (its checkpoint file, around an order)"
				}
				s.mu.Unlock()
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
		<-done
	}
}

// checkViews: every status any site served named one writer per epoch,
// the one the schedule's orders named.
func (s *sched) checkViews() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e, ws := range s.views {
		if len(ws) > 1 {
			s.problems = append(s.problems, fmt.Sprintf("epoch %d: the sites' statuses named writers %v", e, ws))
		}
		for w, who := range ws {
			if e >= 1 && e <= uint64(len(s.writers)) && s.writers[e-1] != w {
				s.problems = append(s.problems, fmt.Sprintf("epoch %d: %s's status named writer %s; the orders named %s", e, who, w, s.writers[e-1]))
			}
		}
	}
}
