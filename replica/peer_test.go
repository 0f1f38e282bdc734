package replica_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
)

// runShipper ships to a site from src until the returned stop is called.
func runShipper(t *testing.T, f *fixture, site string, src replica.Source, sink replica.Sink) (*replica.Tracker, func()) {
	t.Helper()
	tr := replica.NewTracker([]string{site}, nil)
	sh, err := replica.NewShipper(replica.ShipperOptions{Charter: f.c, Site: site, Source: src, Sink: sink, Tracker: tr,
		MaxBatchEntries: ledger.TileWidth, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sh.Run(ctx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return tr, stop
}

var packNameRE = regexp.MustCompile(`data/[0-9a-f]{64}`)

// TestPeerCatchUp: south, empty, catches up from north rather than from
// the home. A north that alters a pack or an entry bundle on the way is
// caught (the pack before it is forwarded, the entry by south's receiver)
// and nothing of the altered batch is kept; served honestly, south reaches
// the writer's size and verifies with the home's key.
func TestPeerCatchUp(t *testing.T) {
	f := newFixture(t, fixtureOptions{targets: []string{north}})
	regs := f.registries()
	// More than one entry bundle of small records, then the attachments,
	// so that the first bundle references no blob.
	const plain = ledger.TileWidth + 14
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < plain; i += 4 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := f.put(ctx, regs[i%len(regs)], fmt.Sprintf("r-%d", i), nil)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The writers each take their own registries, so which land last,
	// in the second bundle, depends on scheduling (under -race once none
	// of business): two more, past the first bundle, make it certain.
	for i := range 2 {
		f.mustPut("business", fmt.Sprintf("late-%d", i), nil)
	}
	for _, reg := range regs {
		f.mustPut(reg, "with-attachment-"+reg, randomBytes(12<<10))
	}
	_, cp := f.published()
	f.waitSites(cp.Size, 10*time.Second, north)
	nm := f.sites[north].mirror()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _, err := nm.WaitPublished(ctx, cp.Size)
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	// The entry to alter: a business record in the second bundle, which
	// north holds in full.
	entries := f.homeEntries(cp.Size)
	var target []byte
	var targetIdx uint64
	for i := uint64(ledger.TileWidth); i < cp.Size; i++ {
		if rec := recordOf(t, entries[i]); rec != nil && rec.Registry == "business" && len(rec.Chunks) == 0 {
			target, targetIdx = rec.Sealed, i
			break
		}
	}
	if target == nil {
		t.Fatal("no business record in the second bundle")
	}
	counts := map[string]uint64{}
	for _, e := range entries {
		if rec := recordOf(t, e); rec != nil {
			counts[rec.Registry]++
		}
	}

	var flipBundle, flipPack atomic.Bool
	var flippedBundles, flippedPacks atomic.Int64
	files := http.StripPrefix("/ledger", http.FileServer(http.Dir(f.sites[north].ledger)))
	northMux := f.sites[north].mux
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h http.Handler
		var flip func(body []byte) bool
		switch {
		case strings.HasPrefix(r.URL.Path, "/ledger/"):
			h = files
			if flipBundle.Load() && strings.HasPrefix(r.URL.Path, "/ledger/tile/entries/001") {
				flip = func(b []byte) bool {
					i := bytes.Index(b, target)
					if i < 0 {
						return false
					}
					b[i+len(target)/2] ^= 0x01
					flippedBundles.Add(1)
					return true
				}
			}
		default:
			h = northMux
			if flipPack.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/data/") {
				flip = func(b []byte) bool {
					if len(b) == 0 {
						return false
					}
					b[len(b)/3] ^= 0x80
					flippedPacks.Add(1)
					return true
				}
			}
		}
		if flip == nil {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK && !flip(body) {
			t.Errorf("nothing to alter in %s", r.URL.Path)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer srv.Close()
	peer := replica.PeerSource{
		Remote: &replica.Remote{Base: srv.URL, Guest: f.guest, Client: f.client},
		Ledger: srv.URL + "/ledger",
		Poll:   20 * time.Millisecond,
	}
	s := f.sites[south]
	sr, sm := s.receiver(), s.mirror()

	// A pack altered in transit: the shipper checks it against its name
	// before forwarding, names it, and south keeps none of the batch that
	// needs it.
	flipPack.Store(true)
	tr, stop := runShipper(t, f, south, peer, sr)
	var named, packMsg string
	if !within(10*time.Second, func() bool {
		packMsg = lastError(tr, south)
		named = packNameRE.FindString(packMsg)
		return named != ""
	}) {
		t.Fatalf("no error naming a pack; last error %q, south at %d", lastError(tr, south), sm.MirrorSize())
	}
	stop()
	if !strings.Contains(packMsg, "refused") || !strings.Contains(packMsg, "does not hash to its name") {
		t.Errorf("error for an altered pack: %q", packMsg)
	}
	if flippedPacks.Load() == 0 {
		t.Fatal("no pack was altered")
	}
	var namedReg string
	for _, reg := range regs {
		for _, p := range f.packsOf(reg) {
			if p == named {
				namedReg = reg
			}
		}
	}
	if namedReg == "" || !placed(f.c, namedReg, south) {
		t.Fatalf("altered pack %s is of registry %q", named, namedReg)
	}
	if missing, err := sr.Missing(context.Background(), namedReg, []string{named}); err != nil || len(missing) != 1 {
		t.Fatalf("south after the altered pack: missing %v, %v", missing, err)
	}
	if got := sm.MirrorSize(); got != ledger.TileWidth {
		t.Fatalf("south holds %d entries after the altered pack, want the first bundle (%d)", got, ledger.TileWidth)
	}

	// An entry altered in its bundle: south's receiver refuses the batch.
	flipPack.Store(false)
	flipBundle.Store(true)
	refusedBefore := sr.Stats().Refused
	tr, stop = runShipper(t, f, south, peer, sr)
	// The tracker's last error is cleared by the next session's contact:
	// look for it while the shipper retries.
	var msg string
	if !within(10*time.Second, func() bool {
		msg = lastError(tr, south)
		return sr.Stats().Refused > refusedBefore && strings.Contains(msg, "refused")
	}) {
		t.Fatalf("south refused nothing; last error %q, south at %d", lastError(tr, south), sm.MirrorSize())
	}
	stop()
	if !strings.Contains(msg, "root") {
		t.Errorf("error for an altered entry: %q", msg)
	}
	if flippedBundles.Load() == 0 {
		t.Fatal("no bundle was altered")
	}
	if got := sm.MirrorSize(); got != ledger.TileWidth || got > targetIdx {
		t.Fatalf("south holds %d entries after the altered entry %d, want %d", got, targetIdx, ledger.TileWidth)
	}
	if got := tr.Size(south); got > ledger.TileWidth {
		t.Fatalf("south's receipt covers %d entries", got)
	}

	// Served honestly, south catches up from north alone.
	flipBundle.Store(false)
	tr, stop = runShipper(t, f, south, peer, sr)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	err = tr.WaitSite(ctx, south, cp.Size-1)
	cancel()
	if err != nil {
		t.Fatalf("south did not catch up from north: %v; last error %q", err, lastError(tr, south))
	}
	stop()
	if got := sm.MirrorSize(); got != cp.Size {
		t.Fatalf("south holds %d entries, writer %d", got, cp.Size)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	signed, _, err := sm.WaitPublished(ctx, cp.Size)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	homeSigned, _ := f.home.Checkpoint()
	if !bytes.Equal(signed, homeSigned) {
		t.Errorf("south publishes a checkpoint other than the home's")
	}
	rep := f.verify(s.ledger)
	if rep.Entries != cp.Size {
		t.Fatalf("south verifies %d entries, writer %d", rep.Entries, cp.Size)
	}
	// North holds legal-acts only as stubs, so south, catching up from
	// north, gets stubs for them too; land it must not hold at all.
	if got, want := rep.ByType[ledger.TypeWithheld], counts["land"]+counts["legal-acts"]; got != want {
		t.Errorf("south holds %d withheld stubs, want %d", got, want)
	}
	if missing, err := sr.Missing(context.Background(), namedReg, []string{named}); err != nil || len(missing) != 0 {
		t.Fatalf("south after catching up: pack %s missing %v, %v", named, missing, err)
	}
}
