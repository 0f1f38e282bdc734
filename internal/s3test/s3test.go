// Package s3test starts a real S3 server (versitygw with its posix backend)
// for tests and benchmarks, so the s3 store backend is tested against a
// server rather than a mock.
package s3test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config is how to reach the server Start launched.
type Config struct {
	Endpoint  string // host:port, plain HTTP on loopback
	AccessKey string
	SecretKey string
	Region    string
	// Root is the posix backend's directory: every bucket is a
	// subdirectory, every object a file (tests grep it for leaks).
	Root string
}

// Binary is the server's program name; install it with
// go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
const Binary = "versitygw"

// FindBinary looks in PATH, then in $(go env GOPATH)/bin, where go install
// puts it without touching PATH.
func FindBinary() (string, error) {
	if p, err := exec.LookPath(Binary); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", Binary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("s3test: %s not found in PATH or GOPATH/bin (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)", Binary)
}

// Start launches versitygw on a free loopback port with a posix backend in
// a temporary directory and stops it when the test ends. Bucket versioning
// is switched on (a separate versioning directory) because S3 object lock
// requires it; buckets created without object lock stay unversioned.
//
// Without the binary the test is skipped, except when the environment
// variable CI is set: there a missing S3 server is a failure, so CI cannot
// pass while silently skipping the S3 half of the backend suite.
func Start(t testing.TB) Config {
	t.Helper()
	bin, err := FindBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so the S3 tests may not be skipped", err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	cfg := Config{
		AccessKey: "chancery-test",
		SecretKey: "chancery-test-secret-key",
		Region:    "us-east-1",
		Root:      filepath.Join(dir, "root"),
	}
	verDir := filepath.Join(dir, "versions")
	for _, d := range []string{cfg.Root, verDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The port is chosen by binding :0 and releasing it; another process
	// can take it in between, so a server that dies at startup is retried.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
		var out bytes.Buffer
		cmd := exec.Command(bin,
			"--access", cfg.AccessKey, "--secret", cfg.SecretKey, "--region", cfg.Region,
			"--port", cfg.Endpoint, "--quiet",
			"posix", "--versioning-dir", verDir, cfg.Root)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("s3test: start %s: %v", bin, err)
		}
		// exited is closed, not sent on, so both waitReady and stop can
		// watch it.
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if err := waitReady(cfg.Endpoint, exited); err != nil {
			stop(cmd, exited)
			lastErr = fmt.Errorf("%w; output:\n%s", err, out.String())
			continue
		}
		t.Cleanup(func() { stop(cmd, exited) })
		return cfg
	}
	t.Fatalf("s3test: versitygw did not start: %v", lastErr)
	return cfg
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("s3test: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server answers HTTP at all; any status (an
// anonymous request gets 403) means the S3 API is up.
func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("s3test: versitygw exited at startup")
		default:
		}
		resp, err := client.Get("http://" + endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("s3test: versitygw not ready after 20s")
}

// stop asks the server to exit and kills it if it does not; only the
// process this package started is signalled.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}
