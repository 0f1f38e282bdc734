package testnet

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// TestClaimIsMachineWide: a port another process holds (here, another
// open file description's flock, which is what another process's is) is
// not handed out, and a port handed out is held against the others.
func TestClaimIsMachineWide(t *testing.T) {
	lockOf := func(port int) *os.File {
		f, err := os.OpenFile(os.TempDir()+"/chancery-testnet-ports/"+strconv.Itoa(port), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	addr := RestartableAddr(t)
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	other := lockOf(port)
	defer other.Close()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Fatalf("port %d was handed out but another process could lock it", port)
	}

	// A port held elsewhere is refused by claim.
	held := port + 1
	f := lockOf(held)
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Skipf("port %d's lock is taken by a running test elsewhere: %v", held, err)
	}
	if claim(held) {
		t.Fatalf("claim took port %d, which another process holds", held)
	}
}
