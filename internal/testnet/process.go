package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Spec says how to run one process.
type Spec struct {
	// Name names the log file and messages; it defaults to the binary's
	// base name and must be unique among a test's processes.
	Name   string
	Binary string
	Args   []string
	// Env is added to the test's environment; a later entry for the same
	// variable wins.
	Env []string
	// Dir is the working directory; "" is the test's.
	Dir string
	// HealthURL, if set, makes Start and Restart wait until a GET of it
	// answers 200, for at most HealthTimeout (default 30s: a loaded CI
	// machine is slow to start a daemon that opens a ledger).
	HealthURL     string
	HealthTimeout time.Duration
	// LogFile receives stdout and stderr, appended across restarts. The
	// default is <Name>.log in t.ArtifactDir(): a temporary directory
	// unless the test runs with -artifacts, which keeps it.
	LogFile string
}

// Process is a child process started by Start. It runs in its own process
// group, and every kill signals the whole group, so whatever the child
// starts dies with it.
type Process struct {
	spec Spec

	mu  sync.Mutex
	cur *run // the latest start
}

// run is one start of a Process.
type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result; read only after done is closed
}

// Start runs spec.Binary and, if spec.HealthURL is set, waits until it is
// healthy; it fails the test if the process cannot start, exits first or
// stays unhealthy. When the test ends the process group is killed, and if
// the test failed the log's path and its tail are logged.
func Start(t testing.TB, spec Spec) *Process {
	t.Helper()
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Binary)
	}
	if spec.LogFile == "" {
		// Called before t.Cleanup below so the directory is removed only
		// after the cleanup has printed from it (cleanups run last first).
		spec.LogFile = filepath.Join(t.ArtifactDir(), spec.Name+".log")
	}
	if spec.HealthTimeout == 0 {
		spec.HealthTimeout = 30 * time.Second
	}
	p := &Process{spec: spec}
	t.Cleanup(func() {
		if p.current() == nil {
			return // Start failed before the process existed
		}
		p.Kill()
		if Race {
			if b, err := os.ReadFile(spec.LogFile); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
				t.Errorf("testnet: %s: the race detector reported a data race; log %s", spec.Name, spec.LogFile)
			}
		}
		if t.Failed() {
			t.Logf("testnet: %s: log %s, ending:\n%s", spec.Name, spec.LogFile, tail(spec.LogFile, 4<<10))
		}
	})
	p.start(t)
	return p
}

// Restart starts the process again with the same Spec, stopping it first
// (SIGTERM) if it is still running; to restart after a crash, Kill first.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	if p.Running() {
		p.Stop()
	}
	p.start(t)
}

func (p *Process) start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(p.spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("testnet: %s: %v", p.spec.Name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed
	// once it has started.
	defer log.Close()
	// A marker per start, so restarts are told apart in the one log.
	fmt.Fprintf(log, "=== testnet: %s start %s %q\n", time.Now().Format(time.RFC3339Nano), p.spec.Binary, p.spec.Args)

	cmd := exec.Command(p.spec.Binary, p.spec.Args...)
	cmd.Dir = p.spec.Dir
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testnet: start %s: %v", p.spec.Name, err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()

	if p.spec.HealthURL == "" {
		return
	}
	if err := waitHealthy(t.Context(), r, p.spec.HealthURL, p.spec.HealthTimeout); err != nil {
		t.Fatalf("testnet: %s (pid %d): %v; log %s, ending:\n%s",
			p.spec.Name, cmd.Process.Pid, err, p.spec.LogFile, tail(p.spec.LogFile, 4<<10))
	}
}

// waitHealthy polls url until it answers 200, the process exits, ctx ends
// or timeout passes.
func waitHealthy(ctx context.Context, r *run, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("health %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-r.done:
			return fmt.Errorf("exited before %s answered 200: %w", url, r.err)
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %v: %w", url, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Process) Kill() {
	r := p.current()
	signalGroup(r, syscall.SIGKILL)
	<-r.done
}

// Stop sends SIGTERM to the process group and waits up to 10s for the
// process to exit, then SIGKILLs the group. Whatever of the group outlives
// the process is killed too.
func (p *Process) Stop() {
	r := p.current()
	signalGroup(r, syscall.SIGTERM)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-timer.C:
	}
	signalGroup(r, syscall.SIGKILL)
	<-r.done
}

// Wait waits for the process to exit and returns cmd.Wait's error: nil on
// exit status 0, an *exec.ExitError otherwise (its String is "signal:
// killed" after Kill).
func (p *Process) Wait() error {
	r := p.current()
	<-r.done
	return r.err
}

// PID is the process id of the latest start, which is also its process
// group id.
func (p *Process) PID() int { return p.current().cmd.Process.Pid }

// Running reports whether the latest start has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.current().done:
		return false
	default:
		return true
	}
}

func (p *Process) current() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// signalGroup signals r's whole process group, even when r itself has
// exited: the group outlives its leader while any member lives, and those
// members are the orphans this is meant to catch. The group id cannot be
// reused as a pid while the group has members; once it is empty the
// signal fails with ESRCH, which is ignored.
func signalGroup(r *run, sig syscall.Signal) {
	_ = syscall.Kill(-r.cmd.Process.Pid, sig)
}

// tail returns up to the last n bytes of the file at path, for failure
// messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It
// is inherently racy (anything may take the port before the caller binds
// it) but good enough for loopback tests, and lets a process be restarted
// on the same address.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("testnet: free port: %v", err)
	}
	return port
}

// FreeAddr is FreePort as a "127.0.0.1:port" address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
