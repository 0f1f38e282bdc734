package testnet

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

func TestRestartableAddr(t *testing.T) {
	addr := RestartableAddr(t)
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	if port < 10000 || port >= ephemeralStart() {
		t.Fatalf("port %d: want one in [10000, %d)", port, ephemeralStart())
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
}

// TestRestartableAddrUnique: tests running at once are never handed the
// same port, though each probes and releases it before its process binds
// it (two schedules once shared one, and one's health check reached the
// other's site).
func TestRestartableAddrUnique(t *testing.T) {
	const n = 1000 // without the guard, two of 1000 draws from ~22,000 ports collide almost surely
	addrs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { addrs[i] = RestartableAddr(t) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("address %s handed out twice", a)
		}
		seen[a] = true
	}
}
