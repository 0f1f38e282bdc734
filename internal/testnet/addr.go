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
//
// Tests in other processes draw from the same range (go test runs
// packages at once: the system tests beside the CLI's process tests, or
// two suites on one machine), so a port is also claimed machine-wide: an
// flock on a file named after it, held until this process exits (the
// kernel drops it then, even after SIGKILL). Without it, seed 107 of a
// 500-seed run beside CI had its home's address answered by another
// run's embassy.
var handedOut sync.Map // port → *os.File holding the port's lock

// claim takes port machine-wide: false if another process holds it.
func claim(port int) bool {
	dir := os.TempDir() + "/chancery-testnet-ports"
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no lock directory: fall back to the in-process guard
	}
	f, err := os.OpenFile(dir+"/"+strconv.Itoa(port), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	handedOut.Store(port, f) // kept open: the lock lasts as long as the process
	return true
}

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
		if _, taken := handedOut.LoadOrStore(port, (*os.File)(nil)); taken {
			continue
		}
		if !claim(port) {
			continue // another test process holds it
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
