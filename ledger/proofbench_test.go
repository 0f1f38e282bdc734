package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Benchmarks over large ledgers. The fixtures take a while to build, so
// they are cached under os.TempDir(), keyed by a version string: change the
// version when the layout or the fixture changes.
//
//	go test -run '^$' -bench 'BenchmarkInclusionProof10M|BenchmarkVerify1M' -benchtime 3s ./ledger/

const (
	benchFixtureVersion = "v1"
	benchOrigin         = "bench.test.example/log"
)

// benchKey is a fixed test key, so that a cached fixture verifies in a later run.
func benchKey(tb testing.TB) (note.Signer, note.Verifiers) {
	seed := sha256.Sum256([]byte("chancery ledger benchmark key " + benchFixtureVersion))
	s, vkey, err := NewLogSigner(benchOrigin, ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, note.VerifierList(v)
}

// dirSink writes what a tree produces straight into a ledger directory.
type dirSink struct {
	dir  string
	made map[string]bool
}

func (d *dirSink) tile(path string, data []byte, full bool) error {
	p := filepath.Join(d.dir, filepath.FromSlash(path))
	if dir := filepath.Dir(p); !d.made[dir] {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		d.made[dir] = true
	}
	return os.WriteFile(p, data, 0o644)
}

// benchFixture returns a cached ledger directory, building it with build
// into a scratch directory that is renamed into place only when complete.
func benchFixture(b *testing.B, name string, build func(dir string) error) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), name, benchFixtureVersion)
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return dir
	}
	scratch := dir + fmt.Sprintf(".building-%d", os.Getpid())
	os.RemoveAll(scratch)
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := build(scratch); err != nil {
		os.RemoveAll(scratch)
		b.Fatalf("build fixture %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "complete"), []byte(time.Since(start).String()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(scratch, dir); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s in %v", dir, time.Since(start).Round(time.Millisecond))
	return dir
}

// benchFixture10M is a 10,000,000-entry ledger of 22-byte entries, built
// with the internal tree (no write-ahead log, no fsync): only its tiles,
// bundles and signed checkpoint.
func benchFixture10M(b *testing.B) (string, Checkpoint) {
	const n = 10_000_000
	s, vs := benchKey(b)
	dir := benchFixture(b, "chancery-bench-10M", func(dir string) error {
		t := newTree(&dirSink{dir: dir, made: map[string]bool{}})
		e := Entry{Type: TypeRecord, Epoch: 1, Time: time.UnixMilli(1_700_000_000_000), Payload: make([]byte, 4)}
		buf := make([]byte, 0, 64)
		for i := uint32(0); i < n; i++ {
			binary.BigEndian.PutUint32(e.Payload, i)
			enc, err := e.AppendBinary(buf[:0])
			if err != nil {
				return err
			}
			if err := t.append(enc); err != nil {
				return err
			}
		}
		if err := t.flushPartial(); err != nil {
			return err
		}
		root, err := t.root()
		if err != nil {
			return err
		}
		signed, err := SignCheckpoint(Checkpoint{Origin: benchOrigin, Size: t.size(), Root: root, Epoch: t.epoch}, s)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, CheckpointPath), signed, 0o644)
	})
	signed, err := os.ReadFile(filepath.Join(dir, CheckpointPath))
	if err != nil {
		b.Fatal(err)
	}
	cp, _, err := OpenCheckpoint(signed, benchOrigin, vs)
	if err != nil {
		b.Fatal(err)
	}
	if cp.Size != n {
		b.Fatalf("fixture %s holds %d entries", dir, cp.Size)
	}
	return dir, cp
}

// BenchmarkInclusionProof10M measures inclusion proofs for random leaves of
// a 10M-entry ledger against its full size (target: 50,000 proofs/s). The
// prover keeps the upper nodes of every tile it has seen (2 KiB a tile,
// about 80 MiB here) and the most recent tiles. "tiles=sized" keeps every
// tile (320 MB here), as a site serving proofs for a register this size
// would; "default/warm" keeps 4,096 tiles and has seen every tile once, so
// most proofs read one level-0 tile file; "default/cold" starts empty, so
// its first touch of each tile also hashes the whole tile.
func BenchmarkInclusionProof10M(b *testing.B) {
	dir, cp := benchFixture10M(b)
	ctx := context.Background()
	size := cp.Size
	// The proofs are right: a sample verifies against the signed root with
	// leaf hashes read from the entry bundles, and a proof checked against
	// the wrong leaf does not. Setup runs once, not per b.N.
	verifySample := func(p *Prover) {
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 200; i++ {
			idx := r.Uint64N(size)
			if i == 0 {
				idx = size - 1
			}
			bundle, _, _, err := fetchTile(ctx, DirFetcher(dir), -1, idx/TileWidth, size)
			if err != nil {
				b.Fatal(err)
			}
			es, err := splitBundle(bundle)
			if err != nil {
				b.Fatal(err)
			}
			entry := es[idx%TileWidth]
			if benchEntryIndex(entry) != idx {
				b.Fatalf("entry %d holds index %d", idx, benchEntryIndex(entry))
			}
			prf, err := p.Inclusion(ctx, idx, size)
			if err != nil {
				b.Fatal(err)
			}
			if err := VerifyInclusion(idx, size, leafHash(entry), prf, cp.Root); err != nil {
				b.Fatalf("proof for %d: %v", idx, err)
			}
			if err := libVerifyInclusion(idx, size, leafHash(entry), prf, cp.Root); err != nil {
				b.Fatalf("proof for %d (transparency-dev/merkle): %v", idx, err)
			}
			if VerifyInclusion(idx, size, leafHash(append(bytes.Clone(entry), 0)), prf, cp.Root) == nil {
				b.Fatalf("proof for %d verifies another leaf", idx)
			}
		}
	}
	cold := NewProver(DirFetcher(dir), 0)
	warm := NewProver(DirFetcher(dir), 0)
	// A site that serves proofs for a register this size can hold its
	// tiles: 39,063 level-0 tiles are 320 MB.
	sized := NewProver(DirFetcher(dir), int(size/TileWidth)+512)
	verifySample(warm)
	for t := uint64(0); t*TileWidth < size; t++ { // touch every level-0 tile
		for _, p := range []*Prover{warm, sized} {
			if _, err := p.Inclusion(ctx, t*TileWidth, size); err != nil {
				b.Fatal(err)
			}
		}
	}
	verifySample(warm)
	verifySample(sized)
	for _, bc := range []struct {
		name string
		p    *Prover
	}{{"tiles=sized", sized}, {"tiles=default/warm", warm}, {"tiles=default/cold", cold}} {
		b.Run(bc.name, func(b *testing.B) {
			p := bc.p
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
				for pb.Next() {
					if _, err := p.Inclusion(ctx, r.Uint64N(size), size); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "proofs/s")
		})
	}
}

// benchEntryIndex reads the index a 10M-fixture entry carries in its payload.
func benchEntryIndex(entry []byte) uint64 {
	return uint64(binary.BigEndian.Uint32(entry[EntryHeaderSize:]))
}

// benchFixture1M is a 1,000,000-entry ledger of 256-byte entries written by
// the real write path (Open, AppendBatch, Close).
func benchFixture1M(b *testing.B) string {
	const n = 1_000_000
	s, _ := benchKey(b)
	return benchFixture(b, "chancery-bench-1M", func(dir string) error {
		l, err := Open(context.Background(), dir, Options{Origin: benchOrigin, Signer: s})
		if err != nil {
			return err
		}
		r := rand.New(rand.NewPCG(5, 6))
		const batch = 10_000
		for i := 0; i < n; i += batch {
			es := make([]Entry, batch)
			for j := range es {
				p := make([]byte, 256-EntryHeaderSize+8)
				for k := 0; k+8 <= len(p); k += 8 {
					binary.LittleEndian.PutUint64(p[k:], r.Uint64())
				}
				p = p[:256-EntryHeaderSize]
				binary.BigEndian.PutUint32(p, uint32(i+j))
				es[j] = Entry{Type: Type(1 + (i+j)%7), Epoch: uint64(1 + (i+j)/250_000), Time: time.UnixMilli(1_700_000_000_000 + int64(i+j)), Payload: p}
			}
			if _, err := l.AppendBatch(context.Background(), es); err != nil {
				l.Close()
				return err
			}
		}
		return l.Close()
	})
}

// BenchmarkVerify1M is a whole-ledger check of 1M 256-byte entries from a
// directory, signature included (target: at most 5 s per verify).
func BenchmarkVerify1M(b *testing.B) {
	dir := benchFixture1M(b)
	_, vs := benchKey(b)
	b.SetBytes(1_000_000 * 256)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rep, err := Verify(context.Background(), DirFetcher(dir), VerifyOptions{Origin: benchOrigin, Verifiers: vs})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Entries != 1_000_000 || !rep.SignatureChecked || len(rep.Epochs) != 4 {
			b.Fatalf("report: %d entries, signature checked %v, epochs %v", rep.Entries, rep.SignatureChecked, rep.Epochs)
		}
	}
	b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/verify")
}
