package site

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Slow bodies and connection exhaustion. A site is reachable only while it
// has descriptors to accept with: 420 connections trickling a body to a
// public endpoint once left an embassy with a limit of 400 unable to
// accept even its health check. Three limits keep it reachable:
//
//   - every request body must keep arriving (paceBodies): no byte for
//     BodyTimeout, or slower on average than MinBodyRate once BodyTimeout
//     has passed, and the connection is cut;
//   - the listener holds at most MaxConns connections (more wait in the
//     kernel's backlog, which costs the site no descriptor);
//   - one peer address holds at most MaxConnsPerIP of them (more are
//     closed as soon as they are accepted), so that one client cannot
//     take every slot.

// errSlowBody marks a request body cut off for arriving too slowly: 408.
var errSlowBody = errors.New("request body arrived too slowly")

// paceBodies puts a read deadline on every request body that moves with
// it: BodyTimeout past the last byte, but never later than BodyTimeout
// plus the time the bytes read so far would take at MinBodyRate. A
// handler that never reads the body still has it cut at BodyTimeout
// when the server drains it.
func (s *Site) paceBodies(next http.Handler) http.Handler {
	lim := s.cfg.limits()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			b := &pacedBody{rc: r.Body, ctl: http.NewResponseController(w), start: time.Now(), idle: lim.BodyTimeout.Duration, rate: lim.MinBodyRate}
			b.ctl.SetReadDeadline(b.start.Add(b.idle))
			r.Body = b
		}
		next.ServeHTTP(w, r)
	})
}

type pacedBody struct {
	rc    io.ReadCloser
	ctl   *http.ResponseController
	start time.Time
	idle  time.Duration
	rate  int64 // bytes per second
	n     int64
	done  bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.rc.Read(p)
	}
	now := time.Now()
	deadline := now.Add(b.idle)
	if floor := b.start.Add(b.idle + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second))); floor.Before(deadline) {
		deadline = floor
	}
	// Errors are ignored: a connection that cannot take a deadline (none
	// that net/http serves) is only less protected.
	b.ctl.SetReadDeadline(deadline)
	n, err := b.rc.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		// The whole body is in: the deadline goes, so that it does not cut
		// a handler that takes long to answer (the server reads the
		// connection in the background from here, and a deadline there
		// would cancel the request).
		b.done = true
		b.ctl.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: %d bytes in %s; a body may pause at most %s and must average %d bytes/s after that (limits.body_timeout, limits.min_body_rate)",
			errSlowBody, b.n, now.Sub(b.start).Round(time.Millisecond), b.idle, b.rate)
	}
	return n, err
}

func (b *pacedBody) Close() error { return b.rc.Close() }

// limitListener admits at most max connections at once, and at most perIP
// from one peer address.
type limitListener struct {
	net.Listener
	sem   chan struct{}
	perIP int
	log   *slog.Logger

	mu   sync.Mutex
	byIP map[netip.Addr]int

	refused   atomic.Int64 // connections closed for their peer's limit
	closeOnce sync.Once
	done      chan struct{}
}

func newLimitListener(ln net.Listener, max, perIP int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), perIP: perIP, log: log, byIP: map[netip.Addr]int{}, done: make(chan struct{})}
}

// Accept waits for a free slot before it accepts, so that connections
// beyond the limit wait in the kernel, not in the site's descriptors.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		ip := peerAddr(c)
		l.mu.Lock()
		if l.byIP[ip] >= l.perIP {
			l.mu.Unlock()
			<-l.sem
			c.Close()
			if n := l.refused.Add(1); n&(n-1) == 0 {
				// Logged at 1, 2, 4, 8…: a flood must not flood the log.
				l.log.Warn("connection refused: too many from one peer address (limits.max_conns_per_ip)", "peer", ip.String(), "limit", l.perIP, "refused_total", n)
			}
			continue
		}
		l.byIP[ip]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, ip: ip}, nil
	}
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
	<-l.sem
}

func peerAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{} // not TCP: all such peers share one limit
}

type limitConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
