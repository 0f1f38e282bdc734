package testnet

import (
	"net"
	"strconv"
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
