package replica_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/replica"
)

// TestQuorumWrite: with every site cut off, a write to the quorum-mode
// population registry is not acknowledged while an async registry's is;
// once the links return, a population write is acknowledged only with a
// site's receipt covering it.
func TestQuorumWrite(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.mustPut("population", "P-1", nil)
	_, cp := f.published()
	f.waitSites(cp.Size, 10*time.Second, embassies...)

	for _, id := range embassies {
		f.sites[id].proxy.Cut()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	r, err := f.put(ctx, "population", "P-2", nil)
	cancel()
	if err == nil {
		t.Fatalf("population write acknowledged at index %d with every site cut off; lags %+v", r.Index, f.repl.Tracker().Lags())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("population write with every site cut off: %v, want the deadline", err)
	}
	for _, id := range embassies {
		if got := f.repl.Tracker().Size(id); got > cp.Size {
			t.Fatalf("site %s receipt covers %d entries through a cut link", id, got)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	async, err := f.put(ctx, "business", "B-1", nil)
	cancel()
	if err != nil {
		t.Fatalf("async write with every site cut off: %v", err)
	}

	for _, id := range embassies {
		f.sites[id].proxy.Restore()
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	r, err = f.put(ctx, "population", "P-3", nil)
	cancel()
	if err != nil {
		t.Fatalf("population write after restore: %v", err)
	}
	tr := f.repl.Tracker()
	sn, ss := tr.Size(north), tr.Size(south)
	if sn <= r.Index && ss <= r.Index {
		t.Fatalf("population write at index %d acknowledged, but receipts cover only %d (north) and %d (south)", r.Index, sn, ss)
	}
	if r.Index <= async.Index {
		t.Fatalf("indexes out of order: %d after %d", r.Index, async.Index)
	}
	// The unacknowledged write is durable at home all the same: it
	// replicates with the rest.
	_, cp = f.published()
	f.waitSites(cp.Size, 10*time.Second, embassies...)
}

// TestResumeAfterSiteRestart: while several writers write, one site's
// receiver and mirror close and reopen on the same directories; the home
// resumes from what the site holds, with nothing sent twice and nothing
// skipped.
func TestResumeAfterSiteRestart(t *testing.T) {
	f := newFixture(t, fixtureOptions{shipper: shipperSmallBatches()})
	s := f.sites[south]
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		errs    = make(chan error, 4)
	)
	regs := f.registries()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				reg := regs[rnd.IntN(len(regs))]
				var att []byte
				if i%5 == 0 {
					att = randomBytes(2<<10 + rnd.IntN(6<<10))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := f.put(ctx, reg, fmt.Sprintf("w%d-%d", w, i), att)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				written.Add(1)
			}
		}()
	}
	waitWritten := func(n int64) {
		if !within(10*time.Second, func() bool { return written.Load() >= n }) {
			t.Fatalf("only %d writes in 10s", written.Load())
		}
	}
	waitWritten(40)
	before, old := s.mirror().MirrorSize(), s.receiver()
	s.restart(150 * time.Millisecond)
	if st := old.Stats(); st.Refused != 0 || st.Entries == 0 {
		t.Fatalf("site before the restart: %+v", st)
	}
	after := s.mirror().MirrorSize()
	if after < before {
		t.Fatalf("site reopened with %d entries, it held %d", after, before)
	}
	mark := written.Load()
	waitWritten(mark + 40)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, cp := f.published()
	f.waitSites(cp.Size, 10*time.Second, embassies...)
	m := s.mirror()
	if got := m.MirrorSize(); got != cp.Size {
		t.Fatalf("site %s holds %d entries, the writer %d", south, got, cp.Size)
	}
	if after == 0 || after >= cp.Size {
		t.Fatalf("the restart was not mid-stream: site held %d of %d entries", after, cp.Size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _, err := m.WaitPublished(ctx, cp.Size)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	rep := f.verify(s.ledger)
	if rep.Entries != cp.Size || rep.Checkpoint.Root != cp.Root {
		t.Fatalf("verify of the restarted site: %d entries, root %x; writer %d, %x", rep.Entries, rep.Checkpoint.Root, cp.Size, cp.Root)
	}
	st := s.receiver().Stats()
	if st.Refused != 0 {
		t.Fatalf("restarted site refused %d batches", st.Refused)
	}
	if uint64(st.Entries) != cp.Size-after {
		t.Fatalf("restarted site took %d entries after reopening at %d; the writer is at %d", st.Entries, after, cp.Size)
	}
}

// shipperSmallBatches makes many small batches, so that a fault lands
// between batches as well as inside one.
func shipperSmallBatches() replica.ShipperOptions {
	return replica.ShipperOptions{MaxBatchEntries: 8}
}

// ack is a quorum write the home acknowledged, with the sites' receipts as
// the tracker held them right after.
type ack struct {
	index        uint64
	north, south uint64
}

// TestFaultInjection: one link slow and narrow, the other cut after a few
// kilobytes per connection, then blackholed and restored, all while
// writers write: replication recovers by itself, and no quorum write was
// acknowledged before a site's receipt covered it.
func TestFaultInjection(t *testing.T) {
	f := newFixture(t, fixtureOptions{shipper: replica.ShipperOptions{MaxBatchEntries: 32}})
	pn, ps := f.sites[north].proxy, f.sites[south].proxy
	tr := f.repl.Tracker()
	stop := make(chan struct{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		acks []ack
		n    atomic.Int64
	)
	regs := f.registries()
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				reg := regs[rnd.IntN(len(regs))]
				if w == 0 {
					reg = "population"
				}
				var att []byte
				if i%4 == 0 {
					att = randomBytes(4<<10 + rnd.IntN(12<<10))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				r, err := f.put(ctx, reg, fmt.Sprintf("w%d-%d", w, i), att)
				cancel()
				if err != nil {
					// Not acknowledged: allowed while links are down.
					continue
				}
				n.Add(1)
				if reg == "population" {
					a := ack{index: r.Index, north: tr.Size(north), south: tr.Size(south)}
					mu.Lock()
					acks = append(acks, a)
					mu.Unlock()
				}
			}
		}()
	}
	phase := func(d time.Duration) {
		time.Sleep(d)
		if n.Load() == 0 {
			t.Logf("no write acknowledged yet")
		}
	}
	pn.SetLatency(20 * time.Millisecond)
	pn.SetBandwidth(2 << 20)
	ps.CutAfter(6 << 10)
	phase(1200 * time.Millisecond)
	ps.CutAfter(0)
	ps.HalfOpen()
	phase(600 * time.Millisecond)
	// The faults must have bitten, or the test proves nothing.
	if held, wrote := tr.Size(south), f.home.Size(); held >= wrote {
		t.Fatalf("south's receipt covers %d of %d entries through a blackholed link", held, wrote)
	}
	ps.Restore()
	phase(400 * time.Millisecond)
	pn.SetLatency(0)
	pn.SetBandwidth(0)
	phase(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	_, cp := f.published()
	f.waitSites(cp.Size, 15*time.Second, embassies...)
	for _, id := range embassies {
		m := f.sites[id].mirror()
		if got := m.MirrorSize(); got != cp.Size {
			t.Errorf("site %s: %d entries, writer %d", id, got, cp.Size)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := m.WaitPublished(ctx, cp.Size)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if rep := f.verify(f.sites[id].ledger); rep.Entries != cp.Size {
			t.Errorf("site %s verifies %d entries, writer %d", id, rep.Entries, cp.Size)
		}
	}
	if len(acks) < 5 {
		t.Fatalf("only %d quorum writes acknowledged", len(acks))
	}
	for _, a := range acks {
		if a.north <= a.index && a.south <= a.index {
			t.Errorf("population write at %d acknowledged with receipts covering %d (north), %d (south)", a.index, a.north, a.south)
		}
	}
	t.Logf("%d writes, %d quorum acknowledgements, writer size %d", n.Load(), len(acks), cp.Size)
}
