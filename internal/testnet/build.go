package testnet

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const (
	modulePath  = "github.com/chancery-gov/chancery"
	buildPrefix = "chancery-testnet-"
)

// BuildChancery builds ./cmd/chancery and returns the binary's path; see
// Build.
func BuildChancery(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/chancery")
}

// Build compiles the main package pkg, a path relative to the chancery
// module root such as "./cmd/chancery", and returns the binary's path.
//
// Each package is built once per test binary run: binaries go into a
// directory under os.TempDir named after the test binary's pid, so every
// test in the package shares one build without package-level state, and
// a file lock makes parallel tests wait for the first build rather than
// repeat it. Directories left by test binaries that have exited are
// removed here, since no hook runs when a test binary ends.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("testnet: build %s: %v", pkg, err)
	}
	sweepBuilds()
	dir := filepath.Join(os.TempDir(), buildPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testnet: build %s: %v", pkg, err)
	}
	name := strings.Trim(strings.ReplaceAll(filepath.ToSlash(filepath.Clean(pkg)), "/", "_"), "._")
	bin := filepath.Join(dir, name)

	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testnet: build %s: %v", pkg, err)
	}
	defer lock.Close() // closing releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testnet: build %s: lock: %v", pkg, err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// Built under another name and renamed, so bin exists only when
	// complete even if this build is interrupted.
	// A race-detecting test binary builds race-detecting processes, so
	// that the servers' own concurrency is checked in the race pass (Start
	// fails the test on a race report in a process's log).
	args := []string{"build", "-o", bin + ".tmp"}
	if Race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(t.Context(), "go", append(args, pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testnet: go build %s in %s: %v\n%s", pkg, root, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatalf("testnet: build %s: %v", pkg, err)
	}
	return bin
}

// moduleRoot walks up from the working directory (a test runs in its
// package's directory) to the go.mod that declares the chancery module,
// passing over nested modules such as bench/.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if declaresModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod declaring %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func declaresModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

// sweepBuilds removes build directories whose test binary has exited.
// Errors are ignored: another user's directory or a concurrent sweep is
// not this test's problem.
func sweepBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), buildPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		// ESRCH means no such process; EPERM means it lives under
		// another user, so its directory stays.
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}
