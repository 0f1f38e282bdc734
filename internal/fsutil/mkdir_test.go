package fsutil_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/lazyfs"
)

// TestMkdirAllSurvivesPowerLoss: a file made durable in directories that
// MkdirAll created survives a power cut (on lazyfs, which forgets names
// whose directory was not synced); with os.MkdirAll it does not.
func TestMkdirAllSurvivesPowerLoss(t *testing.T) {
	for _, durable := range []bool{true, false} {
		fs := lazyfs.MountForTest(t)
		dir := filepath.Join(fs.Dir(), "a", "b", "c")
		mkdir := os.MkdirAll
		if durable {
			mkdir = fsutil.MkdirAll
		}
		if err := mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := fsutil.Replace(filepath.Join(dir, "f"), []byte("kept"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fs.Cut(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(fs.Backing(), "a", "b", "c", "f"))
		switch {
		case durable && (err != nil || string(got) != "kept"):
			t.Errorf("after fsutil.MkdirAll and a power cut: %q, %v", got, err)
		case !durable && err == nil:
			t.Errorf("after os.MkdirAll the file survived the power cut: the test cannot tell the two apart")
		}
	}
}
