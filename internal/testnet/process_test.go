package testnet

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startEcho builds (once per test binary) and starts the helper server on
// a free address, so these tests do not depend on cmd/chancery.
func startEcho(t *testing.T, args ...string) (*Process, string) {
	t.Helper()
	addr := FreeAddr(t)
	p := Start(t, Spec{
		Name:      "echo",
		Binary:    Build(t, "./internal/testnet/testdata/echoserver"),
		Args:      append([]string{"-addr", addr}, args...),
		HealthURL: "http://" + addr + "/healthz",
	})
	return p, addr
}

func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProcessStartHealthy(t *testing.T) {
	p, addr := startEcho(t)
	if !p.Running() {
		t.Fatal("not running after Start")
	}
	if got := get(t, "http://"+addr+"/pid"); got != strconv.Itoa(p.PID()) {
		t.Errorf("server reports pid %s, PID() = %d", got, p.PID())
	}
}

func TestProcessKill(t *testing.T) {
	p, addr := startEcho(t)
	p.Kill()
	if p.Running() {
		t.Error("Running after Kill")
	}
	err := p.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Wait after Kill = %v, want an exit error", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("exit status %v, want signal: killed", err)
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after Kill")
	}
}

func TestProcessStop(t *testing.T) {
	p, _ := startEcho(t)
	start := time.Now()
	p.Stop()
	if err := p.Wait(); err != nil {
		t.Errorf("Wait after Stop = %v, want a clean exit on SIGTERM", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v; SIGTERM should have ended it, not the SIGKILL fallback", d)
	}
}

func TestProcessRestart(t *testing.T) {
	p, addr := startEcho(t)
	old := p.PID()
	p.Kill()
	p.Restart(t)
	if !p.Running() || p.PID() == old {
		t.Fatalf("after Restart: running %v, pid %d (was %d)", p.Running(), p.PID(), old)
	}
	if got := get(t, "http://"+addr+"/pid"); got != strconv.Itoa(p.PID()) {
		t.Errorf("%s answered from pid %s, want the restarted %d", addr, got, p.PID())
	}
}

// The helper starts a grandchild that would outlive its parent; Kill
// must take it too, or a failed test leaves it behind.
func TestProcessKillTakesGroup(t *testing.T) {
	p, addr := startEcho(t, "-spawn")
	child, err := strconv.Atoi(get(t, "http://"+addr+"/child"))
	if err != nil || child <= 0 {
		t.Fatalf("grandchild pid: %v", err)
	}
	if !alive(child) {
		t.Fatalf("grandchild %d not running before Kill", child)
	}
	p.Kill()
	eventually(t, "grandchild gone after Kill", func() bool { return !alive(child) })
}

// alive reports whether pid exists and is not a zombie: an orphan killed
// in a container whose init does not reap stays a zombie, which is dead
// enough.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}
