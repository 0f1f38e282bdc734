package ledger

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// The crash test runs the ledger in a child process (this test binary,
// re-executed), kills it with SIGKILL at a random moment while 32 goroutines
// append, and checks in the parent that every append the child saw
// acknowledged survived, at its index, byte for byte. The same directory is
// used round after round, so later rounds recover from the debris of
// earlier ones (sometimes the child itself recovers, and may be killed
// while doing so).

const (
	crashEnvDir     = "LEDGER_CRASH_CHILD"
	crashEnvKey     = "LEDGER_CRASH_KEY"
	crashEnvRound   = "LEDGER_CRASH_ROUND"
	crashEnvSegment = "LEDGER_CRASH_SEGMENT"
	crashEnvSync    = "LEDGER_CRASH_SYNC"
	crashEnvRounds  = "LEDGER_CRASH_ROUNDS"
	// crashEnvPublish overrides the child's checkpoint interval: a long
	// one leaves the published checkpoint far behind the write-ahead log.
	crashEnvPublish = "LEDGER_CRASH_PUBLISH"
	crashOrigin     = "crash.test.example/log"
)

func crashSigner(t testing.TB, seedHex string) (note.Signer, note.Verifier) {
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("bad %s", crashEnvKey)
	}
	s, vkey, err := NewLogSigner(crashOrigin, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func crashOptions(t testing.TB, s note.Signer, segment, sync string) Options {
	o := Options{Origin: crashOrigin, Signer: s, CheckpointInterval: 2 * time.Millisecond}
	if segment != "" {
		n, err := strconv.ParseInt(segment, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		o.SegmentSize = n
	}
	if sync != "" {
		d, err := time.ParseDuration(sync)
		if err != nil {
			t.Fatal(err)
		}
		o.SyncInterval = d
	}
	return o
}

// TestCrashChild is the child side; it does nothing unless re-executed by
// TestCrashRecovery. It prints "ack <index> <sha256 of the encoded entry>"
// for each entry only after Append or AppendBatch returned it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("child of TestCrashRecovery only")
	}
	// Never outlive a parent that died.
	time.AfterFunc(20*time.Second, func() { os.Exit(3) })
	s, _ := crashSigner(t, os.Getenv(crashEnvKey))
	round, _ := strconv.Atoi(os.Getenv(crashEnvRound))
	o := crashOptions(t, s, os.Getenv(crashEnvSegment), os.Getenv(crashEnvSync))
	if p := os.Getenv(crashEnvPublish); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil {
			t.Fatal(err)
		}
		o.CheckpointInterval = d
	}
	l, err := Open(context.Background(), dir, o)
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("open %d\n", l.Size())
	var out sync.Mutex
	ack := func(idx uint64, b []byte) {
		sum := sha256.Sum256(b)
		line := fmt.Sprintf("ack %d %x\n", idx, sum)
		out.Lock()
		os.Stdout.WriteString(line) // one write per line: the parent never sees half an ack
		out.Unlock()
	}
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(round), uint64(g)))
			for seq := 0; ; seq++ {
				n := 1
				if g%4 == 0 {
					n = 1 + r.IntN(5)
				}
				es := make([]Entry, n)
				for i := range es {
					p := make([]byte, r.IntN(300))
					for j := range p {
						p[j] = byte(r.Uint32())
					}
					p = append(p, fmt.Sprintf("round %d goroutine %d seq %d.%d", round, g, seq, i)...)
					es[i] = Entry{Type: Type(1 + r.IntN(7)), Epoch: uint64(round + 1), Time: time.Now(), Payload: p}
				}
				var first uint64
				var err error
				if n == 1 && r.IntN(2) == 0 {
					first, err = l.Append(context.Background(), es[0])
				} else {
					first, err = l.AppendBatch(context.Background(), es)
				}
				if err != nil {
					fmt.Printf("error append: %v\n", err)
					os.Exit(2)
				}
				for i, e := range es {
					b, _ := e.MarshalBinary()
					ack(first+uint64(i), b)
				}
			}
		}(g)
	}
	wg.Wait()
}

// startCrashChild starts TestCrashChild in a child process with env
// added to its environment, and returns it with its standard output.
func startCrashChild(t *testing.T, env ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout
}

type crashAck struct {
	sum   [32]byte
	round int
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	if os.Getenv(crashEnvDir) != "" {
		t.Skip("in the child")
	}
	rounds := 20
	if s := os.Getenv(crashEnvRounds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q", crashEnvRounds, s)
		}
		rounds = n
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	seedHex := hex.EncodeToString(seed)
	signer, verifier := crashSigner(t, seedHex)
	vs := note.VerifierList(verifier)

	dir := t.TempDir()
	// The seed picks segment sizes, sync intervals and kill delays; it is
	// logged so that a failing schedule replays (the kill still lands
	// wherever the child is at that moment).
	schedSeed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHANCERY_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHANCERY_CRASH_SEED=%q", s)
		}
		schedSeed = n
	}
	t.Logf("crash schedule seed %d (replay with CHANCERY_CRASH_SEED=%d)", schedSeed, schedSeed)
	r := mrand.New(mrand.NewPCG(schedSeed, 1))
	acked := map[uint64]crashAck{}
	var prevCheckpoint []byte
	var prevSize uint64
	var totalAcks, tornSeen, crashedInOpen, childRecovered int
	start := time.Now()
	for round := 0; round < rounds; round++ {
		var segment, syncIv string
		switch round % 4 {
		case 1:
			segment = strconv.Itoa(8<<10 + r.IntN(32<<10)) // roll and trim segments
		case 2:
			syncIv = (time.Duration(1+r.IntN(10)) * time.Millisecond).String() // frequent sync points
		case 3:
			segment, syncIv = strconv.Itoa(16<<10), "3ms"
		}
		killAfter := time.Duration(10+r.IntN(291)) * time.Millisecond
		cmd, stdout := startCrashChild(t,
			crashEnvDir+"="+dir, crashEnvKey+"="+seedHex, crashEnvRound+"="+strconv.Itoa(round),
			crashEnvSegment+"="+segment, crashEnvSync+"="+syncIv)
		// Most rounds kill the child while it appends, counting from when it
		// has opened the ledger; every fifth counts from its start, so that
		// recovery itself (which reads whole preallocated segments) is
		// interrupted too.
		kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
		duringOpen := round%5 == 4
		var timer *time.Timer
		if duringOpen {
			timer = time.AfterFunc(killAfter, kill)
		} else {
			timer = time.AfterFunc(20*time.Second, kill) // a child that never opens
		}
		roundAcks := map[uint64][32]byte{}
		opened := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "ack":
				idx, err := strconv.ParseUint(f[1], 10, 64)
				sum, err2 := hex.DecodeString(f[2])
				if err != nil || err2 != nil || len(sum) != 32 {
					t.Fatalf("round %d: child printed %q", round, sc.Text())
				}
				if _, dup := roundAcks[idx]; dup {
					t.Fatalf("round %d: index %d acknowledged twice", round, idx)
				}
				if prev, dup := acked[idx]; dup {
					t.Fatalf("round %d: index %d acknowledged again (first in round %d)", round, idx, prev.round)
				}
				if idx < prevSize {
					t.Fatalf("round %d: index %d acknowledged below the recovered size %d", round, idx, prevSize)
				}
				roundAcks[idx] = [32]byte(sum)
			case len(f) == 2 && f[0] == "open":
				opened = true
				if !duringOpen {
					timer.Stop()
					timer = time.AfterFunc(killAfter, kill)
				}
				if n, _ := strconv.ParseUint(f[1], 10, 64); n != prevSize {
					t.Fatalf("round %d: child opened at size %d, the parent saw %d", round, n, prevSize)
				}
			case len(f) > 0 && f[0] == "error":
				t.Fatalf("round %d: child: %s", round, sc.Text())
			}
		}
		werr := cmd.Wait()
		timer.Stop()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended by itself: %v", round, werr)
		}
		if !opened {
			crashedInOpen++
		}
		for idx, s := range roundAcks {
			acked[idx] = crashAck{s, round}
		}
		totalAcks += len(roundAcks)

		// Odd rounds recover a copy and leave the crash debris for the next
		// child to recover; even rounds recover in place.
		check := dir
		if round%2 == 1 && round != rounds-1 {
			check = t.TempDir()
			if err := os.CopyFS(check, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			childRecovered++
		}
		l, err := Open(context.Background(), check, crashOptions(t, signer, segment, syncIv))
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		rec := l.Recovery()
		maxAck := prevSize
		for idx := range roundAcks {
			maxAck = max(maxAck, idx+1)
		}
		switch {
		case rec.Size < maxAck:
			t.Fatalf("round %d: recovered %d entries, but index %d was acknowledged", round, rec.Size, maxAck-1)
		case rec.Size < prevSize:
			t.Fatalf("round %d: recovered %d entries, fewer than the %d of the previous round", round, rec.Size, prevSize)
		case rec.SyncedSize > rec.Size || rec.Replayed != rec.Size-rec.SyncedSize:
			t.Fatalf("round %d: recovery report %+v", round, rec)
		case l.Size() != rec.Size:
			t.Fatalf("round %d: size %d, recovery says %d", round, l.Size(), rec.Size)
		}
		if _, cp := l.Checkpoint(); cp.Size != rec.Size {
			t.Fatalf("round %d: checkpoint at %d after recovering %d", round, cp.Size, rec.Size)
		}
		if rec.Torn != nil {
			tornSeen++
			saved, err := os.ReadFile(rec.Torn.SavedAs)
			if err != nil || int64(len(saved)) != rec.Torn.Bytes || rec.Torn.Bytes == 0 || rec.Torn.Offset < 0 {
				t.Fatalf("round %d: torn tail %+v not kept aside: %v", round, rec.Torn, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}

		rep, err := Verify(context.Background(), DirFetcher(check), VerifyOptions{Origin: crashOrigin, Verifiers: vs, Previous: prevCheckpoint})
		if err != nil {
			t.Fatalf("round %d: verify: %v", round, err)
		}
		if rep.Entries != rec.Size || (prevCheckpoint != nil && rep.PreviousSize != prevSize) {
			t.Fatalf("round %d: verify report %+v, recovered %d", round, rep, rec.Size)
		}
		if n := len(rep.Epochs); n > 0 && rep.Epochs[n-1] > uint64(round+1) {
			t.Fatalf("round %d: epoch %d in the ledger", round, rep.Epochs[n-1])
		}
		crashCheckEntries(t, round, check, rec.Size, acked)

		prevCheckpoint, err = os.ReadFile(filepath.Join(check, CheckpointPath))
		if err != nil {
			t.Fatal(err)
		}
		prevSize = rec.Size
		if check != dir {
			// The next child recovers the original debris; the copy showed
			// what it must reach (at least).
			os.RemoveAll(check)
		}
		t.Logf("round %d: killed after %v, %d acks, recovered %d (synced %d, replayed %d, torn %v), segment %q sync %q",
			round, killAfter, len(roundAcks), rec.Size, rec.SyncedSize, rec.Replayed, rec.Torn != nil, segment, syncIv)
	}
	if totalAcks == 0 {
		t.Fatal("no child acknowledged anything: the test checked nothing")
	}
	t.Logf("%d rounds in %v: %d acknowledged entries, ledger of %d, %d torn tails, %d kills during open, %d rounds recovered by the child",
		rounds, time.Since(start).Round(time.Millisecond), totalAcks, prevSize, tornSeen, crashedInOpen, childRecovered)
}

// crashCheckEntries reads every entry bundle of a closed ledger and checks
// each acknowledged index holds the acknowledged bytes.
func crashCheckEntries(t *testing.T, round int, dir string, size uint64, acked map[uint64]crashAck) {
	t.Helper()
	if err := checkAcked(dir, size, acked); err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
}

// checkAcked reads every entry bundle of a closed ledger of size entries
// and checks each acknowledged index holds the acknowledged bytes.
func checkAcked(dir string, size uint64, acked map[uint64]crashAck) error {
	f := DirFetcher(dir)
	found := 0
	for b := uint64(0); b*TileWidth < size; b++ {
		data, _, _, err := fetchTile(context.Background(), f, -1, b, size)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", b, err)
		}
		es, err := splitBundle(data)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", b, err)
		}
		for i, e := range es {
			idx := b*TileWidth + uint64(i)
			a, ok := acked[idx]
			if !ok {
				continue
			}
			if sha256.Sum256(e) != a.sum {
				return fmt.Errorf("entry %d (acknowledged in round %d) differs from what was acknowledged", idx, a.round)
			}
			found++
		}
	}
	if found != len(acked) {
		return fmt.Errorf("%d of %d acknowledged entries found", found, len(acked))
	}
	return nil
}
