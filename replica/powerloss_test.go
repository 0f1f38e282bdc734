package replica_test

import (
	"bytes"
	"context"
	"encoding/json"
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

// powerBatch is a batch and the packs its records' attachments need,
// which the home ships first.
type powerBatch struct {
	Batch []byte      `json:"batch"` // wire form
	Packs []powerPack `json:"packs"`
	b     *replica.Batch
}

type powerPack struct {
	Reg  string `json:"reg"`
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// packCollector is a Sink that keeps the packs shipped to it (shipPacks
// calls only PutObject).
type packCollector struct {
	replica.Sink
	packs []powerPack
}

func (c *packCollector) PutObject(ctx context.Context, reg, name string, data []byte) error {
	c.packs = append(c.packs, powerPack{reg, name, data})
	return nil
}

// readBatches reads the batches the parent wrote.
func readBatches(t testing.TB, path string) []powerBatch {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bs []powerBatch
	if err := json.Unmarshal(data, &bs); err != nil {
		t.Fatal(err)
	}
	for i := range bs {
		if bs[i].b, err = replica.ParseBatch(bs[i].Batch); err != nil {
			t.Fatal(err)
		}
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
	for _, pb := range batches {
		b := pb.b
		if b.End() <= l.MirrorSize() {
			continue
		}
		for _, p := range pb.Packs {
			if err := r.PutObject(context.Background(), p.Reg, p.Name, p.Data); err != nil {
				fmt.Printf("error pack %s of %s: %v\n", p.Name, p.Reg, err)
				os.Exit(2)
			}
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
	// The home's ledger, cut into batches that each end at a checkpoint;
	// one in five carries a record with an attachment, whose packs are
	// shipped before it.
	var withBlobs string
	for _, reg := range f.registries() {
		if placed(f.c, reg, north) {
			withBlobs = reg
			break
		}
	}
	var batches []powerBatch
	var from uint64
	regs := []string{"population", "business", "legal-acts"} // placed at north, or withheld stubs
	for i := range 600 {
		for j := range 1 + i%2 {
			reg := regs[(i+j)%len(regs)]
			f.mustPut(reg, fmt.Sprintf("PW-%d-%d", i, j), nil)
		}
		if i%5 == 0 {
			f.mustPut(withBlobs, fmt.Sprintf("PW-%d-blob", i), randomBytes(4<<10))
		}
		signed, cp := f.published()
		b := f.batch(north, from, cp.Size, signed, false)
		data, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var packs packCollector
		shipPacks(t, f, &packs, b)
		batches = append(batches, powerBatch{Batch: data, Packs: packs.packs, b: b})
		from = cp.Size
	}
	file, err := json.Marshal(batches)
	if err != nil {
		t.Fatal(err)
	}
	batchFile := filepath.Join(t.TempDir(), "batches")
	if err := os.WriteFile(batchFile, file, 0o600); err != nil {
		t.Fatal(err)
	}
	var home [][]byte
	for _, b := range batches {
		home = append(home, b.b.Entries...)
	}

	rseed := uint64(time.Now().UnixNano())
	t.Logf("schedule seed %d", rseed)
	rnd := mrand.New(mrand.NewPCG(rseed, 4))
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	var receipted uint64 // the largest size the site signed a receipt for
	packs := 0           // pack checks
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
		for _, b := range batches {
			if b.b.End() > receipted {
				break
			}
			for _, p := range b.Packs {
				missing, err := r.Missing(context.Background(), p.Reg, []string{p.Name})
				if err != nil || len(missing) != 0 {
					t.Fatalf("round %d: the site signed a receipt for entries %d–%d but lost pack %s of %s in the power cut (%v)", round, b.b.First, b.b.End()-1, p.Name, p.Reg, err)
				}
				packs++
			}
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
	if packs == 0 {
		t.Fatal("no receipted batch carried a pack: the blob half checked nothing")
	}
	t.Logf("%d power cuts: %d receipts signed, up to %d entries; 0 receipted entries or packs lost (%d pack checks)", rounds, receipts, receipted, packs)
}
