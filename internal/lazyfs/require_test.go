package lazyfs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHelperNoFUSE is run as a subprocess by TestCIMayNotSkip.
func TestHelperNoFUSE(t *testing.T) {
	if os.Getenv("LAZYFS_HELPER") == "" {
		t.Skip("helper of TestCIMayNotSkip")
	}
	require(t, "/nonexistent/fuse")
}

// TestCIMayNotSkip: without a FUSE device the power-loss tests skip
// locally, with the reason, but fail under CI=true.
func TestCIMayNotSkip(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperNoFUSE$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "LAZYFS_HELPER=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "need /dev/fuse")):
			t.Errorf("without CI: want a skip with the reason, got %v:\n%s", err, out)
		case ci != "" && (err == nil || !strings.Contains(string(out), "CI=true, so they may not be skipped")):
			t.Errorf("with CI=true: want a failure, got %v:\n%s", err, out)
		}
	}
}
