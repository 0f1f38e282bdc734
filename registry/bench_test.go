package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/demo/demogen"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	"golang.org/x/mod/sumdb/note"
)

// BenchmarkImport is the bulk load: population records of about 500 bytes,
// validated, sealed and ledgered durably. The target is 50,000
// records/s on this 2-core machine.
func BenchmarkImport(b *testing.B) {
	fx := newFixture(b)
	var in bytes.Buffer
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(&in, `{"registry":"population","id":"DR-%010d","record":{"national_id":"DR-%010d","first_name":"Aleksandra","last_name":"Kowalska-%d","birth_date":"1984-03-17","sex":"F","address":{"street":"Boulevard of the Republic","number":"%d","city":"Capital City","postcode":"10%03d"},"eid_public_key":"r8T6qZ3vJm2XkQ9pW1sN4bH7yC0dF5gA6eL2uV8iO3M=","phone":"+999 555 %07d","email":"a.kowalska%d@mail.demo-republic.example"}}`+"\n", i, i, i, i%300, i%1000, i, i)
	}
	b.SetBytes(int64(in.Len() / max(b.N, 1)))
	b.ResetTimer()
	res, err := fx.reg.Import(context.Background(), &in, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Records != b.N {
		b.Fatalf("imported %d of %d", res.Records, b.N)
	}
	b.ReportMetric(float64(b.N)/res.Elapsed.Seconds(), "records/s")
}

// importPopulation imports n population records DR-0 … DR-(n-1) and
// waits until a checkpoint covers them.
func importPopulation(b *testing.B, fx *fixture, n int) {
	b.Helper()
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, `{"registry":"population","id":"DR-%d","record":{"national_id":"DR-%d","last_name":"L%d"}}`+"\n", i, i, i)
	}
	ctx := context.Background()
	if _, err := fx.reg.Import(ctx, &in, ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, _, err := fx.log.WaitPublished(ctx, uint64(n)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGet is a read of a random record: index lookup, entry read,
// inclusion proof against the signed tree, unseal.
func BenchmarkGet(b *testing.B) {
	fx := newFixture(b)
	const n = 20000
	ctx := context.Background()
	importPopulation(b, fx, n)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i*7919 + 13) % n
			if _, err := fx.reg.Get(ctx, "population", fmt.Sprintf("DR-%d", i), AsOf{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// Benchmarks of the index rebuild (Open) over a Demo Republic ledger. The
// ledgers take a while to build (the 1M one about a minute: the generator
// derives an Ed25519 key per citizen, the import seals every record), so
// they are cached under os.TempDir(), keyed by openFixtureVersion: change it
// when the fixture or the ledger layout changes.
//
//	go test -run '^$' -bench 'BenchmarkOpen' -benchtime 3x ./registry/

const openFixtureVersion = "v1"

// openFixture is a cached Demo Republic ledger and what reopens it.
type openFixture struct {
	ledgerDir string
	c         *charter.Charter
	root      *seal.RootKey
	signer    note.Signer
	records   uint64
}

// benchSigner is a fixed checkpoint key, so that a cached ledger reopens.
func benchSigner(tb testing.TB, origin string) note.Signer {
	seed := sha256.Sum256([]byte("chancery registry open benchmark " + openFixtureVersion))
	s, _, err := ledger.NewLogSigner(origin, ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// demoLedger returns a ledger holding the Demo Republic of the given
// population, imported through Import (so every record is validated,
// blinded, sealed and durably appended as at a real home site), building it
// into a scratch directory that is renamed into place only when complete.
func demoLedger(b *testing.B, persons int) *openFixture {
	b.Helper()
	fx := &openFixture{c: testCharter()}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("chancery-bench-registry-open-%d", persons), openFixtureVersion)
	fx.ledgerDir = filepath.Join(dir, "ledger")
	fx.signer = benchSigner(b, fx.c.Guest.Origin)
	const pass = "registry bench passphrase"
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		scratch := dir + fmt.Sprintf(".building-%d", os.Getpid())
		os.RemoveAll(scratch)
		start := time.Now()
		if err := buildDemoLedger(scratch, fx, persons, pass); err != nil {
			os.RemoveAll(scratch)
			b.Fatalf("build fixture %s: %v", dir, err)
		}
		if err := os.WriteFile(filepath.Join(scratch, "complete"), []byte(time.Since(start).String()+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(dir)
		if err := os.Rename(scratch, dir); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s in %v", dir, time.Since(start).Round(time.Millisecond))
	}
	var err error
	if fx.root, err = seal.ReadRootKeyFile(filepath.Join(dir, "root.key"), []byte(pass)); err != nil {
		b.Fatal(err)
	}
	return fx
}

func buildDemoLedger(dir string, fx *openFixture, persons int, pass string) error {
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := seal.NewRootKey()
	if err != nil {
		return err
	}
	if err := seal.WriteRootKeyFile(filepath.Join(dir, "root.key"), root, []byte(pass), 10); err != nil {
		return err
	}
	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger"), ledger.Options{Origin: fx.c.Guest.Origin, Signer: fx.signer})
	if err != nil {
		return err
	}
	defer l.Close()
	r, err := Open(ctx, Options{Charter: fx.c, Site: "home", Log: l, Keys: seal.NewKeyring(fx.c.Guest.ID, root)})
	if err != nil {
		return err
	}
	defer r.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(demogen.WriteJSONL(ctx, demogen.Options{Persons: persons, Seed: 1}, pw, nil))
	}()
	res, err := r.Import(ctx, pr, ImportOptions{Batch: 4096})
	pr.CloseWithError(err)
	if err != nil {
		return err
	}
	if _, _, err := l.WaitPublished(ctx, res.Last+1); err != nil {
		return err
	}
	if err := r.Close(); err != nil {
		return err
	}
	return l.Close()
}

// benchOpen times Open, the index rebuild a site does before its first
// read after activation, over a cached Demo Republic ledger.
func benchOpen(b *testing.B, persons int) {
	fx := demoLedger(b, persons)
	ctx := context.Background()
	l, err := ledger.Open(ctx, fx.ledgerDir, ledger.Options{Origin: fx.c.Guest.Origin, Signer: fx.signer})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	_, cp := l.Checkpoint()
	// The machine is shared: CPU time (every thread of the process, the
	// garbage collector's included) moves less with the neighbours' load
	// than wall time does.
	var elapsed, cpu time.Duration
	var heap uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		keys := seal.NewKeyring(fx.c.Guest.ID, fx.root)
		// An activated site rebuilds in a fresh process: give the heap
		// back to the kernel, so that this Open, like that one, pays for
		// every page it touches.
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		r, err := Open(ctx, Options{Charter: fx.c, Site: "home", Log: l, Keys: keys})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = ms.HeapAlloc - base
		n := 0
		for _, name := range r.Names() {
			c, _ := r.Count(name)
			n += c
		}
		if uint64(n) != cp.Size {
			b.Fatalf("indexed %d records, the ledger holds %d entries", n, cp.Size)
		}
		r.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(cp.Size)*float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(heap)/float64(cp.Size), "index-B/record")
	b.ReportMetric(float64(cp.Size), "records")
}

// BenchmarkOpen rebuilds the index of a Demo Republic of 10,000 persons
// (about 21,000 records): quick enough for -benchtime 1x.
func BenchmarkOpen(b *testing.B) { benchOpen(b, 10_000) }

// BenchmarkOpen1M rebuilds the index of a Demo Republic of 470,000 persons,
// about 1,010,000 records: the population register ~47%, identity
// documents ~38%, land ~14%, businesses and legal acts. The RTO target is
// 5 s from order to first read for this size.
func BenchmarkOpen1M(b *testing.B) { benchOpen(b, 470_000) }

// cpuTime is the user and system time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIndex applies record versions to a registry's index on one
// core, without the ledger: it shows what the index costs per record as it
// grows, which is what a rebuild of ten million records adds to ten times
// a million, and why the rebuild applies versions shard after shard
// (order=shard, as Open does, in rounds) rather than in
// ledger order (order=ledger). The records are shaped like the population
// register's: two index values each, one unique (a national id) and one
// shared with about 1 in 5,000 (a last name); one version in ten updates
// an earlier record.
//
//	go test -run '^$' -bench 'BenchmarkIndex' -benchtime 1x ./registry/
func BenchmarkIndex(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		for _, order := range []string{"shard", "ledger"} {
			b.Run(fmt.Sprintf("records=%dM/order=%s", n/1_000_000, order), func(b *testing.B) {
				if n > 1_000_000 && testing.Short() {
					b.Skip("needs about 4 GB")
				}
				benchIndex(b, n, order == "ledger")
			})
		}
	}
}

func benchIndex(b *testing.B, n int, ledgerOrder bool) {
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g := &reg{def: charter.Registry{Name: "population", Index: []string{"national_id", "last_name"}}}
		for s := range g.shards {
			g.shards[s] = newShard()
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var names [5000][32]byte
		for k := range names {
			fillRandom(rng, names[k][:])
		}
		// The versions are made before the clock runs: a round's worth
		// at a time, as the scanner files them.
		var rd round
		var seq []indexOp
		var seqVals []key
		var view recordView
		var vals [64]byte
		regs := []*reg{g}
		apply := func() {
			runtime.GC()
			start := time.Now()
			if ledgerOrder {
				for i := range seq {
					op := &seq[i]
					g.shards[shardOf(&op.blind)].index(&op.blind, op.v, seqVals[op.vals:op.vals+2])
				}
				seq, seqVals = seq[:0], seqVals[:0]
			} else {
				rd.apply(regs, 0, 1)
				rd.reset()
			}
			elapsed += time.Since(start)
		}
		for k := 0; k < n; k++ {
			num, rec := uint64(1), k
			if k%10 == 9 {
				rec, num = rng.IntN(k), 2
			}
			// A record's blind id and unique value follow from its number.
			binary.LittleEndian.PutUint64(view.blindID[:], uint64(rec)*0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(view.blindID[8:], uint64(rec))
			binary.LittleEndian.PutUint64(vals[:], uint64(rec)*0xc2b2ae3d27d4eb4f)
			binary.LittleEndian.PutUint64(vals[8:], uint64(rec)|1<<63)
			copy(vals[32:], names[rng.IntN(len(names))][:])
			view.index = vals[:]
			v := version{num: num, index: uint64(k), epoch: 1, ms: 1_700_000_000_000, prev: none}
			if ledgerOrder {
				seq = append(seq, indexOp{blind: keyOf(&view.blindID), v: v, vals: uint32(len(seqVals)), nvals: 2})
				seqVals = append(seqVals, key(vals[:32]), key(vals[32:]))
				if len(seq) == roundSize(uint64(n)) {
					apply()
				}
			} else if rd.add(g, &view, v); rd.n == roundSize(uint64(n)) {
				apply()
			}
		}
		apply()
		if c, _ := (&Registries{regs: map[string]*reg{"population": g}}).Count("population"); c < n*8/10 {
			b.Fatalf("%d records indexed", c)
		}
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(0, "ns/op")
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
}

// BenchmarkFind is a look-up by an index field: every shard's map of
// values, then, for a hit, the read of its entry (inclusion proof, unseal)
// as in BenchmarkGet; for a miss only the shards.
func BenchmarkFind(b *testing.B) {
	fx := newFixture(b)
	const n = 20000
	ctx := context.Background()
	importPopulation(b, fx, n)
	for _, hit := range []bool{true, false} {
		b.Run(fmt.Sprintf("hit=%v", hit), func(b *testing.B) {
			want := 0
			if hit {
				want = 1
			}
			for i := 0; b.Loop(); i++ {
				v := fmt.Sprintf("L%d", i%n)
				if !hit {
					v = "absent"
				}
				recs, err := fx.reg.Find(ctx, "population", "last_name", v)
				if err != nil || len(recs) != want {
					b.Fatalf("find %s: %v, %d records", v, err, len(recs))
				}
			}
		})
	}
}
