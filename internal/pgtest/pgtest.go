// Package pgtest starts a real, throwaway PostgreSQL cluster for tests and
// benchmarks: initdb in a temporary directory, wal_level=logical, a random
// loopback port and a unix socket directory of its own. Nothing of the
// replication protocol is mocked; the tests talk to the server Debian
// ships (/usr/lib/postgresql/*/bin).
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Bin  string // the directory holding initdb, pg_ctl, postgres, pg_dump
	Data string // the data directory
	Sock string // the unix socket directory
	Port int    // the loopback TCP port
	User string // the superuser (the OS user the server runs as)

	t        testing.TB
	proc     *os.Process
	log      string
	uid, gid int // the server's user, or -1 when it is this process's
}

// FindBin returns the directory of PostgreSQL's server programs: PATH's
// initdb if any, else the newest /usr/lib/postgresql/*/bin.
func FindBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// /usr/local/bin may hold links to a few of the programs only.
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: initdb not found in PATH or /usr/lib/postgresql/*/bin (apt-get install postgresql)")
}

// Start initialises and starts a cluster that is stopped when the test
// ends. Without PostgreSQL the test is skipped, except when the
// environment variable CI is set: there it fails, so CI cannot pass while
// silently skipping the PostgreSQL tests.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, err := FindBin()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so the PostgreSQL tests may not be skipped", err)
		}
		t.Skip(err)
	}
	// initdb refuses to run as root: run the server as the postgres user,
	// in a directory it owns.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Bin: bin, Data: filepath.Join(dir, "data"), Sock: dir, t: t, log: filepath.Join(dir, "server.log")}
	t.Cleanup(func() {
		c.Stop()
		os.RemoveAll(dir)
	})
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root and there is no postgres user to run the server as: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.User = "postgres"
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		c.User = u.Username
	}
	c.uid, c.gid = uid, gid
	c.Port = freePort(t)
	if out, err := c.command("initdb", "-D", c.Data, "-U", c.User, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	conf := "wal_level = logical\nmax_replication_slots = 16\nmax_wal_senders = 16\n" +
		"fsync = off\nfull_page_writes = off\nshared_buffers = 128MB\n" +
		"max_slot_wal_keep_size = -1\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '" + c.Sock + "'\n"
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hba := "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(c.Data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		os.Chown(filepath.Join(c.Data, "pg_hba.conf"), uid, gid)
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command runs a PostgreSQL program as the server's user.
func (c *Cluster) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.Bin, prog), args...)
	if c.uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}}
	}
	cmd.Env = append(os.Environ(), "PGHOST="+c.Sock, "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+c.User)
	return cmd
}

// Command runs a PostgreSQL client program (pg_dump, pg_restore, psql)
// against this cluster, as its user.
func (c *Cluster) Command(prog string, args ...string) *exec.Cmd {
	return c.command(prog, args...)
}

// start launches the postmaster directly (not through pg_ctl) so that
// Kill can SIGKILL it, and waits until it accepts connections.
func (c *Cluster) start() error {
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if c.uid >= 0 {
		os.Chown(c.log, c.uid, c.gid)
	}
	cmd := c.command("postgres", "-D", c.Data, "-p", strconv.Itoa(c.Port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.proc = cmd.Process
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	lastOut := ""
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			c.proc = nil
			out, _ := os.ReadFile(c.log)
			return fmt.Errorf("pgtest: postgres exited: %v\n%s", err, out)
		default:
		}
		if out, err := c.command("pg_isready").CombinedOutput(); err == nil {
			return nil
		} else {
			lastOut = fmt.Sprintf("%v: %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(c.log)
	return fmt.Errorf("pgtest: postgres did not accept connections in 30s (pg_isready: %s)\n%s", lastOut, out)
}

// ConnString is a connection string for a database of the cluster, over
// TCP on loopback.
func (c *Cluster) ConnString(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Port, db)
}

// CreateDB creates a database and returns its connection string.
func (c *Cluster) CreateDB(name string) string {
	c.t.Helper()
	if out, err := c.command("createdb", name).CombinedOutput(); err != nil {
		c.t.Fatalf("pgtest: createdb %s: %v\n%s", name, err, out)
	}
	return c.ConnString(name)
}

// Psql runs SQL in a database and returns its unaligned output.
func (c *Cluster) Psql(db, sql string) string {
	c.t.Helper()
	cmd := c.command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db)
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(sql) > 300 {
			sql = sql[:300] + "…"
		}
		c.t.Fatalf("pgtest: psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (c *Cluster) Kill() {
	if c.proc == nil {
		return
	}
	c.proc.Signal(syscall.SIGKILL)
	c.waitGone()
}

// Restart starts the server again after Kill or Stop, on the same port.
func (c *Cluster) Restart() {
	c.t.Helper()
	if err := c.start(); err != nil {
		c.t.Fatal(err)
	}
}

// Stop shuts the server down fast (SIGINT) and waits for it.
func (c *Cluster) Stop() {
	if c.proc == nil {
		return
	}
	c.proc.Signal(syscall.SIGINT)
	c.waitGone()
}

// waitGone waits until the postmaster and its children have let go of the
// data directory (its pid file is gone).
func (c *Cluster) waitGone() {
	c.proc = nil
	pid := filepath.Join(c.Data, "postmaster.pid")
	for i := 0; i < 600; i++ {
		if _, err := os.Stat(pid); errors.Is(err, os.ErrNotExist) {
			return
		}
		// After SIGKILL the pid file stays: the children go when they
		// notice the postmaster is gone.
		if out, err := exec.Command("pgrep", "-f", "-d", ",", c.Data).Output(); err != nil || len(strings.TrimSpace(string(out))) == 0 {
			os.Remove(pid)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
