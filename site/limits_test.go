package site_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/guest"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/site"
)

// TestSlowBodiesAndConnectionCaps: connections from one peer address
// trickling bodies to the public orders endpoint cannot make the site
// unreachable. Beyond max_conns_per_ip they are closed at once; those
// admitted are cut once their body stops keeping up (body_timeout, then
// min_body_rate) with 408; and a client from another address is served
// throughout.
func TestSlowBodiesAndConnectionCaps(t *testing.T) {
	dir := newState(t)
	const perIP, attackers = 8, 24
	const bodyTimeout = 400 * time.Millisecond
	cfg := &site.Config{StateDir: dir, Site: "home", Listen: "127.0.0.1:0", InsecureLoopback: true, Replication: site.ReplicationConfig{Disabled: true},
		Limits: site.Limits{MaxConns: 64, MaxConnsPerIP: perIP, BodyTimeout: site.Duration{Duration: bodyTimeout}, MinBodyRate: 1 << 20}}
	s, err := site.Open(context.Background(), cfg, site.Options{Logger: slog.New(slog.DiscardHandler),
		Local: guest.LocalOptions{Passphrase: []byte(testPass), Ledger: ledger.Options{CheckpointInterval: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(ctx, ln) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		s.Close()
	})
	port := ln.Addr().(*net.TCPAddr).Port

	// The attacker dials from 127.0.0.2 (all of 127/8 is loopback on
	// Linux), so that its address is not the honest client's.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	type result struct {
		closedAt time.Duration
		status   int
	}
	results := make(chan result, attackers)
	start := time.Now()
	var conns []net.Conn
	for range attackers {
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2: %v", err)
		}
		conns = append(conns, c)
		go func() {
			fmt.Fprintf(c, "POST /continuity/v1/guests/demo-republic/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
			// A byte every 50 ms: never idle for body_timeout, far below
			// min_body_rate.
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
						if _, err := c.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			status := 0
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				status = resp.StatusCode
			}
			close(stop)
			results <- result{time.Since(start), status}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	// The honest client, from 127.0.0.1, while the attack runs.
	time.Sleep(100 * time.Millisecond)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		t.Fatalf("healthz during the attack: %v", err)
	}
	var h struct{ Status string }
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz during the attack: %d %s", resp.StatusCode, h.Status)
	}

	var refusedEarly, cut int
	for range attackers {
		r := <-results
		switch {
		case r.status == 0 && r.closedAt < bodyTimeout/2:
			refusedEarly++ // closed at accept: over the per-address limit
		case r.status == http.StatusRequestTimeout && r.closedAt < 4*bodyTimeout:
			cut++
		default:
			t.Errorf("a trickling connection ended after %s with status %d", r.closedAt.Round(time.Millisecond), r.status)
		}
	}
	if refusedEarly != attackers-perIP || cut != perIP {
		t.Fatalf("%d connections closed at accept (want %d), %d cut with 408 (want %d)", refusedEarly, attackers-perIP, cut, perIP)
	}
}
