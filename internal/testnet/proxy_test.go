package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The timing bounds below are loose on purpose: the tests run on small,
// noisy machines and under -race. Lower bounds are what the knobs promise;
// upper bounds only catch a knob that is ignored or wildly off.

// server is a TCP server for the proxy to forward to.
type server struct {
	addr     string
	accepted atomic.Int64
}

// serveTCP runs handle for every connection to a fresh loopback listener
// until the test ends.
func serveTCP(t *testing.T, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: ln.Addr().String()}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads len(msg) bytes back within timeout.
func roundTrip(c net.Conn, msg string, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyForwards(t *testing.T) {
	s := serveTCP(t, echo)
	p := newProxy(t, s.addr)
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	if n := p.Conns(); n != 1 {
		t.Errorf("Conns = %d, want 1", n)
	}
	eventually(t, "Bytes = 5, 5", func() bool { up, down := p.Bytes(); return up == 5 && down == 5 })
	c.Close()
	eventually(t, "Conns = 0 after the client closed", func() bool { return p.Conns() == 0 })
}

func TestProxyLatency(t *testing.T) {
	const latency = 100 * time.Millisecond
	s := serveTCP(t, echo)
	p := newProxy(t, s.addr)
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// Set on an open connection: it must apply there too.
	p.SetLatency(latency)
	start := time.Now()
	if _, err := roundTrip(c, "ping", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*latency || rtt > 2*latency+3*time.Second {
		t.Errorf("round trip with %v each way took %v, want about %v", latency, rtt, 2*latency)
	}

	// Many small writes in flight at once must come back in order.
	var want bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&want, "%04d,", i)
	}
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < want.Len(); i += 5 {
			if _, err := c.Write(want.Bytes()[i : i+5]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, want.Len())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("stream reordered under latency:\n got %s\nwant %s", got, want.Bytes())
	}

	p.SetLatency(0)
	start = time.Now()
	if _, err := roundTrip(c, "pong", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt >= 2*latency {
		t.Errorf("round trip after SetLatency(0) took %v", rtt)
	}
}

func TestProxyBandwidth(t *testing.T) {
	const rate = 256 << 10
	// sink reads until EOF and answers with one byte; source writes rate
	// bytes and closes.
	sink := serveTCP(t, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_, _ = c.Write([]byte{1})
	})
	source := serveTCP(t, func(c net.Conn) { _, _ = c.Write(make([]byte, rate)) })
	up := newProxy(t, sink.addr)
	down := newProxy(t, source.addr)

	upload := func(n int) error {
		c, err := net.Dial("tcp", up.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(make([]byte, n)); err != nil {
			return err
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	}
	download := func() error {
		c, err := net.Dial("tcp", down.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != rate {
			err = fmt.Errorf("downloaded %d bytes, want %d", n, rate)
		}
		return err
	}
	timed := func(name string, min, max time.Duration, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := time.Since(start); d < min || d > max {
			t.Errorf("%s took %v, want between %v and %v", name, d, min, max)
		}
	}

	up.SetBandwidth(rate)
	down.SetBandwidth(rate)
	timed("upload of 1s at the limit", 700*time.Millisecond, 5*time.Second, func() error { return upload(rate) })
	timed("download of 1s at the limit", 700*time.Millisecond, 5*time.Second, download)

	// Two connections share one bucket: together they take 2s, where a
	// bucket per connection would let them finish in 1s.
	timed("two concurrent uploads of 1s each", 1500*time.Millisecond, 8*time.Second, func() error {
		errc := make(chan error, 2)
		for range 2 {
			go func() { errc <- upload(rate) }()
		}
		return errors.Join(<-errc, <-errc)
	})

	// Lifted, the limit no longer paces: four seconds' worth at the
	// limit goes through in under three (the race detector and a loaded
	// machine slow it, but not to the limit's pace).
	up.SetBandwidth(0)
	timed("upload of 4s' worth without a limit", 0, 3*time.Second, func() error { return upload(4 * rate) })
}

// blockingServer holds every connection open, reading, and reports on
// ended how each read loop finished.
func blockingServer(t *testing.T) (*server, chan error) {
	ended := make(chan error, 16)
	s := serveTCP(t, func(c net.Conn) {
		_, err := io.Copy(c, c)
		if err == nil {
			err = io.EOF
		}
		ended <- err
	})
	return s, ended
}

func TestProxyCut(t *testing.T) {
	s, ended := blockingServer(t)
	p := newProxy(t, s.addr)
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "hi", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	waitBlocked(t, "TestProxyCut.func")
	p.Cut()
	select {
	case err := <-readErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("blocked read after Cut: %v, want connection reset", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("blocked read did not return within 2s of Cut")
	}
	select {
	case err := <-ended:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("server side after Cut: %v, want connection reset", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("server did not see the cut within 2s")
	}

	// While cut, new connections fail at once and never reach the server.
	// The reset may even beat connect's return on loopback.
	c2, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err == nil {
		defer c2.Close()
		_, err = roundTrip(c2, "x", 2*time.Second)
	}
	if err == nil || isTimeout(err) {
		t.Errorf("connection while cut: %v, want a prompt error", err)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}

	p.Restore()
	c3 := dial(t, p.Addr())
	if got, err := roundTrip(c3, "back", 5*time.Second); err != nil || got != "back" {
		t.Fatalf("round trip after Restore = %q, %v", got, err)
	}
}

func TestProxyHalfOpen(t *testing.T) {
	s, ended := blockingServer(t)
	p := newProxy(t, s.addr)
	c1 := dial(t, p.Addr())
	if _, err := roundTrip(c1, "hi", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	p.HalfOpen()
	if _, err := roundTrip(c1, "ping", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip on a held connection: %v, want a timeout", err)
	}
	c2 := dial(t, p.Addr())
	if _, err := roundTrip(c2, "new", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip on a connection opened while half-open: %v, want a timeout", err)
	}
	select {
	case err := <-ended:
		t.Fatalf("server saw its connection end while half-open: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections while half-open, want 1", n)
	}
	if n := p.Conns(); n != 2 {
		t.Errorf("Conns = %d while half-open, want 2", n)
	}

	// Restore resumes both where they stopped: nothing written meanwhile
	// is lost.
	p.Restore()
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{c1, "ping"}, {c2, "new"}} {
		tc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, len(tc.want))
		if _, err := io.ReadFull(tc.c, buf); err != nil || string(buf) != tc.want {
			t.Fatalf("held data after Restore = %q, %v; want %q", buf, err, tc.want)
		}
	}
	if got, err := roundTrip(c1, "again", 5*time.Second); err != nil || got != "again" {
		t.Fatalf("round trip after Restore = %q, %v", got, err)
	}
}

func TestProxyCutAfter(t *testing.T) {
	const limit = 1000
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 4)
	s := serveTCP(t, func(c net.Conn) {
		n, err := io.Copy(io.Discard, c)
		got <- result{n, err}
	})
	p := newProxy(t, s.addr)
	p.CutAfter(limit)

	send := func() net.Conn {
		c := dial(t, p.Addr())
		if _, err := c.Write(make([]byte, 5*limit)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Per connection: the second is cut at the same point as the first.
	for i := range 2 {
		c := send()
		select {
		case r := <-got:
			if r.n != limit || r.err != nil {
				t.Fatalf("connection %d: server got %d bytes then %v, want %d then EOF", i, r.n, r.err, limit)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d: not cut", i)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connection %d: client read after the cut: %v, want connection reset", i, err)
		}
	}

	p.CutAfter(0)
	c := send()
	c.(*net.TCPConn).CloseWrite()
	select {
	case r := <-got:
		if r.n != 5*limit || r.err != nil {
			t.Fatalf("after CutAfter(0): server got %d bytes then %v, want %d then EOF", r.n, r.err, 5*limit)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("after CutAfter(0): upload did not finish")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitBlocked polls until a goroutine running fn (a function name as
// runtime.Stack prints it) is parked waiting for the network.
func waitBlocked(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, fn) {
				return
			}
		}
	}
	t.Fatalf("no goroutine in %s blocked on the network within 5s", fn)
}
