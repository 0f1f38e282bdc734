package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from Addr to a target address and injects
// faults on the wire. Every knob may be changed while traffic flows and
// applies to open connections as well as new ones. Cut and HalfOpen last
// until Restore; latency, bandwidth and CutAfter last until set again.
//
// Data is forwarded in chunks of whatever one read returns (at most
// 32 KiB); each direction keeps its order.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // cancelled by Close, so pending upstream dials end
	cancel context.CancelFunc
	stop   func() bool // detaches Close from the caller's context
	wg     sync.WaitGroup

	latency  atomic.Int64 // time.Duration added per chunk, one way
	cutAfter atomic.Int64 // bytes upstream per connection before a cut; <= 0 is off
	up, down bucket       // bandwidth per direction, shared by all connections
	sentUp   atomic.Int64
	sentDown atomic.Int64

	mu     sync.Mutex
	links  map[*link]struct{}
	cut    bool
	held   chan struct{} // non-nil while half-open; Restore closes it
	closed bool
}

// NewProxy listens on a free port of 127.0.0.1 and forwards every
// connection to target. The proxy closes when ctx is done (pass
// t.Context() and it closes when the test ends) or when Close is called.
func NewProxy(ctx context.Context, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testnet: proxy for %s: %w", target, err)
	}
	p := &Proxy{target: target, ln: ln, links: make(map[*link]struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.stop = context.AfterFunc(ctx, p.Close)
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the host:port clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening, resets every open connection and waits for the
// proxy's goroutines to finish.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	links := p.snapshot()
	p.mu.Unlock()
	p.stop()
	p.cancel()
	_ = p.ln.Close()
	for _, l := range links {
		l.shut(true, true)
	}
	p.wg.Wait()
}

// SetLatency adds d to every chunk forwarded, in each direction, so a
// round trip gains 2d. A chunk's delay is fixed when it is read; chunks
// never overtake each other, so lowering the latency takes effect once the
// chunks already delayed have gone.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetBandwidth limits each direction to bytesPerSec, shared by all
// connections (a token bucket per direction, as a single link between two
// sites would be). 0 removes the limit.
func (p *Proxy) SetBandwidth(bytesPerSec int64) {
	p.up.set(bytesPerSec)
	p.down.set(bytesPerSec)
}

// Cut resets every open connection (SO_LINGER 0, so both peers see RST
// rather than an orderly close) and resets new ones as soon as they are
// accepted, until Restore. The port stays bound so Restore cannot lose it
// to another listener; a client therefore sees its connect succeed and
// its first read or write fail, not "connection refused".
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	links := p.snapshot()
	p.mu.Unlock()
	for _, l := range links {
		l.shut(true, true)
	}
}

// HalfOpen blackholes the link: nothing is forwarded in either direction,
// but every socket stays open, so neither peer sees a close or a reset and
// only a deadline or keepalive can tell it anything is wrong. New
// connections are accepted and then hang without reaching the target.
//
// Nothing is dropped: data in flight is held in the proxy and in the
// kernel's socket buffers (which fill and then block the sender, like an
// unacknowledged TCP window). Restore resumes every held connection where
// it stopped, as TCP would after a partition heals before any timeout, and
// connections accepted meanwhile dial the target then.
func (p *Proxy) HalfOpen() {
	p.mu.Lock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
	p.mu.Unlock()
}

// Restore ends Cut and HalfOpen. Connections reset by Cut stay closed.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
	p.mu.Unlock()
}

// CutAfter cuts each connection once n bytes have been forwarded upstream
// on it: the target receives exactly the first n bytes followed by an
// orderly close (so the truncation point is deterministic), and the client
// is reset. Connections already past n are cut at their next upstream
// chunk. n <= 0 turns it off.
func (p *Proxy) CutAfter(n int64) { p.cutAfter.Store(n) }

// Bytes reports how many bytes have been forwarded upstream (to the
// target) and downstream (to clients) since the proxy started.
func (p *Proxy) Bytes() (up, down int64) { return p.sentUp.Load(), p.sentDown.Load() }

// Conns reports how many client connections are open, including ones held
// by HalfOpen.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// snapshot lists the open links; p.mu must be held.
func (p *Proxy) snapshot() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (EMFILE and the like): back off rather than spin.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		p.accept(c.(*net.TCPConn))
	}
}

func (p *Proxy) accept(c *net.TCPConn) {
	p.mu.Lock()
	if p.closed || p.cut {
		p.mu.Unlock()
		reset(c)
		return
	}
	l := &link{client: c, done: make(chan struct{})}
	p.links[l] = struct{}{}
	// Added under p.mu after checking closed, so Close's Wait sees it.
	p.wg.Add(1)
	p.mu.Unlock()
	go p.run(l)
}

// run serves one client connection until both directions have ended.
func (p *Proxy) run(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.shut(false, false)
	}()
	// A connection accepted while half-open hangs here, like one to a
	// blackholed peer; the target is dialled only once restored.
	if !p.pass(l) {
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		// The target is down: reset the client, the nearest thing to the
		// refusal it would have had without the proxy.
		l.shut(true, true)
		return
	}
	server := c.(*net.TCPConn)
	if !l.setServer(server) {
		reset(server)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, l.client, server, true) }()
	go func() { defer wg.Done(); p.pipe(l, server, l.client, false) }()
	wg.Wait()
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe forwards src to dst. A reader goroutine stamps each chunk with its
// due time and queues it; this goroutine writes chunks in order once due,
// so latency delays a stream without reordering it and without stopping
// the reads behind it. The queue is bounded so a slow writer (bandwidth,
// half-open) pushes back on the sender through TCP.
func (p *Proxy) pipe(l *link, src, dst *net.TCPConn, upstream bool) {
	q := make(chan chunk, 64)
	var rerr error // set before q is closed; read after
	go func() {
		defer close(q)
		buf := make([]byte, 32<<10)
		for {
			if !p.pass(l) {
				rerr = net.ErrClosed
				return
			}
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{b: bytes.Clone(buf[:n]), due: time.Now().Add(time.Duration(p.latency.Load()))}
				select {
				case q <- c:
				case <-l.done:
					rerr = net.ErrClosed
					return
				}
			}
			if err != nil {
				rerr = err
				return
			}
		}
	}()
	ok := true
	for c := range q {
		if ok = l.sleepUntil(c.due) && p.forward(l, dst, c.b, upstream); !ok {
			break
		}
	}
	switch {
	case ok && errors.Is(rerr, io.EOF):
		// An orderly close in one direction is passed on as one, and the
		// other direction keeps flowing (HTTP relies on this).
		if err := dst.CloseWrite(); err != nil {
			l.shut(true, true)
		}
	default:
		// A reset, a write failure or a cut: tear down both sides so
		// neither peer waits on a stream that will never finish.
		l.shut(true, true)
	}
	for range q {
		// Drain so the reader, now unblocked by the shut, can exit.
	}
}

// forward writes b to dst under the bandwidth limit, half-open hold and
// CutAfter, and reports whether the link is still usable.
func (p *Proxy) forward(l *link, dst *net.TCPConn, b []byte, upstream bool) bool {
	bk, sent := &p.down, &p.sentDown
	cut := false
	if upstream {
		bk, sent = &p.up, &p.sentUp
		if limit := p.cutAfter.Load(); limit > 0 && l.sentUp+int64(len(b)) >= limit {
			b = b[:max(limit-l.sentUp, 0)]
			cut = true
		}
	}
	for len(b) > 0 {
		n := bk.take(l.done, len(b))
		// HalfOpen may begin in the middle of a chunk.
		if n == 0 || !p.pass(l) {
			return false
		}
		w, err := dst.Write(b[:n])
		sent.Add(int64(w))
		if upstream {
			l.sentUp += int64(w)
		}
		if err != nil {
			return false
		}
		b = b[n:]
	}
	if cut {
		// FIN to the target so it gets exactly the bytes written before
		// the close (an RST would discard what is still in the send
		// buffer), RST to the client.
		l.shut(true, false)
		return false
	}
	return true
}

// pass waits while the proxy is half-open and reports whether the link is
// still open.
func (p *Proxy) pass(l *link) bool {
	for {
		p.mu.Lock()
		held := p.held
		p.mu.Unlock()
		if held == nil {
			select {
			case <-l.done:
				return false
			default:
				return true
			}
		}
		select {
		case <-held:
		case <-l.done:
			return false
		}
	}
}

// link is one proxied client connection and its upstream connection.
type link struct {
	client *net.TCPConn
	done   chan struct{} // closed by shut
	sentUp int64         // bytes forwarded upstream; only the upstream writer uses it

	mu     sync.Mutex
	server *net.TCPConn // nil until dialled
	closed bool
}

// setServer records the upstream connection, or reports false if the link
// was shut while it was being dialled.
func (l *link) setServer(c *net.TCPConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = c
	return true
}

// shut closes both sides once; rstClient and rstServer choose RST over an
// orderly close for each side. Later calls do nothing.
func (l *link) shut(rstClient, rstServer bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	closeConn(l.client, rstClient)
	if l.server != nil {
		closeConn(l.server, rstServer)
	}
}

// sleepUntil waits for t and reports false if the link was shut first.
func (l *link) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-l.done:
		return false
	}
}

func closeConn(c *net.TCPConn, rst bool) {
	if rst {
		reset(c)
		return
	}
	_ = c.Close()
}

// reset closes c with SO_LINGER 0, which makes the kernel send RST and
// drop unsent data: the peer sees ECONNRESET, as after a crash or a
// middlebox timing out the flow.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// bucket is a token bucket shared by every connection in one direction.
type bucket struct {
	mu    sync.Mutex
	rate  int64   // bytes per second; 0 is unlimited
	level float64 // tokens; negative is a debt the next writer waits out
	last  time.Time
}

func (b *bucket) set(rate int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = max(rate, 0)
	b.level = 0
	b.last = time.Now()
}

// take waits until a writer may send and returns how many of n bytes it
// may send now, or 0 if done is closed first. Writes are cut into pieces
// of about 20 ms of traffic so concurrent connections interleave and the
// rate is smooth over short transfers.
func (b *bucket) take(done <-chan struct{}, n int) int {
	for {
		b.mu.Lock()
		if b.rate == 0 {
			b.mu.Unlock()
			return n
		}
		piece := int(min(max(b.rate/50, 512), 32<<10))
		now := time.Now()
		b.level = min(b.level+now.Sub(b.last).Seconds()*float64(b.rate), float64(piece))
		b.last = now
		if b.level >= 0 {
			piece = min(piece, n)
			b.level -= float64(piece)
			b.mu.Unlock()
			return piece
		}
		wait := time.Duration(-b.level / float64(b.rate) * float64(time.Second))
		b.mu.Unlock()
		// Wake at least every 50 ms to pick up a new rate from SetBandwidth.
		timer := time.NewTimer(min(wait, 50*time.Millisecond))
		select {
		case <-timer.C:
		case <-done:
			timer.Stop()
			return 0
		}
	}
}
