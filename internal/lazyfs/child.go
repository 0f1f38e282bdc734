package lazyfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The program under test runs in a child process (a test binary,
// re-executed), so that it can be killed at the power cut while the
// filesystem, in the parent, survives it. The two talk over the child's
// standard streams: the child asks with the line syncfsRequest before each
// of its syncfs calls runs, and the parent answers "ok" once the model has
// made everything durable.

const syncfsRequest = "lazyfs: syncfs"

// Child is a process run on the filesystem.
type Child struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

// Start starts cmd, whose syncfs calls go to f (the child calls
// TrapSyncfsViaParent), and returns it. Every other line the child prints
// arrives on Lines.
func (f *FS) Start(cmd *exec.Cmd) (*Child, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lazyfs: start child: %w", err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("lazyfs: start child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lazyfs: start child: %w", err)
	}
	c := &Child{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go c.read(f, stdout, stdin)
	return c, nil
}

func (c *Child) read(f *FS, stdout io.Reader, stdin io.WriteCloser) {
	defer close(c.done)
	defer close(c.lines)
	defer stdin.Close()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() != syncfsRequest {
			c.lines <- sc.Text()
			continue
		}
		answer := "ok\n"
		if err := f.Syncfs(); err != nil {
			answer = "error " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
		}
		io.WriteString(stdin, answer) // a dead child cannot read it; nothing to do
	}
}

// Lines delivers the child's output lines; it is closed when the child's
// output ends. Read it to the end: the syncfs answers wait behind it.
func (c *Child) Lines() <-chan string { return c.lines }

// Kill kills the child with SIGKILL and waits for it and its output.
func (c *Child) Kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	for range c.lines {
	}
	<-c.done
	c.cmd.Wait()
}

// Wait waits for the child to end by itself. Lines must have been read
// to the end (or be read by another goroutine).
func (c *Child) Wait() error {
	<-c.done
	return c.cmd.Wait()
}

// State is the child's exit state, after Kill or Wait.
func (c *Child) State() *os.ProcessState { return c.cmd.ProcessState }

// TrapSyncfsViaParent, called in a child started by FS.Start, sends each
// syncfs of this process to the parent's filesystem before it runs.
func TrapSyncfsViaParent() (*Trap, error) {
	in := bufio.NewReader(os.Stdin)
	return TrapSyncfs(func() error {
		if _, err := os.Stdout.WriteString(syncfsRequest + "\n"); err != nil {
			return err
		}
		answer, err := in.ReadString('\n')
		if err != nil {
			return fmt.Errorf("lazyfs: syncfs: no answer from the parent: %w", err)
		}
		if answer != "ok\n" {
			return errors.New(strings.TrimSpace(answer))
		}
		return nil
	})
}

// MountForTest mounts a lazy filesystem over a new backing directory for a
// test and unmounts it (cleanly, unless cut) when the test ends. Without
// FUSE it skips the test, except under CI=true, where it fails it: CI
// must not pass while silently skipping the power-loss tests.
func MountForTest(t testing.TB) *FS {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	return MountAt(t, filepath.Join(dir, "backing"), filepath.Join(dir, "mnt"))
}

// Require skips t (fails it under CI=true) if FUSE cannot be used.
func Require(t testing.TB) {
	t.Helper()
	require(t, fuseDevice)
}

func require(t testing.TB, dev string) {
	t.Helper()
	if err := available(dev); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v: the power-loss tests need /dev/fuse (root, or a container with --device /dev/fuse); CI=true, so they may not be skipped", err)
		}
		t.Skipf("%v: power-loss tests skipped (they need /dev/fuse)", err)
	}
}

// RequireRounds is Require for a test of many power-cut rounds: those
// are skipped in -short mode (the race pass); the unit pass runs them.
func RequireRounds(t testing.TB) {
	t.Helper()
	Require(t)
	if testing.Short() {
		t.Skip("power-loss rounds skipped in -short mode")
	}
}

// MountAt mounts a lazy filesystem over backing at mnt, creating both if
// needed, for a test: it is closed when the test ends unless it was cut.
func MountAt(t testing.TB, backing, mnt string) *FS {
	t.Helper()
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Round runs one power-cut round over backing, mounted at mnt: it
// starts cmd, a child that calls ChildStart, and hands each line the
// child prints to line. cutAfter after the child started (fromStart), or
// after the first line for which line returns true (the child reports it
// has opened its data), the power is cut: the child is killed with
// SIGKILL and the filesystem cut, leaving backing as after a power loss.
// It returns what the child asked to make durable.
func Round(t testing.TB, backing, mnt string, cmd *exec.Cmd, cutAfter time.Duration, fromStart bool, line func(string) bool) Stats {
	t.Helper()
	f := MountAt(t, backing, mnt)
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	c, err := f.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
	// A test that fails mid-round must not leave the child holding
	// the mount, which Close waits for.
	t.Cleanup(c.Kill)
	wait := 30 * time.Second // a child that never opens
	if fromStart {
		wait = cutAfter
	}
	timer := time.AfterFunc(wait, kill)
	defer timer.Stop()
	opened := fromStart
	for l := range c.Lines() {
		if line(l) && !opened {
			opened = true
			timer.Stop()
			timer = time.AfterFunc(cutAfter, kill)
		}
	}
	c.Wait()
	if ws, ok := c.State().Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("power-cut round: the child ended by itself (%v) before the cut", c.State())
	}
	st := f.Stats()
	if err := f.Cut(); err != nil {
		t.Fatal(err)
	}
	return st
}

// ChildStart, in a child run by Round, sends its syncfs calls to the
// parent's filesystem (TrapSyncfsViaParent) and makes sure it does not
// outlive a parent that died. On failure it prints "error …" and exits.
// The trap lives as long as the process, which the power cut kills.
func ChildStart() {
	time.AfterFunc(90*time.Second, func() { os.Exit(3) })
	if _, err := TrapSyncfsViaParent(); err != nil {
		fmt.Printf("error trap syncfs: %v\n", err)
		os.Exit(2)
	}
}
