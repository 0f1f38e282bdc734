package site

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/internal/statetest"
	"github.com/chancery-gov/chancery/internal/testnet"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	"github.com/chancery-gov/chancery/siteapi"
)

const fillPass = "fill test passphrase"

type lockedBuffer = statetest.SyncBuffer

// serveFillSite serves s on ln until the test ends.
func serveFillSite(t *testing.T, s *Site, ln net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

func listenLoopback(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// copyTree copies a directory keeping file modes (key files must stay
// 0600), skipping what skip says.
func copyTree(t *testing.T, src, dst string, skip func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if skip != nil && skip(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), fi.Mode().Perm()|0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// lyingLedger serves h, but every withheld stub in an entry bundle is
// replaced by a forged record entry: a site claiming to hold what it does
// not.
func lyingLedger(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/ledger/tile/entries/") {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		var out []byte
		for off := 0; off+2 <= len(b); {
			n := int(binary.BigEndian.Uint16(b[off:]))
			e := b[off+2 : off+2+n]
			off += 2 + n
			if n == ledger.EntryHeaderSize+32 && e[1] == byte(ledger.TypeWithheld) {
				f := bytes.Clone(e[:ledger.EntryHeaderSize])
				f[1] = byte(ledger.TypeRecord)
				e = append(f, []byte(`{"forged":true}`)...)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
			out = append(out, e...)
		}
		if rec.Code != http.StatusOK {
			out = b
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(out)))
		w.WriteHeader(rec.Code)
		w.Write(out)
	})
}

func fillRecord(reg, id string) json.RawMessage {
	switch reg {
	case "land":
		return json.RawMessage(fmt.Sprintf(`{"parcel_id":%q,"owner_id":"O-%s"}`, id, id))
	case "legal-acts":
		return json.RawMessage(fmt.Sprintf(`{"act_id":%q,"title":"Act %s"}`, id, id))
	default:
		return json.RawMessage(fmt.Sprintf(`{"registry_no":%q,"registration_no":%q,"name":"B %s"}`, id, id, id))
	}
}

// TestFillWithheld: a home writes to two embassies of different
// placements (land is held at north only, legal-acts at south only); a
// home rebuilt from north's mirror holds stubs for every legal-acts entry
// and none of its packs; filling it, with north lying about the entries it
// withholds, makes every entry the writer's and every referenced chunk
// present.
func TestFillWithheld(t *testing.T) {
	// Three sites in one process: long for -short, but the race pass
	// (-short -race) runs it, for the concurrency between them.
	if testing.Short() && !testnet.Race {
		t.Skip("three in-process sites")
	}
	t.Setenv(keyfile.EnvPassphrase, fillPass)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: keyfile.Protector{Passphrase: []byte(fillPass), WorkFactor: 10}}); err != nil {
		t.Fatal(err)
	}
	l := state.Layout{Dir: dir}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	const guestID = "demo-republic"

	embassies := map[string]*Site{}
	urls := map[string]string{}
	for _, id := range []string{"embassy-north", "embassy-south"} {
		ln := listenLoopback(t)
		cfg := &Config{Site: id, Listen: ln.Addr().String(), InsecureLoopback: true, DataDir: filepath.Join(t.TempDir(), id),
			Guests: []GuestConfig{{Charter: l.Charter(), CheckpointKey: l.Key("site-checkpoint", id)}}}
		s, err := Open(ctx, cfg, Options{Logger: logger.With("test_site", id)})
		if err != nil {
			t.Fatal(err)
		}
		serveFillSite(t, s, ln)
		embassies[id] = s
		urls[id] = "http://" + ln.Addr().String()
	}

	// The home writes records of three registries, some with attachments.
	ln := listenLoopback(t)
	hcfg := &Config{StateDir: dir, Site: "home", Listen: ln.Addr().String(), InsecureLoopback: true, Peers: urls}
	home, err := Open(ctx, hcfg, Options{Logger: logger.With("test_site", "writer-home"),
		Local: guest.LocalOptions{Passphrase: []byte(fillPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	serveFillSite(t, home, ln)
	key, err := keyfile.ReadEd25519(l.Key("official", "registrar"), keyfile.Protector{Passphrase: []byte(fillPass)})
	if err != nil {
		t.Fatal(err)
	}
	c := &siteapi.Client{BaseURL: "http://" + ln.Addr().String(), HTTP: &http.Client{Timeout: time.Minute},
		Signer: siteapi.Signer{Guest: "demo-republic", Site: "home", Official: "registrar", Key: key}}
	rnd := rand.New(rand.NewPCG(1, 2))
	regs := []string{"legal-acts", "land", "business"}
	withAtt := map[string]int{}
	for i := range 330 {
		reg := regs[rnd.IntN(len(regs))]
		id := fmt.Sprintf("R%04d", i)
		var atts []siteapi.AttachmentInput
		if reg != "business" && rnd.IntN(4) == 0 {
			att := make([]byte, 2000+rnd.IntN(30000))
			for j := range att {
				att[j] = byte(rnd.Uint32())
			}
			br, err := c.PutBlob(ctx, reg, bytes.NewReader(att))
			if err != nil {
				t.Fatal(err)
			}
			atts = append(atts, siteapi.AttachmentInput{Name: id + ".bin", Ref: br.Ref})
			withAtt[reg]++
		}
		if _, err := c.Put(ctx, reg, id, fillRecord(reg, id), atts...); err != nil {
			t.Fatalf("put %s %s: %v", reg, id, err)
		}
	}
	if withAtt["legal-acts"] == 0 {
		t.Fatal("no legal-acts record with an attachment")
	}
	hl := home.Local().Log
	size := hl.Size()
	if _, _, err := hl.WaitPublished(ctx, size); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for _, s := range embassies {
		for {
			if _, cp := s.tenants[guestID].Ledger().Checkpoint(); cp.Size >= size {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("embassies not caught up to %d:\n%s", size, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	want := map[uint64][]byte{}
	if err := ledger.Scan(ctx, ledger.DirFetcher(hl.Dir()), 0, size, func(i uint64, e []byte) error {
		want[i] = bytes.Clone(e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The home rebuilt from north: north's mirror, and the packs of the
	// registries north holds; none of legal-acts, which only south holds.
	d2 := t.TempDir()
	copyTree(t, dir, d2, func(rel string) bool { return rel == "sites/home/ledger" || rel == "sites/home/blobs" })
	northMirror := filepath.Join(guest.GuestDir(embassies["embassy-north"].cfg.DataDir, guestID), "ledger")
	copyTree(t, northMirror, filepath.Join(d2, "sites/home/ledger"), func(rel string) bool { return rel == "wal/lock" })
	copyTree(t, filepath.Join(dir, "sites/home/blobs"), filepath.Join(d2, "sites/home/blobs"),
		func(rel string) bool { return rel == "registries/legal-acts" })

	liar := httptest.NewServer(lyingLedger(embassies["embassy-north"].Handler()))
	defer liar.Close()
	ln2 := listenLoopback(t)
	scfg := &Config{StateDir: d2, Site: "home", Standby: true, Listen: ln2.Addr().String(), InsecureLoopback: true,
		Peers: map[string]string{"embassy-north": liar.URL, "embassy-south": urls["embassy-south"]}}
	standby, err := Open(ctx, scfg, Options{Logger: logger.With("test_site", "standby-home"),
		Local: guest.LocalOptions{Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	serveFillSite(t, standby, ln2)
	tn := standby.tenants[guestID]
	_, cp0 := tn.Ledger().Checkpoint()
	if cp0.Size != size {
		t.Fatalf("rebuilt home at size %d, want %d", cp0.Size, size)
	}
	stubs, err := tn.Ledger().Withheld(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stubs) == 0 {
		t.Fatal("the home rebuilt from north holds no stubs")
	}
	place := replica.Placement{Charter: tn.Charter(), Site: "embassy-north"}
	for _, s := range stubs {
		if reg, _, _, _ := place.Entry(want[s.Index]); reg != "legal-acts" {
			t.Fatalf("stub at %d is of registry %q", s.Index, reg)
		}
	}

	filled, err := tn.Fill(ctx)
	if err != nil {
		t.Fatalf("fill: %v\n%s", err, logs.String())
	}
	t.Logf("size %d, %d stubs, %d filled, attachments %v", size, len(stubs), filled, withAtt)
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"component":"fill"`) && !strings.Contains(line, "does not hash") {
			t.Log(line)
		}
	}
	if filled != len(stubs) {
		t.Errorf("filled %d, want %d", filled, len(stubs))
	}
	if !strings.Contains(logs.String(), "does not hash to the withheld stub") || !strings.Contains(logs.String(), `"peer":"embassy-north"`) {
		t.Error("north's forged entries were not reported as refused")
	}

	lg := tn.Ledger()
	if left, err := lg.Withheld(ctx); err != nil || len(left) != 0 {
		t.Fatalf("after fill: %d stubs, %v", len(left), err)
	}
	if _, cp := lg.Checkpoint(); cp.Root != cp0.Root || cp.Size != cp0.Size {
		t.Fatalf("the checkpoint changed: %+v, was %+v", cp, cp0)
	}
	recv := tn.Receiver()
	home0 := replica.Placement{Charter: tn.Charter(), Site: "home"}
	chunks := 0
	if err := ledger.Scan(ctx, ledger.DirFetcher(lg.Dir()), 0, size, func(i uint64, e []byte) error {
		if !bytes.Equal(e, want[i]) {
			return fmt.Errorf("entry %d is not the writer's", i)
		}
		reg, _, rec, err := home0.Entry(e)
		if err != nil || rec == nil || len(rec.Chunks) == 0 {
			return err
		}
		ids, err := replica.Chunks(rec)
		if err != nil {
			return err
		}
		chunks += len(ids)
		if _, err := recv.Locate(ctx, reg, ids); err != nil {
			return fmt.Errorf("entry %d of %s: %w", i, reg, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if chunks == 0 {
		t.Fatal("no chunk checked")
	}
	// Reopened, the mirror holds the same.
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	re, err := ledger.Open(ctx, lg.Dir(), ledger.Options{Origin: tn.Charter().Guest.Origin, Mirror: true})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	if left, err := re.Withheld(ctx); err != nil || len(left) != 0 {
		t.Fatalf("after reopen: %d stubs, %v", len(left), err)
	}
}
