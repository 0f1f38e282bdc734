//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/internal/keyfile"
)

// pty is a pseudo-terminal: the command gets the terminal side, the test
// reads what it shows and types at the other.
type pty struct {
	master, term *os.File
	mu           sync.Mutex
	shown        bytes.Buffer
	done         chan struct{}
}

func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &pty{master: m, term: s, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.shown.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		m.Close()
		<-p.done
	})
	return p
}

func (p *pty) screen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shown.String()
}

// waitFor waits until the terminal shows s.
func (p *pty) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.screen(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q:\n%s", s, p.screen())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTerminalPromptAndReadableOutput runs "records get" on a terminal
// with no passphrase given: it asks for one, the typed passphrase is not
// echoed, and the record is printed for a person, not as JSON.
func TestTerminalPromptAndReadableOutput(t *testing.T) {
	dir, url := startHome(t)
	pass := os.Getenv(keyfile.EnvPassphrase)
	as := []string{"--state", dir, "--url", url, "--official", "registrar"}
	if out, err := chancery(t, `{"national_id":"DR-7","last_name":"Novak"}`, append([]string{"records", "put", "population", "DR-7", "-"}, as...)...); err != nil {
		t.Fatalf("put: %v\n%s", err, out)
	}
	t.Setenv(keyfile.EnvPassphrase, "")

	p := openPTY(t)
	cmd := newRootCmd()
	cmd.SetArgs(append([]string{"records", "get", "population", "DR-7"}, as...))
	cmd.SetIn(p.term)
	cmd.SetOut(p.term)
	cmd.SetErr(p.term)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(context.Background()) }()
	p.waitFor(t, "Passphrase of the key files: ")
	if _, err := p.master.WriteString(pass + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("records get on a terminal: %v\n%s", err, p.screen())
	}
	p.waitFor(t, `"last_name": "Novak"`)
	screen := p.screen()
	if strings.Contains(screen, pass) {
		t.Errorf("the passphrase was echoed:\n%s", screen)
	}
	if !strings.Contains(screen, "population/DR-7 version 1, ledger index") || strings.Contains(screen, `"registry"`) {
		t.Errorf("not the readable form:\n%s", screen)
	}
}
