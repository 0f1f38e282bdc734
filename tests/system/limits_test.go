package system_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/testnet"
)

// TestProcessSlowBodyFlood is the flood of issue 11, item 6, against a
// real embassy process with a limit of 400 descriptors: 420 connections
// from one address each trickle a body to the public orders endpoint.
// Without connection limits the site ran out of descriptors (accept4: too
// many open files) and answered no one. Now it must answer /healthz from
// another address throughout, and never run out.
func TestProcessSlowBodyFlood(t *testing.T) {
	bin := testnet.BuildChancery(t)
	dir := newState(t)
	data := filepath.Join(t.TempDir(), "north")
	addr := testnet.FreeAddr(t)
	g := guestFilesOf(dir, procNorth)
	cfg := writeProcConfig(t, "north-flood.yaml", fmt.Sprintf("site: %s\nlisten: %s\ninsecure_loopback: true\ndata_dir: %q\nguests:\n  - charter: %q\n    checkpoint_key: %q\n",
		procNorth, addr, data, g.charter, g.key))
	logFile := filepath.Join(t.TempDir(), "north-flood.log")
	testnet.Start(t, testnet.Spec{Name: "north-flood", Binary: "prlimit", Args: []string{"--nofile=400:400", bin, "serve", "--config", cfg},
		Env: procEnv, HealthURL: "http://" + addr + "/healthz", LogFile: logFile})

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 420 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /continuity/v1/guests/%s/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx", procGuest)
	}
	// Keep trickling while the honest client asks.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				for _, c := range conns {
					c.Write([]byte("x"))
				}
			}
		}
	}()
	client := &http.Client{Timeout: 3 * time.Second}
	for i := range 10 {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("healthz %d during the flood: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d during the flood: %d", i, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(logFile)
	if strings.Contains(string(log), "too many open files") {
		t.Fatalf("the site ran out of descriptors:\n%s", log)
	}
	if !strings.Contains(string(log), "max_conns_per_ip") {
		t.Fatalf("no refusal for the per-address limit in the log:\n%s", log)
	}
}
