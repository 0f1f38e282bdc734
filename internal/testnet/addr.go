package testnet

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// handedOut are the ports RestartableAddr has given in this process. It is
// package state on purpose: ports are a process-wide resource, and tests
// running at once (the schedule seeds run four at a time) each probe for a
// free port, then close it and hand it to a process that binds it later;
// two could otherwise be handed the same port in that window, and one
// schedule's health check would then reach the other's site.
var handedOut sync.Map // port → struct{}

// RestartableAddr is FreeAddr for a process that will be killed and
// restarted on the same address. FreeAddr's port comes from the kernel's
// ephemeral range, the range outgoing connections take their local ports
// from: while the process is down, any connection on the host may take
// that port, and the restart then fails to bind. RestartableAddr picks a
// free port below that range instead (from 10000 up to its start), which only
// another explicit bind can take.
func RestartableAddr(t testing.TB) string {
	t.Helper()
	lo, hi := 10000, ephemeralStart()-1
	if hi <= lo {
		return FreeAddr(t)
	}
	var last error
	for range 100 {
		port := lo + rand.IntN(hi-lo+1)
		if _, taken := handedOut.LoadOrStore(port, struct{}{}); taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			last = err
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			t.Fatalf("testnet: restartable address: %v", err)
		}
		if err := ln.Close(); err != nil {
			t.Fatalf("testnet: restartable address: %v", err)
		}
		return addr
	}
	t.Fatalf("testnet: no free port in %d–%d after 100 tries: %v", lo, hi, last)
	return ""
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (Linux's default, 32768, where it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1024 {
		return 32768
	}
	return n
}
