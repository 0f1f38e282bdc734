package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes on dir (created if needed)
// until the test ends: a small filesystem a test can fill, to see how
// code behaves on a full disk. It skips the test when mounting is not
// permitted (it needs root), except under CI=true, where the fault must
// be tested and the test fails instead. The cleanup unmounts, lazily if
// the test left files open, so that nothing stays mounted; register it
// before anything that holds files on dir, so that those close first.
func MountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs to fill (needs root): %v: %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", dir).Run()
			t.Errorf("umount %s: %v: %s (detached lazily)", dir, err, out)
		}
	})
}
