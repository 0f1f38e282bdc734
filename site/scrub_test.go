package site_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// TestScheduledScrubFindsDamage: a site scrubbing its blob store on a
// schedule is ready while the store is sound, and not ready — naming the
// damage — once a byte of a pack is flipped; the metric counts it.
func TestScheduledScrubFindsDamage(t *testing.T) {
	dir := newState(t)
	ctx := context.Background()
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	deed := bytes.Repeat([]byte("deed of parcel P-77, Capital City; "), 2000)
	ref, err := loc.Registries.PutBlob(ctx, "land", bytes.NewReader(deed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loc.Registries.Put(ctx, "land", "P-77", json.RawMessage(`{"parcel_id":"P-77","owner_id":"DR-1"}`),
		[]registry.Attachment{{Name: "deed.txt", Size: int64(len(deed)), Ref: ref}}); err != nil {
		t.Fatal(err)
	}
	if err := loc.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true},
		Scrub: site.ScrubConfig{Every: site.Duration{Duration: 100 * time.Millisecond}}}
	s, err := site.Open(ctx, cfg, site.Options{Logger: slog.New(slog.DiscardHandler),
		Local: guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
		s.Close()
	})
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("a clean scrub counted in the metrics", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `chancery_blob_scrub_problems{guest="demo-republic"} 0`)
	})
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("sound store: /readyz %d %s", code, body)
	}

	// Flip a byte in the middle of the land registry's pack.
	var packs []string
	filepath.WalkDir(cfg.BlobDir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, filepath.Join("registries", "land", "data")) {
			packs = append(packs, p)
		}
		return nil
	})
	if len(packs) == 0 {
		t.Fatalf("no pack of land under %s", cfg.BlobDir())
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	var body string
	waitFor("/readyz naming the damage", func() bool {
		var code int
		code, body = get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "blob store damaged")
	})
	if !strings.Contains(body, "land") {
		t.Errorf("/readyz does not name the registry: %s", body)
	}
	if _, m := get("/metrics"); strings.Contains(m, `chancery_blob_scrub_problems{guest="demo-republic"} 0`) {
		t.Error("the metric still counts no problem")
	}
}

// TestReadyzNamesLedgerDamage: a byte flipped in the stored right edge of
// a serving home's ledger (the partial bundle the next append extends)
// makes /readyz name the damage and what to do, and sets the metric.
func TestReadyzNamesLedgerDamage(t *testing.T) {
	ts := startSite(t)
	ctx := context.Background()
	key := officialKey(t, ts.dir, "registrar")
	c := &siteapi.Client{BaseURL: ts.srv.URL, Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key}}
	for i := range 3 {
		if _, err := c.Put(ctx, "population", fmt.Sprintf("DR-EDGE-%d", i), person(fmt.Sprintf("DR-EDGE-%d", i), "Edge", "")); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) (int, string) {
		res, err := http.Get(ts.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// The edge is checked once the checkpoint covers the writes.
	deadline := time.Now().Add(10 * time.Second)
	var size uint64
	for {
		_, cp := ts.site.Local().Log.Checkpoint()
		if size = cp.Size; size >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("sound ledger: /readyz %d %s", code, body)
	}
	if size >= ledger.TileWidth {
		t.Fatalf("the right edge is not in bundle 0 (size %d)", size)
	}
	path := filepath.Join(ts.site.Local().Log.Dir(), filepath.FromSlash(ledger.EntriesPath(0, int(size))))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[2+int(binary.BigEndian.Uint16(b))+2+ledger.EntryHeaderSize+3] ^= 0x20 // inside entry 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "ledger damaged") || !strings.Contains(body, "chancery repair") {
		t.Fatalf("damaged right edge: /readyz %d %s", code, body)
	}
	if _, m := get("/metrics"); !strings.Contains(m, `chancery_ledger_damaged{guest="demo-republic"} 1`) {
		t.Error("chancery_ledger_damaged is not 1")
	}
}
