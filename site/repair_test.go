package site_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// sitePair is a Demo Republic's home and embassy-north in this process,
// on loopback listeners, served until the test ends; embassy-south is
// configured at an address nobody serves.
type sitePair struct {
	home, north       *site.Site
	homeURL, northURL string
	northDir          string // embassy-north's data_dir
}

// pairOptions tune startHomeAndNorth.
type pairOptions struct {
	// northForHome, if set, is the handler the home reaches embassy-north
	// through (given north's URL); default: north itself.
	northForHome func(northURL string) http.Handler
	// homeForNorth likewise is what embassy-north reaches the home through.
	homeForNorth func(homeURL string) http.Handler
	// ledgerCheck is both sites' LedgerCheckInterval.
	ledgerCheck time.Duration
	// checkpointEvery is how often at most both ledgers publish a
	// checkpoint: tests want it short (default 1ms), benchmarks as serve
	// runs.
	checkpointEvery time.Duration
}

// serveInFront serves h on a loopback listener until the test ends, and
// returns its URL. Registered before the sites', its cleanup runs after
// they have stopped.
func serveInFront(t testing.TB, h http.Handler) string {
	ln := drillListen(t)
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// forgingProxy is a proxy to target that flips a byte in every entry
// bundle it serves (forgeEntries).
func forgingProxy(target string) http.Handler {
	u, _ := url.Parse(target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = forgeEntries
	p.ErrorLog = log.New(io.Discard, "", 0)
	return p
}

// startHomeAndNorth opens and serves the home of the state in dir and
// embassy-north, logging to logs (printed if the test fails).
func startHomeAndNorth(t testing.TB, dir string, logs *syncBuffer, o pairOptions) *sitePair {
	t.Helper()
	ctx := context.Background()
	layout := state.Layout{Dir: dir}
	homeLn, northLn := drillListen(t), drillListen(t)
	sp := &sitePair{homeURL: "http://" + homeLn.Addr().String(), northURL: "http://" + northLn.Addr().String()}
	northForHome, homeForNorth := sp.northURL, sp.homeURL
	if o.northForHome != nil {
		northForHome = serveInFront(t, o.northForHome(sp.northURL))
	}
	if o.homeForNorth != nil {
		homeForNorth = serveInFront(t, o.homeForNorth(sp.homeURL))
	}
	const nobody = "http://127.0.0.1:1"
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(testPass), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	lopts := guest.LocalOptions{Ledger: ledger.Options{CheckpointInterval: cmp.Or(o.checkpointEvery, time.Millisecond)}}
	sp.northDir = filepath.Join(t.TempDir(), "north")
	var err error
	sp.north, err = site.Open(ctx, &site.Config{Site: "embassy-north", Listen: northLn.Addr().String(), InsecureLoopback: true,
		DataDir: sp.northDir, PassphraseFile: passFile,
		Guests: []site.GuestConfig{{Charter: layout.Charter(), CheckpointKey: layout.Key("site-checkpoint", "embassy-north"), Custody: layout.Custody()}},
		Peers:  map[string]string{"home": homeForNorth, "embassy-south": nobody},
	}, site.Options{Logger: logger.With("at", "embassy-north"), Local: lopts, LedgerCheckInterval: o.ledgerCheck})
	if err != nil {
		t.Fatal(err)
	}
	lopts.Passphrase = []byte(testPass)
	sp.home, err = site.Open(ctx, &site.Config{StateDir: dir, Site: "home", Listen: homeLn.Addr().String(), InsecureLoopback: true,
		Peers: map[string]string{"embassy-north": northForHome, "embassy-south": nobody},
	}, site.Options{Logger: logger.With("at", "home"), Local: lopts, LedgerCheckInterval: o.ledgerCheck})
	if err != nil {
		sp.north.Close()
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sp.home.Serve(sctx, homeLn) })
	wg.Go(func() { sp.north.Serve(sctx, northLn) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := sp.home.Close(); err != nil {
			t.Error(err)
		}
		if err := sp.north.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	return sp
}

// repairCluster is a sitePair checking its stored ledgers every 100ms.
// With forge, the home reaches embassy-north through a proxy that flips a
// byte in every entry bundle north serves (replication passes untouched).
type repairCluster struct {
	*sitePair
	c           *charter.Charter
	northLedger string // embassy-north's copy of the ledger
	registrar   *siteapi.Client
	logs        *syncBuffer
}

func startRepairCluster(t *testing.T, forge bool) *repairCluster {
	t.Helper()
	var o pairOptions
	if forge {
		o.northForHome = forgingProxy
	}
	return startRepairClusterOf(t, newState(t), o)
}

// startFullCluster is a repairCluster whose ledger holds a full bundle:
// 260 records are written before the sites start.
func startFullCluster(t *testing.T, o pairOptions) *repairCluster {
	t.Helper()
	ctx := context.Background()
	dir := newState(t)
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 260 {
		id := fmt.Sprintf("DR-FULL-%03d", i)
		if _, err := loc.Registries.Put(ctx, "population", id, person(id, "Full", ""), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := loc.Close(); err != nil {
		t.Fatal(err)
	}
	return startRepairClusterOf(t, dir, o)
}

func startRepairClusterOf(t *testing.T, dir string, o pairOptions) *repairCluster {
	t.Helper()
	rc := &repairCluster{logs: &syncBuffer{}}
	var err error
	if rc.c, err = charter.ReadVerified(state.Layout{Dir: dir}.Charter()); err != nil {
		t.Fatal(err)
	}
	o.ledgerCheck = 100 * time.Millisecond
	rc.sitePair = startHomeAndNorth(t, dir, rc.logs, o)
	rc.northLedger = filepath.Join(guest.GuestDir(rc.northDir, rc.c.Guest.ID), "ledger")
	rc.registrar = &siteapi.Client{BaseURL: rc.homeURL, Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: officialKey(t, dir, "registrar")}}
	return rc
}

// forgeEntries flips a byte in the last entry of every entry bundle a
// site serves: a peer whose copy is forged (or damaged) but well-formed.
func forgeEntries(res *http.Response) error {
	if !strings.Contains(res.Request.URL.Path, "/ledger/tile/entries/") || res.StatusCode != http.StatusOK {
		return nil
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if len(b) > 0 {
		b[len(b)-1] ^= 0x01
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// write puts n records at the home and waits until embassy-north has
// receipted them; it returns the home's checkpoint size.
func (rc *repairCluster) write(t *testing.T, tag string, n int) uint64 {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("DR-%s-%d", tag, i)
		if _, err := rc.registrar.Put(ctx, "population", id, person(id, "Repair", "")); err != nil {
			t.Fatalf("write %s: %v", id, err)
		}
	}
	var size uint64
	until(t, "the home publishes the writes", func() (bool, error) {
		_, cp := rc.home.Local().Log.Checkpoint()
		size = cp.Size
		return size > 0 && rc.home.Local().Log.Size() == size, nil
	})
	until(t, "embassy-north receipts the writes", func() (bool, error) {
		for _, l := range rc.home.Replicator().Tracker().Lags() {
			if l.Site == "embassy-north" {
				return l.Size >= size, nil
			}
		}
		return false, nil
	})
	return size
}

// logged reports whether one log line holds every one of parts.
func (rc *repairCluster) logged(parts ...string) bool {
	for line := range strings.SplitSeq(rc.logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func getURL(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// flipEdge flips a byte inside the last entry of the partial bundle at
// the right edge of the ledger in dir, of the given size.
func flipEdge(t *testing.T, dir string, size uint64) string {
	t.Helper()
	if size%ledger.TileWidth == 0 {
		t.Fatalf("size %d: no partial bundle", size)
	}
	path := filepath.Join(dir, filepath.FromSlash(ledger.EntriesPath(size/ledger.TileWidth, int(size%ledger.TileWidth))))
	// An embassy receipts entries once they are durable in its
	// write-ahead log; its tiles follow.
	var b []byte
	until(t, "the bundle at size "+fmt.Sprint(size)+" is written", func() (bool, error) {
		var err error
		b, err = os.ReadFile(path)
		return err == nil, nil
	})
	b[len(b)-3] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// flipFullBundle flips a byte inside the first entry of full bundle 0 of
// the ledger in dir.
func flipFullBundle(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(ledger.EntriesPath(0, 0)))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits up to 30s for the site at u to answer /readyz 200.
func waitReady(t *testing.T, what, u string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getURL(t, u+"/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready 30s after the damage: %d %s", what, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verifyLedger audits the ledger in dir as chancery verify does.
func (rc *repairCluster) verifyLedger(t *testing.T, dir string) {
	t.Helper()
	if _, err := (&audit.Ledger{Target: dir, Fetcher: ledger.DirFetcher(dir), Charter: rc.c}).Verify(context.Background(), audit.VerifyOptions{}); err != nil {
		t.Fatalf("verify %s: %v", dir, err)
	}
}

func repairedOnce(t *testing.T, u string) {
	t.Helper()
	if _, m := getURL(t, u+"/metrics"); !strings.Contains(m, `chancery_ledger_repairs_total{guest="demo-republic"} 1`) ||
		!strings.Contains(m, `chancery_ledger_damaged{guest="demo-republic"} 0`) {
		t.Errorf("metrics at %s: want one repair and no damage", u)
	}
}

// TestHomeRepairsDamagedEdge is issue 11, item 2: a byte flipped in a
// serving home's partial bundle. The home finds it, fetches the entries
// from embassy-north, checks them against its own tree, rewrites the
// bundle and is ready again, with no operator; every entry verifies and
// writes go on.
func TestHomeRepairsDamagedEdge(t *testing.T) {
	rc := startRepairCluster(t, false)
	waitReady(t, "home before", rc.homeURL)
	size := rc.write(t, "A", 3)
	path := flipEdge(t, rc.home.Local().Log.Dir(), size)
	waitReady(t, "home", rc.homeURL)
	if kept, _ := filepath.Glob(path + ".damaged-*"); len(kept) != 1 {
		t.Errorf("the damaged bundle is not kept beside the repaired one: %v", kept)
	}
	if !rc.logged(`"msg":"ledger repaired"`, `"at":"home"`, `"peer":"embassy-north"`, `"entries_to":`) {
		t.Error("no log line says what was repaired from which site")
	}
	repairedOnce(t, rc.homeURL)
	rc.verifyLedger(t, rc.home.Local().Log.Dir())
	rc.write(t, "B", 3)
	rc.verifyLedger(t, rc.home.Local().Log.Dir())
}

// TestEmbassyRepairsDamagedEdge: a byte flipped in embassy-north's
// partial bundle. It refuses batches meanwhile, repairs from the home,
// is ready again and receipts the next batches.
func TestEmbassyRepairsDamagedEdge(t *testing.T) {
	rc := startRepairCluster(t, false)
	waitReady(t, "embassy-north before", rc.northURL)
	rc.write(t, "A", 2)
	// The last entry of the edge is of a registry the charter does not
	// place at north: it holds a withheld stub there, and must again.
	if _, err := rc.registrar.Put(context.Background(), "legal-acts", "ACT-1", json.RawMessage(`{"act_id":"ACT-1","title":"Act of repair"}`)); err != nil {
		t.Fatal(err)
	}
	size := rc.write(t, "B", 0)
	flipEdge(t, rc.northLedger, size)
	waitReady(t, "embassy-north", rc.northURL)
	e, err := ledger.ReadEntry(context.Background(), ledger.DirFetcher(rc.northLedger), size-1, size)
	if err != nil {
		t.Fatal(err)
	}
	if de, err := ledger.DecodeEntry(e); err != nil || de.Type != ledger.TypeWithheld {
		t.Fatalf("entry %d at north after the repair: %v, type %v; want the withheld stub north held", size-1, err, de.Type)
	}
	if !rc.logged(`"msg":"ledger repaired"`, `"at":"embassy-north"`, `"peer":"home"`, `"entries_to":`) {
		t.Error("no log line says what was repaired from which site")
	}
	repairedOnce(t, rc.northURL)
	rc.write(t, "C", 3) // waits for north's receipt
	rc.verifyLedger(t, rc.northLedger)
}

// TestRepairRefusesForgedEntries: the only site that answers serves
// entries that do not hash to their leaves. The home refuses them, names
// the entry and the site, and stays not ready; nothing is rewritten.
func TestRepairRefusesForgedEntries(t *testing.T) {
	rc := startRepairCluster(t, true)
	waitReady(t, "home before", rc.homeURL)
	size := rc.write(t, "A", 3)
	path := flipEdge(t, rc.home.Local().Log.Dir(), size)
	damaged, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ledger damaged", "embassy-north", fmt.Sprintf("entry %d from the peer does not hash to its leaf", size-1), "embassy-south", "chancery repair"}
	var body string
	until(t, "the home reports the refused repair", func() (bool, error) {
		var code int
		code, body = getURL(t, rc.homeURL+"/readyz")
		if code == http.StatusOK {
			return false, fmt.Errorf("ready with forged entries: %s", body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, nil
			}
		}
		return true, nil
	})
	t.Logf("readyz: %s", body)
	time.Sleep(time.Second) // several more checks
	if code, body := getURL(t, rc.homeURL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("ready with forged entries: %d %s", code, body)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, damaged) {
		t.Error("the damaged bundle was rewritten from forged entries")
	}
	if _, m := getURL(t, rc.homeURL+"/metrics"); !strings.Contains(m, `chancery_ledger_damaged{guest="demo-republic"} 1`) {
		t.Error("chancery_ledger_damaged is not 1")
	}
}

// TestHomeRepairsDamagedFullBundle: a byte flipped in a full entry bundle
// below the right edge of a serving home (260 records written before it
// serves). The checker's scrub of full bundles finds it, the home repairs
// it from embassy-north, and the ledger verifies.
func TestHomeRepairsDamagedFullBundle(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 260 records first")
	}
	rc := startFullCluster(t, pairOptions{})
	waitReady(t, "home before", rc.homeURL)
	rc.write(t, "A", 1) // north holds every entry
	flipFullBundle(t, rc.home.Local().Log.Dir())
	until(t, "the home repairs bundle 0", func() (bool, error) {
		return rc.logged(`"msg":"ledger repaired"`, `"at":"home"`, `"peer":"embassy-north"`, `"entries_from":0,"entries_to":255`), nil
	})
	waitReady(t, "home", rc.homeURL)
	repairedOnce(t, rc.homeURL)
	rc.verifyLedger(t, rc.home.Local().Log.Dir())
}

// TestEmbassyRefusesOverDamagedFullBundle: a byte flipped in a full
// bundle of embassy-north, which reaches the home only through a proxy
// that forges entries (and embassy-south not at all): it cannot repair
// it, says so, and takes no batch and signs no receipt meanwhile.
func TestEmbassyRefusesOverDamagedFullBundle(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 260 records first")
	}
	rc := startFullCluster(t, pairOptions{homeForNorth: forgingProxy})
	waitReady(t, "embassy-north before", rc.northURL)
	size := rc.write(t, "A", 1)
	flipFullBundle(t, rc.northLedger)
	until(t, "embassy-north reports the bundle it cannot repair", func() (bool, error) {
		code, body := getURL(t, rc.northURL+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "no site could repair it") &&
			strings.Contains(body, "home: repair: entry") && strings.Contains(body, "tile/entries/000"), nil
	})
	// An asynchronous registry: a quorum write (population) would wait
	// for north's receipt in vain.
	if _, err := rc.registrar.Put(context.Background(), "business", "BR-AFTER", json.RawMessage(`{"registration_no":"BR-AFTER","name":"After Trading"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	for _, l := range rc.home.Replicator().Tracker().Lags() {
		if l.Site == "embassy-north" && l.Size > size {
			t.Fatalf("embassy-north receipted size %d over a damaged bundle (size %d before)", l.Size, size)
		}
	}
	if !rc.logged(`"msg":"replication refused"`, `"at":"embassy-north"`, `tile/entries/000`) {
		t.Error("embassy-north does not log the batch it refused")
	}
}
