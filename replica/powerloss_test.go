package replica_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/lazyfs"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// An embassy's receiver on a filesystem that forgets, when the power is
// cut, what was not made durable (internal/lazyfs). The parent builds the
// home's batches, each ending at a signed checkpoint; a child embassy
// accepts them one after the other and prints each receipt it signs; the
// parent cuts the power and checks, on what the disk held, that the site
// opens, holds every entry it signed a receipt for (the home's bytes), and
// that the receipt it now serves covers only entries it holds.

const (
	powerEnvDir     = "REPLICA_POWER_CHILD"
	powerEnvState   = "REPLICA_POWER_STATE"
	powerEnvBatches = "REPLICA_POWER_BATCHES"
	powerEnvSync    = "REPLICA_POWER_SYNC"
)

// powerSite opens an embassy's mirror and receiver in dir.
func powerSite(t testing.TB, dir, stateDir, syncIv string) (*ledger.Log, *replica.Receiver, error) {
	layout := state.Layout{Dir: stateDir}
	data, err := os.ReadFile(layout.Charter())
	if err != nil {
		t.Fatal(err)
	}
	c, err := charter.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyfile.ReadEd25519(layout.Key("site-checkpoint", north), keyfile.Protector{Passphrase: []byte(testPass), WorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	o := ledger.Options{Origin: c.Guest.Origin, Mirror: true, CheckpointInterval: time.Millisecond, SegmentSize: 64 << 10}
	if syncIv != "" {
		if o.SyncInterval, err = time.ParseDuration(syncIv); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ledger.Open(context.Background(), filepath.Join(dir, "ledger"), o)
	if err != nil {
		return nil, nil, err
	}
	be, err := storefs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	cs, err := replica.NewReceiptCosigner(c, north, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := replica.NewReceiver(replica.ReceiverOptions{Charter: c, Site: north, Log: l, Blobs: be, Cosigner: cs})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, r, nil
}

// readBatches reads the batches the parent wrote: each a big-endian
// uint32 length and the batch's wire form.
func readBatches(t testing.TB, path string) []*replica.Batch {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bs []*replica.Batch
	for len(data) > 0 {
		n := binary.BigEndian.Uint32(data)
		b, err := replica.ParseBatch(data[4 : 4+n])
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
		data = data[4+n:]
	}
	return bs
}

// TestPowerChild is the child side of TestPowerLossReceiver: it prints
// "open <size>", then "receipt <size>" for each receipt it signs.
func TestPowerChild(t *testing.T) {
	dir := os.Getenv(powerEnvDir)
	if dir == "" {
		t.Skip("child of TestPowerLossReceiver only")
	}
	lazyfs.ChildStart()
	batches := readBatches(t, os.Getenv(powerEnvBatches))
	l, r, err := powerSite(t, dir, os.Getenv(powerEnvState), os.Getenv(powerEnvSync))
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("open %d\n", l.MirrorSize())
	for _, b := range batches {
		if b.End() <= l.MirrorSize() {
			continue
		}
		if b.First != l.MirrorSize() {
			fmt.Printf("error: mirror at %d, between batches\n", l.MirrorSize())
			os.Exit(2)
		}
		receipt, err := r.Accept(context.Background(), b)
		if err != nil {
			fmt.Printf("error accept %d: %v\n", b.First, err)
			os.Exit(2)
		}
		if receipt == nil {
			fmt.Printf("error: no receipt for %d–%d\n", b.First, b.End())
			os.Exit(2)
		}
		fmt.Printf("receipt %d\n", receiptSize(t, receipt))
	}
	fmt.Println("done")
	time.Sleep(time.Minute) // killed
}

func receiptSize(t testing.TB, signed []byte) uint64 {
	cp, err := ledger.ParseSignedCheckpoint(signed)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// TestPowerLossReceiver: 20 power cuts while an embassy receives batches
// and signs receipts; after each, the site opens, and no receipt it signed
// covers an entry it no longer holds.
func TestPowerLossReceiver(t *testing.T) {
	lazyfs.RequireRounds(t)
	f := newFixture(t, fixtureOptions{noReplicator: true})
	// The home's ledger, cut into batches that each end at a checkpoint.
	var file bytes.Buffer
	var from uint64
	regs := []string{"population", "business", "legal-acts"} // placed at north, or withheld stubs
	for i := range 600 {
		for j := range 1 + i%2 {
			reg := regs[(i+j)%len(regs)]
			f.mustPut(reg, fmt.Sprintf("PW-%d-%d", i, j), nil)
		}
		signed, cp := f.published()
		b := f.batch(north, from, cp.Size, signed, false)
		data, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		file.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
		file.Write(data)
		from = cp.Size
	}
	batchFile := filepath.Join(t.TempDir(), "batches")
	if err := os.WriteFile(batchFile, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var home [][]byte
	for _, b := range readBatches(t, batchFile) {
		home = append(home, b.Entries...)
	}

	rseed := uint64(time.Now().UnixNano())
	t.Logf("schedule seed %d", rseed)
	rnd := mrand.New(mrand.NewPCG(rseed, 4))
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{"ledger/wal"} { // see ledger's power-loss test
		if err := os.MkdirAll(filepath.Join(backing, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var receipted uint64 // the largest size the site signed a receipt for
	receipts := 0
	const rounds = 20
	for round := range rounds {
		syncIv := []string{"", "5ms", "40ms"}[round%3]
		cutAfter := time.Duration(10+rnd.IntN(120)) * time.Millisecond
		cmd := exec.Command(os.Args[0], "-test.run=^TestPowerChild$", "-test.count=1", "-test.timeout=90s")
		cmd.Env = append(os.Environ(), powerEnvDir+"="+mnt, powerEnvState+"="+f.dir,
			powerEnvBatches+"="+batchFile, powerEnvSync+"="+syncIv)
		n := 0
		st := lazyfs.Round(t, backing, mnt, cmd, cutAfter, false, func(line string) bool {
			fl := strings.Fields(line)
			switch {
			case len(fl) == 2 && fl[0] == "receipt":
				size, err := strconv.ParseUint(fl[1], 10, 64)
				if err != nil {
					t.Fatalf("round %d: child printed %q", round, line)
				}
				receipted = max(receipted, size)
				n++
			case len(fl) > 0 && fl[0] == "error":
				t.Fatalf("round %d: child before the cut: %s", round, line)
			}
			return len(fl) == 2 && fl[0] == "open"
		})
		receipts += n

		l, r, err := powerSite(t, backing, f.dir, syncIv)
		if err != nil {
			t.Fatalf("round %d: the embassy does not open after the power cut: %v", round, err)
		}
		size := l.MirrorSize()
		if size < receipted {
			t.Fatalf("round %d: the site signed a receipt for %d entries but holds %d after the power cut", round, receipted, size)
		}
		state, err := r.State(context.Background())
		if err != nil {
			t.Fatalf("round %d: state after the power cut: %v", round, err)
		}
		if state.Receipt != nil && receiptSize(t, state.Receipt) > size {
			t.Fatalf("round %d: the site serves a receipt for %d entries and holds %d", round, receiptSize(t, state.Receipt), size)
		}
		if err := ledger.Scan(context.Background(), ledger.DirFetcher(l.Dir()), 0, size, func(idx uint64, e []byte) error {
			if !bytes.Equal(e, home[idx]) {
				return fmt.Errorf("entry %d differs from the home's", idx)
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		r.Close()
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		t.Logf("round %d: cut after %v, %d receipts, site holds %d of %d, sync %q, %+v", round, cutAfter, n, size, len(home), syncIv, st)
	}
	if receipts == 0 {
		t.Fatal("no receipt was signed: the test checked nothing")
	}
	t.Logf("%d power cuts: %d receipts signed, up to %d entries; 0 receipted entries lost", rounds, receipts, receipted)
}
