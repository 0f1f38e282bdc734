package lazyfs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/lazyfs"
)

// Each case runs steps on a fresh mount over a backing directory that
// already holds old (10 bytes, durable), cuts the power, and checks what
// the backing directory holds: name → content, absent names missing.
func TestPowerLossRules(t *testing.T) {
	type want map[string]string // "" + absent: see below
	const gone = "\x00gone"
	cases := []struct {
		name  string
		steps func(t *testing.T, m string)
		want  want
	}{
		{"unsynced new file is lost", func(t *testing.T, m string) {
			write(t, m, "a", "hello", false)
		}, want{"a": gone, "old": "old-durabl"}},
		{"fsync of a new file without its directory: name lost", func(t *testing.T, m string) {
			write(t, m, "a", "hello", true)
		}, want{"a": gone}},
		{"directory fsync without file fsync: name kept, data lost", func(t *testing.T, m string) {
			write(t, m, "a", "hello", false)
			syncDir(t, m)
		}, want{"a": ""}},
		{"file and directory fsync: both kept", func(t *testing.T, m string) {
			write(t, m, "a", "hello", true)
			syncDir(t, m)
		}, want{"a": "hello"}},
		{"fdatasync makes data durable", func(t *testing.T, m string) {
			f := create(t, m, "a")
			f.WriteString("data")
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				t.Fatal(err)
			}
			f.Close()
			syncDir(t, m)
		}, want{"a": "data"}},
		{"data written after the fsync is lost", func(t *testing.T, m string) {
			f := create(t, m, "a")
			f.WriteString("first")
			f.Sync()
			f.WriteAt([]byte("SECOND"), 2)
			f.Close()
			syncDir(t, m)
		}, want{"a": "first"}},
		{"overwrite of a durable file without fsync: old data", func(t *testing.T, m string) {
			f, err := os.OpenFile(filepath.Join(m, "old"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("NEW"), 0)
			f.Close()
		}, want{"old": "old-durabl"}},
		{"overwrite with fsync: new data", func(t *testing.T, m string) {
			f, err := os.OpenFile(filepath.Join(m, "old"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("NEW"), 0)
			f.Sync()
			f.Close()
		}, want{"old": "NEW-durabl"}},
		{"truncate without fsync: old data", func(t *testing.T, m string) {
			if err := os.Truncate(filepath.Join(m, "old"), 3); err != nil {
				t.Fatal(err)
			}
		}, want{"old": "old-durabl"}},
		{"O_TRUNC and rewrite, fsynced: new data only", func(t *testing.T, m string) {
			f, err := os.OpenFile(filepath.Join(m, "old"), os.O_RDWR|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("xy")
			f.Sync()
			f.Close()
		}, want{"old": "xy"}},
		{"truncate down then up, fsynced: zeros", func(t *testing.T, m string) {
			f, err := os.OpenFile(filepath.Join(m, "old"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(2)
			f.Truncate(4)
			f.Sync()
			f.Close()
		}, want{"old": "ol\x00\x00"}},
		{"preallocation keeps data and zero tail", func(t *testing.T, m string) {
			f, err := os.OpenFile(filepath.Join(m, "old"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 12); err != nil {
				t.Fatal(err)
			}
			f.Sync()
			f.Close()
		}, want{"old": "old-durabl\x00\x00"}},
		{"unlink without directory fsync: file back", func(t *testing.T, m string) {
			os.Remove(filepath.Join(m, "old"))
		}, want{"old": "old-durabl"}},
		{"unlink with directory fsync: gone", func(t *testing.T, m string) {
			os.Remove(filepath.Join(m, "old"))
			syncDir(t, m)
		}, want{"old": gone}},
		{"rename without directory fsync: old name", func(t *testing.T, m string) {
			os.Rename(filepath.Join(m, "old"), filepath.Join(m, "new"))
		}, want{"old": "old-durabl", "new": gone}},
		{"rename with directory fsync: new name", func(t *testing.T, m string) {
			os.Rename(filepath.Join(m, "old"), filepath.Join(m, "new"))
			syncDir(t, m)
		}, want{"old": gone, "new": "old-durabl"}},
		{"rename over a durable file, unsynced: old target", func(t *testing.T, m string) {
			write(t, m, "a", "A", true)
			syncDir(t, m)
			write(t, m, "b", "B", true)
			os.Rename(filepath.Join(m, "b"), filepath.Join(m, "a"))
		}, want{"a": "A", "b": gone}},
		{"atomic replace (write, fsync, rename, fsync dir): new", func(t *testing.T, m string) {
			if err := fsutil.Replace(filepath.Join(m, "old"), []byte("replaced"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want{"old": "replaced", "old.tmp": gone}},
		{"new directory: its names need its own fsync", func(t *testing.T, m string) {
			os.Mkdir(filepath.Join(m, "d"), 0o755)
			write(t, m, "d/a", "in d", true)
			syncDir(t, m)
		}, want{"d": "<dir>", "d/a": gone}},
		{"new directory synced, parent not: all lost", func(t *testing.T, m string) {
			os.Mkdir(filepath.Join(m, "d"), 0o755)
			write(t, m, "d/a", "in d", true)
			syncDir(t, filepath.Join(m, "d"))
		}, want{"d": gone}},
		{"new directory, both synced: kept", func(t *testing.T, m string) {
			os.Mkdir(filepath.Join(m, "d"), 0o755)
			write(t, m, "d/a", "in d", true)
			syncDir(t, filepath.Join(m, "d"))
			syncDir(t, m)
		}, want{"d/a": "in d"}},
		{"hard link, directory synced: both names", func(t *testing.T, m string) {
			os.Link(filepath.Join(m, "old"), filepath.Join(m, "ln"))
			syncDir(t, m)
		}, want{"ln": "old-durabl", "old": "old-durabl"}},
		{"symlink, directory synced: kept", func(t *testing.T, m string) {
			os.Symlink("old", filepath.Join(m, "sl"))
			syncDir(t, m)
		}, want{"sl": "->old"}},
		{"unlinked but open, unsynced directory: data synced through the handle comes back", func(t *testing.T, m string) {
			f, err := os.OpenFile(filepath.Join(m, "old"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(m, "old"))
			f.Truncate(2)
			f.Truncate(5)
			f.WriteAt([]byte("Z"), 4)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, want{"old": "ol\x00\x00Z"}},
		{"closing is no sync", func(t *testing.T, m string) {
			write(t, m, "a", "hello", false)
			syncDir(t, m)
			f, _ := os.OpenFile(filepath.Join(m, "a"), os.O_RDONLY, 0)
			f.Close()
		}, want{"a": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lazyfs.Require(t)
			dir := t.TempDir()
			backing := filepath.Join(dir, "backing")
			os.MkdirAll(backing, 0o755)
			if err := os.WriteFile(filepath.Join(backing, "old"), []byte("old-durabl"), 0o644); err != nil {
				t.Fatal(err)
			}
			fs := lazyfs.MountAt(t, backing, filepath.Join(dir, "mnt"))
			m := fs.Dir()
			c.steps(t, m)
			if err := fs.Cut(); err != nil {
				t.Fatal(err)
			}
			for name, w := range c.want {
				p := filepath.Join(backing, name)
				fi, err := os.Lstat(p)
				switch {
				case w == gone:
					if err == nil {
						t.Errorf("%s survived the cut", name)
					}
					continue
				case err != nil:
					t.Errorf("%s: %v", name, err)
					continue
				case w == "<dir>":
					if !fi.IsDir() {
						t.Errorf("%s: not a directory", name)
					}
					continue
				case strings.HasPrefix(w, "->"):
					if got, err := os.Readlink(p); err != nil || got != w[2:] {
						t.Errorf("%s: link to %q, %v, want %q", name, got, err, w[2:])
					}
					continue
				}
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, []byte(w)) {
					t.Errorf("%s after the cut: %q, %v; want %q", name, got, err, w)
				}
			}
		})
	}
}

// TestSyncfsDurable: Syncfs (what a trapped syncfs(2) runs) makes data,
// names and removals durable everywhere.
func TestSyncfsDurable(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	m := fs.Dir()
	os.MkdirAll(filepath.Join(m, "x/y"), 0o755)
	write(t, m, "x/y/a", "deep", false)
	os.Remove(filepath.Join(m, "x/y/a.none"))
	write(t, m, "top", "top", false)
	if err := fs.Syncfs(); err != nil {
		t.Fatal(err)
	}
	write(t, m, "later", "later", true)
	if err := fs.Cut(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, fs.Backing(), map[string]string{"x/y/a": "deep", "top": "top"}, []string{"later"})
}

// TestCutFreezes: after the cut a process that still has the filesystem
// open gets EIO for every change, and nothing it does survives.
func TestCutFreezes(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	m := fs.Dir()
	write(t, m, "a", "kept", true)
	syncDir(t, m)
	f, err := os.OpenFile(filepath.Join(m, "a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cut := make(chan error, 1)
	go func() { cut <- fs.Cut() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.WriteAt([]byte("LOST"), 0)
		if errors.Is(err, syscall.EIO) {
			if err := f.Sync(); !errors.Is(err, syscall.EIO) {
				t.Errorf("fsync after the cut: %v, want EIO", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still accepted 10s after the cut: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	f.Close()
	if err := <-cut; err != nil {
		t.Fatal(err)
	}
	checkFiles(t, fs.Backing(), map[string]string{"a": "kept"}, nil)
}

// TestTrapSyncfs: a child's syncfs(2), which never reaches the FUSE
// server, is trapped and made durable by the parent's filesystem; without
// it, the same child's unsynced file is lost.
func TestTrapSyncfs(t *testing.T) {
	if os.Getenv("LAZYFS_TRAP_CHILD") != "" {
		t.Skip("child of TestTrapSyncfs")
	}
	for _, syncfs := range []bool{false, true} {
		fs := lazyfs.MountForTest(t)
		cmd := exec.Command(os.Args[0], "-test.run=^TestTrapChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LAZYFS_TRAP_CHILD="+fs.Dir())
		if syncfs {
			cmd.Env = append(cmd.Env, "LAZYFS_TRAP_SYNCFS=1")
		}
		cmd.Stderr = os.Stderr
		c, err := fs.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for l := range c.Lines() {
			lines = append(lines, l)
			if l == "written" {
				c.Kill()
			}
		}
		c.Wait()
		if !slices.Contains(lines, "written") {
			t.Fatalf("child said %q", lines)
		}
		if err := fs.Cut(); err != nil {
			t.Fatal(err)
		}
		if got := fs.Stats().Syncfs; got != map[bool]int{false: 0, true: 1}[syncfs] {
			t.Errorf("syncfs=%v: the filesystem saw %d syncfs calls", syncfs, got)
		}
		if syncfs {
			checkFiles(t, fs.Backing(), map[string]string{"f": "synced by syncfs"}, nil)
		} else {
			checkFiles(t, fs.Backing(), nil, []string{"f"})
		}
	}
}

// TestTrapChild is the child of TestTrapSyncfs.
func TestTrapChild(t *testing.T) {
	m := os.Getenv("LAZYFS_TRAP_CHILD")
	if m == "" {
		t.Skip("child of TestTrapSyncfs only")
	}
	if _, err := lazyfs.TrapSyncfsViaParent(); err != nil {
		t.Fatal(err)
	}
	write(t, m, "f", "synced by syncfs", false)
	if os.Getenv("LAZYFS_TRAP_SYNCFS") != "" {
		d, err := os.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Syncfs(int(d.Fd())); err != nil {
			t.Fatal(err)
		}
	}
	os.Stdout.WriteString("written\n")
	time.Sleep(time.Minute) // killed
}

func create(t *testing.T, m, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(m, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func write(t *testing.T, m, name, data string, sync bool) {
	t.Helper()
	f := create(t, m, name)
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	if err := fsutil.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

func checkFiles(t *testing.T, dir string, want map[string]string, absent []string) {
	t.Helper()
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != w {
			t.Errorf("%s after the cut: %q, %v; want %q", name, got, err, w)
		}
	}
	for _, name := range absent {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s survived the cut", name)
		}
	}
}
