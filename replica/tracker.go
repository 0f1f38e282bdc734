package replica

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Tracker keeps, at the writer, every site's latest receipt and the
// writer's own progress, and from them each site's recovery point: how many
// entries, and how many seconds of writes, the site would lose if the
// writer were lost now. It is also where quorum writes wait.
type Tracker struct {
	now func() time.Time
	// entryTime, if set, gives the time an entry was written: the oldest
	// entry a site lacks dates its recovery point exactly, across restarts
	// of the writer, where observations only reach back to its start.
	entryTime func(index, size uint64) (time.Time, bool)
	// durable, if set, is the writer's durable size: entries acknowledged
	// to their writers before a checkpoint covers them count in the
	// recovery point too (a published checkpoint lags by up to its
	// interval).
	durable func() uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	size    uint64        // writer's published size
	// writes are (size, first seen) observations of the writer's
	// progress, oldest first, trimmed to what some site still lacks.
	writes []sizeAt
	sites  map[string]*SiteStatus
}

type sizeAt struct {
	size uint64
	at   time.Time
}

// SiteStatus is what the writer knows of one site.
type SiteStatus struct {
	Site        string    `json:"site"`
	Size        uint64    `json:"size"`         // entries the site's latest receipt covers
	ReceiptTime time.Time `json:"receipt_time"` // the receipt's cosignature time
	Receipt     []byte    `json:"receipt,omitempty"`
	Connected   bool      `json:"connected"`
	LastError   string    `json:"last_error,omitempty"`
	LastContact time.Time `json:"last_contact"`
	BytesSent   int64     `json:"bytes_sent"`
	Batches     int64     `json:"batches"`
	Objects     int64     `json:"objects"`
}

// Lag is a site's recovery point now.
type Lag struct {
	SiteStatus
	WriterSize uint64        `json:"writer_size"`
	Entries    uint64        `json:"rpo_entries"`
	Age        time.Duration `json:"-"`
	Seconds    float64       `json:"rpo_seconds"`
}

// NewTracker returns a tracker for the given sites; now may be nil.
func NewTracker(sites []string, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	t := &Tracker{now: now, changed: make(chan struct{}), sites: map[string]*SiteStatus{}}
	for _, s := range sites {
		t.sites[s] = &SiteStatus{Site: s}
	}
	return t
}

func (t *Tracker) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Wrote records that the writer's ledger reached size.
func (t *Tracker) Wrote(size uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size <= t.size {
		return
	}
	t.size = size
	t.writes = append(t.writes, sizeAt{size, t.now()})
	t.notify()
}

// Received records a verified receipt from a site.
func (t *Tracker) Received(site string, size uint64, at time.Time, receipt []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.site(site)
	if size >= s.Size {
		s.Size, s.ReceiptTime, s.Receipt = size, at, receipt
	}
	s.LastContact = t.now()
	t.trim()
	t.notify()
}

// Contact records the outcome of talking to a site: err nil means it
// answered.
func (t *Tracker) Contact(site string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.site(site)
	s.Connected = err == nil
	if err != nil {
		s.LastError = err.Error()
	} else {
		s.LastError = ""
		s.LastContact = t.now()
	}
}

// Sent adds to a site's transfer counters.
func (t *Tracker) Sent(site string, bytes, batches, objects int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.site(site)
	s.BytesSent += bytes
	s.Batches += batches
	s.Objects += objects
}

func (t *Tracker) site(id string) *SiteStatus {
	s, ok := t.sites[id]
	if !ok {
		s = &SiteStatus{Site: id}
		t.sites[id] = s
	}
	return s
}

// trim drops observations every site already holds, keeping the last one
// so the writer's size stays known.
func (t *Tracker) trim() {
	low := t.size
	for _, s := range t.sites {
		low = min(low, s.Size)
	}
	i := 0
	for i < len(t.writes)-1 && t.writes[i].size <= low {
		i++
	}
	t.writes = t.writes[i:]
}

// SetEntryTime sets how the tracker reads an entry's time (see entryTime).
func (t *Tracker) SetEntryTime(f func(index, size uint64) (time.Time, bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entryTime = f
}

// SetDurable sets how the tracker reads the writer's durable size (see
// durable).
func (t *Tracker) SetDurable(f func() uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.durable = f
}

// Lags returns every site's recovery point, sorted by site.
func (t *Tracker) Lags() []Lag {
	t.mu.Lock()
	durable := t.durable
	t.mu.Unlock()
	var d uint64
	if durable != nil {
		d = durable() // outside the lock: it takes the ledger's
	}
	out, et := t.lags(d)
	if et == nil {
		return out
	}
	// Read entry times without the lock: it may touch the disk.
	now := t.now()
	for i := range out {
		l := &out[i]
		if l.Entries == 0 {
			continue
		}
		if at, ok := et(l.Size, l.WriterSize); ok {
			l.Age = max(now.Sub(at), 0)
			l.Seconds = l.Age.Seconds()
		}
	}
	return out
}

func (t *Tracker) lags(durable uint64) ([]Lag, func(index, size uint64) (time.Time, bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	size := max(t.size, durable)
	out := make([]Lag, 0, len(t.sites))
	for _, s := range t.sites {
		l := Lag{SiteStatus: *s, WriterSize: size}
		l.Receipt = nil
		if size > s.Size {
			l.Entries = size - s.Size
			// The oldest write the site lacks: the first observation
			// past its size.
			for _, w := range t.writes {
				if w.size > s.Size {
					l.Age = now.Sub(w.at)
					break
				}
			}
		}
		l.Seconds = l.Age.Seconds()
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out, t.entryTime
}

// Receipts returns every site's status with its latest receipt: the
// writer's signed checkpoint with that site's cosignature, which the
// writer can show as proof that the site holds the entries it covers
// (Lags leaves the receipts out).
func (t *Tracker) Receipts() []SiteStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]SiteStatus, 0, len(t.sites))
	for _, s := range t.sites {
		c := *s
		c.Receipt = bytes.Clone(s.Receipt)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// Size returns the size a site's latest receipt covers.
func (t *Tracker) Size(site string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.site(site).Size
}

// Wait blocks until at least k of sites hold entry index (their receipts
// cover a size greater than index), or ctx ends.
func (t *Tracker) Wait(ctx context.Context, sites []string, k int, index uint64) error {
	if k <= 0 {
		return nil
	}
	if k > len(sites) {
		return fmt.Errorf("quorum of %d sites asked of %d", k, len(sites))
	}
	for {
		t.mu.Lock()
		n := 0
		for _, s := range sites {
			if t.site(s).Size > index {
				n++
			}
		}
		ch := t.changed
		t.mu.Unlock()
		if n >= k {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%d of the %d sites needed hold entry %d: %w", n, k, index, ctx.Err())
		}
	}
}

// WaitSite blocks until site holds entry index.
func (t *Tracker) WaitSite(ctx context.Context, site string, index uint64) error {
	return t.Wait(ctx, []string{site}, 1, index)
}
