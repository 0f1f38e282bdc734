package replica_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/replica"
)

// clock is a settable time source for the tracker.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// op is one event fed to a tracker: at is the clock's offset from t0.
type op struct {
	at    time.Duration
	wrote uint64 // Wrote(wrote) if site is ""
	site  string // Received(site, size)
	size  uint64
}

type wantLag struct {
	size, entries uint64
	seconds       float64
}

// TestTrackerLags: each site's recovery point, in entries and in seconds
// since the writer first held the oldest entry the site lacks.
func TestTrackerLags(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []op
		now  time.Duration
		want map[string]wantLag
		// entryTimes, if set, are the writer's entry times (SetEntryTime)
		// by index, as offsets from t0; an index missing falls back to the
		// observations.
		entryTimes map[uint64]time.Duration
	}{
		{"nothing written", nil, 5 * time.Second,
			map[string]wantLag{"a": {0, 0, 0}, "b": {0, 0, 0}}, nil},
		{"nothing received", []op{{at: time.Second, wrote: 10}}, 4 * time.Second,
			map[string]wantLag{"a": {0, 10, 3}, "b": {0, 10, 3}}, nil},
		{"one site current", []op{{at: time.Second, wrote: 10}, {at: 2 * time.Second, site: "a", size: 10}}, 7 * time.Second,
			map[string]wantLag{"a": {10, 0, 0}, "b": {0, 10, 6}}, nil},
		{"lag counts from the first write the site lacks", []op{
			{at: 1 * time.Second, wrote: 10},
			{at: 3 * time.Second, wrote: 20},
			{at: 6 * time.Second, wrote: 30},
			{at: 7 * time.Second, site: "a", size: 10},
			{at: 7 * time.Second, site: "b", size: 25},
		}, 10 * time.Second,
			map[string]wantLag{"a": {10, 20, 7}, "b": {25, 5, 4}}, nil},
		{"older receipt ignored", []op{
			{at: 1 * time.Second, wrote: 10},
			{at: 2 * time.Second, wrote: 20},
			{at: 3 * time.Second, site: "a", size: 20},
			{at: 4 * time.Second, site: "a", size: 10},
		}, 5 * time.Second,
			map[string]wantLag{"a": {20, 0, 0}, "b": {0, 20, 4}}, nil},
		{"caught up, then behind again", []op{
			{at: 1 * time.Second, wrote: 10},
			{at: 2 * time.Second, site: "a", size: 10},
			{at: 2 * time.Second, site: "b", size: 10},
			{at: 8 * time.Second, wrote: 12},
		}, 9 * time.Second,
			map[string]wantLag{"a": {10, 2, 1}, "b": {10, 2, 1}}, nil},
		{"writer size never goes back", []op{
			{at: 1 * time.Second, wrote: 10},
			{at: 2 * time.Second, wrote: 5},
		}, 3 * time.Second,
			map[string]wantLag{"a": {0, 10, 2}, "b": {0, 10, 2}}, nil},
		{"receipt ahead of the writer's own record", []op{
			{at: 1 * time.Second, wrote: 10},
			{at: 2 * time.Second, site: "a", size: 15},
		}, 3 * time.Second,
			map[string]wantLag{"a": {15, 0, 0}, "b": {0, 10, 2}}, nil},
		{"entry times date the lag", []op{
			{at: 10 * time.Second, wrote: 10},
			{at: 11 * time.Second, site: "a", size: 4},
		}, 12 * time.Second,
			map[string]wantLag{"a": {4, 6, 9}, "b": {0, 10, 11.5}},
			map[uint64]time.Duration{0: 500 * time.Millisecond, 4: 3 * time.Second}},
		{"an entry time not found falls back to the observations", []op{
			{at: 10 * time.Second, wrote: 10},
		}, 12 * time.Second,
			map[string]wantLag{"a": {0, 10, 2}, "b": {0, 10, 2}},
			map[uint64]time.Duration{}},
		{"an entry time ahead of the clock is no negative lag", []op{
			{at: 1 * time.Second, wrote: 3},
		}, 2 * time.Second,
			map[string]wantLag{"a": {0, 3, 0}, "b": {0, 3, 0}},
			map[uint64]time.Duration{0: 5 * time.Second}},
		{"no entry time asked of a current site", []op{
			{at: 1 * time.Second, wrote: 3},
			{at: 1 * time.Second, site: "a", size: 3},
			{at: 1 * time.Second, site: "b", size: 3},
		}, 2 * time.Second,
			map[string]wantLag{"a": {3, 0, 0}, "b": {3, 0, 0}},
			map[uint64]time.Duration{3: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t0}
			tr := replica.NewTracker([]string{"b", "a"}, c.now)
			if tc.entryTimes != nil {
				tr.SetEntryTime(func(index, size uint64) (time.Time, bool) {
					if size != 10 && size != 3 {
						t.Errorf("entry time of %d asked at writer size %d", index, size)
					}
					d, ok := tc.entryTimes[index]
					return t0.Add(d), ok
				})
			}
			for _, o := range tc.ops {
				c.t = t0.Add(o.at)
				if o.site == "" {
					tr.Wrote(o.wrote)
				} else {
					tr.Received(o.site, o.size, c.t, []byte("receipt"))
				}
			}
			c.t = t0.Add(tc.now)
			lags := tr.Lags()
			if len(lags) != len(tc.want) {
				t.Fatalf("%d lags, want %d", len(lags), len(tc.want))
			}
			for i, l := range lags {
				if i > 0 && lags[i-1].Site >= l.Site {
					t.Fatalf("lags not sorted by site: %s before %s", lags[i-1].Site, l.Site)
				}
				w := tc.want[l.Site]
				if l.Size != w.size || l.Entries != w.entries || l.Seconds != w.seconds {
					t.Errorf("site %s: size %d, rpo %d entries, %gs; want %d, %d, %gs", l.Site, l.Size, l.Entries, l.Seconds, w.size, w.entries, w.seconds)
				}
				if l.Receipt != nil {
					t.Errorf("site %s: Lags carries the receipt", l.Site)
				}
				if l.Seconds != l.Age.Seconds() {
					t.Errorf("site %s: seconds %g, age %v", l.Site, l.Seconds, l.Age)
				}
				if tr.Size(l.Site) != w.size {
					t.Errorf("Size(%s) = %d, want %d", l.Site, tr.Size(l.Site), w.size)
				}
			}
		})
	}
}

// TestTrackerWait: Wait returns once k of the sites' receipts cover the
// index (a size greater than it), not before, and gives up with the
// context.
func TestTrackerWait(t *testing.T) {
	sites := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name     string
		received map[string]uint64
		k        int
		index    uint64
		ok       bool
	}{
		{"no quorum asked", nil, 0, 5, true},
		{"none received", nil, 1, 0, false},
		{"size equal to index does not cover it", map[string]uint64{"a": 5}, 1, 5, false},
		{"size past index covers it", map[string]uint64{"a": 6}, 1, 5, true},
		{"one of two", map[string]uint64{"a": 6, "b": 3}, 2, 5, false},
		{"two of two", map[string]uint64{"a": 6, "c": 9}, 2, 5, true},
		{"a site not asked does not count", map[string]uint64{"z": 100}, 1, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := replica.NewTracker(sites, nil)
			for s, n := range tc.received {
				tr.Received(s, n, time.Now(), nil)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			err := tr.Wait(ctx, sites, tc.k, tc.index)
			if (err == nil) != tc.ok {
				t.Fatalf("wait: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("wait: %v, want the deadline", err)
			}
		})
	}
	t.Run("quorum larger than the sites", func(t *testing.T) {
		tr := replica.NewTracker(sites, nil)
		if err := tr.Wait(context.Background(), sites[:1], 2, 0); err == nil {
			t.Fatal("a quorum of 2 of 1 site was accepted")
		}
	})
	t.Run("wakes on a receipt", func(t *testing.T) {
		tr := replica.NewTracker(sites, nil)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- tr.WaitSite(ctx, "b", 9)
		}()
		tr.Received("b", 9, time.Now(), nil) // covers entries 0–8 only
		tr.Received("a", 50, time.Now(), nil)
		select {
		case err := <-done:
			t.Fatalf("returned (%v) before b held entry 9", err)
		case <-time.After(50 * time.Millisecond):
		}
		tr.Received("b", 10, time.Now(), nil)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wait did not wake on the covering receipt")
		}
	})
}

// TestTrackerCountsDurableEntries: an entry acknowledged to its writer
// but not yet under a published checkpoint is part of every site's
// recovery point: a status read in that window must not say a site holds
// everything.
func TestTrackerCountsDurableEntries(t *testing.T) {
	tr := replica.NewTracker([]string{"embassy-north"}, nil)
	tr.Wrote(10)
	tr.Received("embassy-north", 10, time.Now(), nil)
	if got := tr.Lags()[0].Entries; got != 0 {
		t.Fatalf("without durable entries past the checkpoint: %d entries behind, want 0", got)
	}
	durable := uint64(12)
	tr.SetDurable(func() uint64 { return durable })
	l := tr.Lags()[0]
	if l.Entries != 2 || l.WriterSize != 12 {
		t.Fatalf("two entries durable past the checkpoint: %d behind of writer size %d, want 2 of 12", l.Entries, l.WriterSize)
	}
	tr.Received("embassy-north", 12, time.Now(), nil)
	if got := tr.Lags()[0].Entries; got != 0 {
		t.Fatalf("after a receipt covering them: %d behind, want 0", got)
	}
}
