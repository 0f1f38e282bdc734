package s3test_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/s3test"
)

func TestStart(t *testing.T) {
	cfg := s3test.Start(t)
	resp, err := http.Get("http://" + cfg.Endpoint + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestHelperMissingBinary is run as a subprocess by TestCIMayNotSkip.
func TestHelperMissingBinary(t *testing.T) {
	if os.Getenv("S3TEST_HELPER") == "" {
		t.Skip("helper")
	}
	s3test.Start(t)
}

// TestCIMayNotSkip: with no versitygw to be found, Start skips locally
// but fails when CI is set.
func TestCIMayNotSkip(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperMissingBinary$", "-test.v", "-test.count=1")
		cmd.Env = []string{"S3TEST_HELPER=1", "PATH=", "GOPATH=" + t.TempDir(), "HOME=" + t.TempDir(), "CI=" + ci}
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP")):
			t.Errorf("without CI: want a skip, got %v:\n%s", err, out)
		case ci != "" && (err == nil || !strings.Contains(string(out), "CI is set")):
			t.Errorf("with CI: want a failure, got %v:\n%s", err, out)
		}
	}
}
