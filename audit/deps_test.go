package audit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDaemon: what an auditor imports must not pull in the daemon, or
// the auditor would trust the code under audit.
func TestNoDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"/site", "/replica", "/registry", "/internal/demo"} {
			if strings.HasPrefix(p, "github.com/chancery-gov/chancery") && strings.HasSuffix(p, banned) {
				t.Errorf("audit depends on %s", p)
			}
		}
	}
}
