package site_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/internal/demo/demogen"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/registry"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/site"
	"github.com/chancery-gov/chancery/siteapi"
)

// The recovery time objective: from a valid activation order and the
// threshold of custodians' shares at a sealed embassy to its first served
// read. What it takes is the embassy turning its mirror into the writer
// (appending the order), rebuilding the root, deriving the keyring and
// rebuilding the registries' index from the ledger; the last dominates.
//
//	go test -run '^$' -bench 'RTO/persons=100000' -benchtime 3x ./site/
//	go test -run '^$' -bench 'RTO/persons=470000' -benchtime 3x ./site/     (~1M records)
//
// The fixture (a founded state whose home imported the generated
// population, and an embassy mirror of that ledger) is built once per size
// and kept in $TMPDIR; each iteration runs on a fresh copy of the mirror.
func BenchmarkRTO(b *testing.B) {
	sizes := []int{10000, 100000, 470000}
	if v := os.Getenv("CHANCERY_RTO_PERSONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		sizes = []int{n}
	}
	for _, persons := range sizes {
		b.Run(fmt.Sprintf("persons=%d", persons), func(b *testing.B) {
			// warm: the mirror was just copied, so its files are in the
			// page cache. cold: the cache is dropped before the order
			// (needs root), as after a reboot of the embassy's host.
			b.Run("cache=warm", func(b *testing.B) { benchRTO(b, persons, false) })
			b.Run("cache=cold", func(b *testing.B) { benchRTO(b, persons, true) })
		})
	}
}

// dropCaches writes dirty pages back and drops the page cache, dentries
// and inodes, so that what follows reads from the disk.
func dropCaches(b *testing.B) {
	b.Helper()
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		b.Skipf("cannot drop the page cache (needs root): %v", err)
	}
}

func rtoFixture(b *testing.B, persons int) (dir string, records int) {
	b.Helper()
	// The cached fixture is a founded state: its formats (charter
	// signatures, custody package, record entries) change with the code,
	// so the name carries the fixture's format; raise it when they do.
	const fixtureFormat = 3 // 3: record entry format 2 (sealed refs) and anchored founding entries
	dir = filepath.Join(os.TempDir(), fmt.Sprintf("chancery-bench-rto-f%d-%d", fixtureFormat, persons))
	done := filepath.Join(dir, "done")
	if n, err := os.ReadFile(done); err == nil {
		records, _ = strconv.Atoi(string(n))
		return dir, records
	}
	os.RemoveAll(dir)
	ctx := context.Background()
	p := keyfile.Protector{Passphrase: []byte(testPass), WorkFactor: 10}
	if _, err := found.Init(ctx, found.InitOptions{Dir: dir, Protector: p}); err != nil {
		b.Fatal(err)
	}
	loc, err := guest.OpenLocal(ctx, guest.LocalOptions{StateDir: dir, Site: "home", Passphrase: []byte(testPass)})
	if err != nil {
		b.Fatal(err)
	}
	// Generated and imported through a pipe: at 10M records the JSONL
	// alone would take gigabytes of memory beside the import's index.
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(demogen.WriteJSONL(ctx, demogen.Options{Persons: persons, Seed: 1}, pw, nil))
	}()
	res, err := loc.Registries.Import(ctx, pr, registry.ImportOptions{})
	pr.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := loc.Close(); err != nil {
		b.Fatal(err)
	}
	// The embassy's mirror is the home's ledger as replication leaves it:
	// the same tiles, and the home's checkpoint recorded as received.
	l := state.Layout{Dir: dir}
	mirror := filepath.Join(dir, "sites", "embassy-north", "guests", "demo-republic", "ledger")
	if err := os.MkdirAll(filepath.Dir(mirror), 0o700); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", l.Ledger("home"), mirror).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	os.Remove(filepath.Join(mirror, "wal", "lock"))
	cp, err := os.ReadFile(filepath.Join(mirror, ledger.CheckpointPath))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirror, "wal", "received"), cp, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(done, []byte(strconv.Itoa(res.Records)), 0o600); err != nil {
		b.Fatal(err)
	}
	return dir, res.Records
}

func benchRTO(b *testing.B, persons int, cold bool) {
	fix, records := rtoFixture(b, persons)
	ctx := context.Background()
	l := state.Layout{Dir: fix}
	c, err := charter.ReadVerified(l.Charter())
	if err != nil {
		b.Fatal(err)
	}
	pass := []byte(testPass)
	passFile := filepath.Join(b.TempDir(), "pass")
	if err := os.WriteFile(passFile, pass, 0o600); err != nil {
		b.Fatal(err)
	}
	pkg, err := seal.ReadCustodyPackageFile(l.Custody())
	if err != nil {
		b.Fatal(err)
	}
	sign := func(id string) siteapi.Signer {
		k, err := keyfile.ReadEd25519(l.Key("official", id), keyfile.Protector{Passphrase: pass})
		if err != nil {
			b.Fatal(err)
		}
		return siteapi.Signer{Guest: "demo-republic", Site: "embassy-north", Official: id, Key: k}
	}
	cio, registrar := sign("cio"), sign("registrar")
	b.ReportMetric(float64(records), "records")
	var total, orderTotal, unsealTotal, readTotal time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data := filepath.Join(b.TempDir(), "north")
		if out, err := exec.Command("cp", "-a", filepath.Join(fix, "sites", "embassy-north"), data).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		// A mirror at rest: the copy's dirty pages written back before
		// the clock starts, not by the activation's first fsync.
		if out, err := exec.Command("sync").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		cfg := &site.Config{Site: "embassy-north", Listen: "127.0.0.1:0", InsecureLoopback: true, DataDir: data, PassphraseFile: passFile,
			Guests: []site.GuestConfig{{Charter: l.Charter(), CheckpointKey: l.Key("site-checkpoint", "embassy-north"), Custody: l.Custody()}}}
		s, err := site.Open(ctx, cfg, site.Options{})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		o, err := continuity.NewOrder(c, continuity.Order{Action: charter.ActionActivate, Site: "embassy-north", Access: continuity.AccessReadWrite,
			Epoch: 2, NotBefore: time.Now().Add(-time.Minute), Expires: time.Now().Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		so := &continuity.SignedOrder{Order: *o}
		for _, id := range []string{"min-interior", "cio"} {
			k, _ := keyfile.ReadEd25519(l.Key("official", id), keyfile.Protector{Passphrase: pass})
			if err := continuity.Sign(so, id, k); err != nil {
				b.Fatal(err)
			}
		}
		signed, _ := so.Marshal()
		// No other embassy runs here: the one the fence cannot reach is
		// accepted as unfenced, as officials would when it is down.
		cc := &siteapi.ContinuityClient{BaseURL: srv.URL, Guest: c.Guest.ID, Signer: &cio, AcceptUnfenced: true}
		api := &siteapi.Client{BaseURL: srv.URL + "/guests/" + c.Guest.ID, Signer: registrar}
		if cold {
			dropCaches(b)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := cc.Submit(ctx, signed); err != nil {
			b.Fatal(err)
		}
		// The order's time ends here. The session and the custodians'
		// resealing that follow are people's time, not the system's, and
		// stay off the clock (order-s once counted them).
		orderTime := time.Since(start)
		b.StopTimer()
		sess, err := cc.OpenUnseal(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var shares [][]byte
		for _, cust := range []string{"cust-parliament", "cust-court", "cust-bank"} {
			id, err := keyfile.ReadAgeIdentity(l.Key("custodian", cust), keyfile.Protector{Passphrase: pass})
			if err != nil {
				b.Fatal(err)
			}
			sh, err := pkg.OpenShare(cust, id)
			if err != nil {
				b.Fatal(err)
			}
			rcpt, err := age.ParseHybridRecipient(sess.Recipient)
			if err != nil {
				b.Fatal(err)
			}
			sealed, err := sh.SealTo(rcpt)
			sh.Wipe()
			if err != nil {
				b.Fatal(err)
			}
			shares = append(shares, sealed)
		}
		b.StartTimer()
		start = time.Now()
		for _, sh := range shares {
			if _, err := cc.SubmitShare(ctx, sess.Session, sh); err != nil {
				b.Fatal(err)
			}
		}
		unsealed := time.Now()
		if _, err := api.Get(ctx, "population", demogen.NationalID(1, 0), registry.AsOf{}); err != nil {
			b.Fatal(err)
		}
		read := time.Since(unsealed)
		total += orderTime + read + unsealed.Sub(start)
		orderTotal += orderTime
		unsealTotal += unsealed.Sub(start)
		readTotal += read
		b.StopTimer()
		srv.Close()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "rto-s")
	// The stages: the order (fencing, the mirror reopened as the writer,
	// the order appended), the shares (the last one rebuilds the root,
	// derives the keyring and opens the registries), the first read.
	b.ReportMetric(orderTotal.Seconds()/float64(b.N), "order-s")
	b.ReportMetric(unsealTotal.Seconds()/float64(b.N), "unseal-s")
	b.ReportMetric(readTotal.Seconds()/float64(b.N), "read-s")
}
