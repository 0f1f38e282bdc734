// Package pgcluster starts a real, throwaway PostgreSQL cluster: initdb in
// a directory of its own, wal_level=logical, a random loopback port and a
// unix socket directory of its own, trust authentication on loopback.
// The tests (internal/pgtest) and the demo's --postgres step run the
// server Debian ships (/usr/lib/postgresql/*/bin) through it. It is not
// for production: fsync is off.
package pgcluster

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
	"time"
)

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Bin  string // the directory holding initdb, pg_ctl, postgres, pg_dump
	Data string // the data directory
	Sock string // the unix socket directory
	Port int    // the loopback TCP port
	User string // the superuser (the OS user the server runs as)

	proc     *os.Process
	log      string
	uid, gid int // the server's user, or -1 when it is this process's
}

// ErrNotInstalled: no PostgreSQL server programs were found.
var ErrNotInstalled = errors.New("pgcluster: initdb not found in PATH or /usr/lib/postgresql/*/bin (apt-get install postgresql)")

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
	return "", ErrNotInstalled
}

// Start initialises a cluster in dir (an empty directory; the caller
// removes it after Stop) and starts it. As root, the server runs as the
// postgres user (initdb refuses root), and dir is given to it.
func Start(bin, dir string) (*Cluster, error) {
	c := &Cluster{Bin: bin, Data: filepath.Join(dir, "data"), Sock: dir, log: filepath.Join(dir, "server.log"), uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgcluster: running as root and there is no postgres user to run the server as: %w", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		c.User = "postgres"
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, c.uid, c.gid); err != nil {
			return nil, err
		}
	} else {
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		c.User = u.Username
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if out, err := c.Command("initdb", "-D", c.Data, "-U", c.User, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgcluster: initdb: %v\n%s", err, out)
	}
	conf := "wal_level = logical\nmax_replication_slots = 16\nmax_wal_senders = 16\n" +
		"fsync = off\nfull_page_writes = off\nshared_buffers = 128MB\n" +
		"max_slot_wal_keep_size = -1\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '" + c.Sock + "'\n"
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgresql.conf: %w", err)
	}
	hba := "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(c.Data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, err
	}
	if c.uid >= 0 {
		os.Chown(filepath.Join(c.Data, "pg_hba.conf"), c.uid, c.gid)
	}
	if err := c.Restart(); err != nil {
		return nil, err
	}
	return c, nil
}

// Command runs a PostgreSQL program (initdb, pg_dump, pg_restore, psql)
// against this cluster, as its user.
func (c *Cluster) Command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.Bin, prog), args...)
	if c.uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid)}}
	}
	cmd.Env = append(os.Environ(), "PGHOST="+c.Sock, "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+c.User)
	return cmd
}

// Restart launches the postmaster directly (not through pg_ctl, so that
// Kill can SIGKILL it) after Start, Kill or Stop, on the same port, and
// waits until it accepts connections.
func (c *Cluster) Restart() error {
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if c.uid >= 0 {
		os.Chown(c.log, c.uid, c.gid)
	}
	cmd := c.Command("postgres", "-D", c.Data, "-p", strconv.Itoa(c.Port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.proc = cmd.Process
	done := make(chan error, 1)
	// Reaps the postmaster; ends when it does (Kill, Stop).
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	lastOut := ""
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			c.proc = nil
			out, _ := os.ReadFile(c.log)
			return fmt.Errorf("pgcluster: postgres exited: %v\n%s", err, out)
		default:
		}
		out, err := c.Command("pg_isready").CombinedOutput()
		if err == nil {
			return nil
		}
		lastOut = fmt.Sprintf("%v: %s", err, out)
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(c.log)
	return fmt.Errorf("pgcluster: postgres did not accept connections in 30s (pg_isready: %s)\n%s", lastOut, out)
}

// ConnString is a connection string for a database of the cluster, over
// TCP on loopback.
func (c *Cluster) ConnString(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Port, db)
}

// CreateDB creates a database and returns its connection string.
func (c *Cluster) CreateDB(name string) (string, error) {
	if out, err := c.Command("createdb", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgcluster: createdb %s: %v\n%s", name, err, out)
	}
	return c.ConnString(name), nil
}

// Psql runs SQL in a database and returns its unaligned output.
func (c *Cluster) Psql(db, sql string) (string, error) {
	cmd := c.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db)
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(sql) > 300 {
			sql = sql[:300] + "…"
		}
		return "", fmt.Errorf("pgcluster: psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (c *Cluster) Kill() {
	if c.proc == nil {
		return
	}
	c.proc.Signal(syscall.SIGKILL)
	c.waitGone()
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
