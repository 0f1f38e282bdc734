package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/store"
)

// The corpus stands in for a land registry's attachments: scanned deeds
// and PDFs of 100 KB to 5 MB. A scan is mostly image data that is already
// compressed (JPEG, JBIG2: incompressible) interleaved with text layers
// and PDF structure (compressible): here 75% and 25% of the bytes, in
// segments of 4–64 KiB. Real scans are nearer 95/5; 25% keeps the
// compressor honestly busy. Some files recur exactly (the same
// deed attached to several procedures) and some are re-scans that share
// most of their bytes with an earlier file.

var deedWords = strings.Fields(`deed of transfer parcel cadastral number
registrar notary witness seller buyer hereby conveys the land situated in
district municipality village boundary north south east west hectares
mortgage encumbrance servitude stamp duty paid signed sealed delivered
before me this day of the year certified true copy of the original entry`)

type corpusFile struct {
	name string
	size int
	seed uint64
	// base >= 0: derived from an earlier file; exact or a re-scan.
	base  int
	exact bool
}

// corpusPlan lays out files until total bytes are reached. Deterministic
// in seed, so the restic comparison and the benchmark see the same bytes.
func corpusPlan(total int64, seed uint64) []corpusFile {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var files []corpusFile
	var sum int64
	for i := 0; sum < total; i++ {
		f := corpusFile{name: fmt.Sprintf("deed-%06d.pdf", i), seed: r.Uint64(), base: -1}
		// Log-uniform sizes between 100 KB and 5 MB.
		f.size = int(100e3 * math.Pow(50, r.Float64()))
		if len(files) > 10 {
			switch p := r.Float64(); {
			case p < 0.10:
				f.base, f.exact = r.IntN(len(files)), true
				f.size = files[f.base].size
			case p < 0.20:
				f.base = r.IntN(len(files))
				f.size = files[f.base].size
			}
		}
		files = append(files, f)
		sum += int64(f.size)
	}
	return files
}

// fileContent generates one file into buf.
func fileContent(plan []corpusFile, i int, buf []byte) []byte {
	f := plan[i]
	if f.base >= 0 {
		buf = fileContent(plan, f.base, buf)
		if f.exact {
			return buf
		}
		// A re-scan: one region in the middle differs.
		cc := rand.NewChaCha8(seed32(f.seed))
		r := rand.New(cc)
		if len(buf) > 64<<10 {
			at := r.IntN(len(buf) - 32<<10)
			cc.Read(buf[at : at+32<<10])
		}
		return buf
	}
	buf = buf[:0]
	cc := rand.NewChaCha8(seed32(f.seed))
	r := rand.New(cc)
	for len(buf) < f.size {
		n := min(4<<10+r.IntN(60<<10), f.size-len(buf))
		if r.IntN(100) < 75 {
			start := len(buf)
			buf = append(buf, make([]byte, n)...)
			cc.Read(buf[start:])
			continue
		}
		start := len(buf)
		for len(buf)-start < n {
			buf = append(buf, deedWords[r.IntN(len(deedWords))]...)
			buf = append(buf, ' ')
			if r.IntN(12) == 0 {
				buf = strconv.AppendInt(buf, int64(r.IntN(1e6)), 10)
				buf = append(buf, '\n')
			}
		}
		buf = buf[:start+n]
	}
	return buf
}

func seed32(s uint64) (out [32]byte) {
	for i := range 4 {
		for j := range 8 {
			out[i*8+j] = byte(s >> (8 * j))
		}
		s = s*6364136223846793005 + 1442695040888963407
	}
	return out
}

// writeCorpus writes the corpus to dir and returns the file paths and the
// total byte count.
func writeCorpus(t testing.TB, dir string, total int64) ([]string, int64) {
	t.Helper()
	plan := corpusPlan(total, 1)
	var paths []string
	var sum int64
	buf := make([]byte, 0, 6<<20)
	for i := range plan {
		buf = fileContent(plan, i, buf)
		p := filepath.Join(dir, plan[i].name)
		if err := os.WriteFile(p, buf, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		sum += int64(len(buf))
	}
	return paths, sum
}

// ingest puts every file with `parallel` concurrent Puts (small files are
// one chunk each, so one Put alone cannot keep two cores busy) and
// flushes.
func ingest(ctx context.Context, s *store.Store, sl store.Sealer, paths []string, parallel int) ([]store.Ref, error) {
	refs := make([]store.Ref, len(paths))
	next := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f, err := os.Open(paths[i])
				if err != nil {
					errs <- err
					return
				}
				// No bufio: the chunker buffers its reads itself, and
				// another layer would copy every byte once more.
				refs[i], err = s.Put(ctx, sl, f)
				f.Close()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", paths[i], err)
					return
				}
			}
		}()
	}
	var err error
loop:
	for i := range paths {
		select {
		case next <- i:
		case err = <-errs:
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return refs, s.Flush(ctx)
}

// vmHWM is the process's peak resident set, from /proc/self/status.
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

func envBytes(name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def
	}
	return n * mult
}

// TestWriteCorpus writes the benchmark corpus to $CHANCERY_CORPUS_OUT
// ($CHANCERY_CORPUS_BYTES, default 2G) for bench/restic/run.sh. Skipped
// unless asked for.
func TestWriteCorpus(t *testing.T) {
	dir := os.Getenv("CHANCERY_CORPUS_OUT")
	if dir == "" {
		t.Skip("set CHANCERY_CORPUS_OUT to write the corpus")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	paths, n := writeCorpus(t, dir, envBytes("CHANCERY_CORPUS_BYTES", 2<<30))
	fmt.Printf("corpus: %d files, %d bytes in %s\n", len(paths), n, dir)
}

// TestIngestDir ingests every file in $CHANCERY_INGEST_DIR into an fs
// store at $CHANCERY_INGEST_REPO and prints throughput and peak memory,
// for bench/restic/run.sh. Skipped unless asked for.
func TestIngestDir(t *testing.T) {
	dir, repo := os.Getenv("CHANCERY_INGEST_DIR"), os.Getenv("CHANCERY_INGEST_REPO")
	if dir == "" || repo == "" {
		t.Skip("set CHANCERY_INGEST_DIR and CHANCERY_INGEST_REPO")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var total int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			paths = append(paths, filepath.Join(dir, e.Name()))
			total += fi.Size()
		}
	}
	ctx := context.Background()
	start := time.Now()
	s, sl := openFS(t, repo, store.Options{})
	if _, err := ingest(ctx, s, sl, paths, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("chancery: %d files, %d bytes in %.2fs = %.1f MB/s, peak RSS %d MiB\n",
		len(paths), total, el.Seconds(), float64(total)/1e6/el.Seconds(), vmHWM()>>20)
}
