package ui

import (
	"sync"
	"time"
)

// Point is one sample of a series.
type Point struct {
	At    time.Time
	Value float64
}

// Series is a bounded window of samples (for example one site's recovery
// point over the last hour), safe for one writer and many readers. The
// site samples into it; the dashboard plots it. It keeps the newest
// samples when full, so memory stays bounded however long a site runs.
type Series struct {
	mu   sync.Mutex
	buf  []Point
	next int
	full bool
}

// NewSeries keeps up to n samples.
func NewSeries(n int) *Series {
	if n < 2 {
		n = 2
	}
	return &Series{buf: make([]Point, n)}
}

// Add records a sample. Samples are expected in time order; one older than
// the newest replaces nothing and is dropped, so a clock step backwards
// cannot fold the plot over itself.
func (s *Series) Add(at time.Time, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.lenLocked(); n > 0 && at.Before(s.buf[(s.next-1+len(s.buf))%len(s.buf)].At) {
		return
	}
	s.buf[s.next] = Point{At: at, Value: v}
	s.next = (s.next + 1) % len(s.buf)
	if s.next == 0 {
		s.full = true
	}
}

func (s *Series) lenLocked() int {
	if s.full {
		return len(s.buf)
	}
	return s.next
}

// Points returns the samples, oldest first.
func (s *Series) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.lenLocked()
	out := make([]Point, 0, n)
	start := 0
	if s.full {
		start = s.next
	}
	for i := range n {
		out = append(out, s.buf[(start+i)%len(s.buf)])
	}
	return out
}
