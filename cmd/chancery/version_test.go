package main

import (
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/site"
)

// TestVersion: "chancery version", "--version" and "version --json" say
// the same build, with the Go toolchain that made this binary.
func TestVersion(t *testing.T) {
	line, err := chancery(t, "", "version")
	if err != nil || !strings.HasPrefix(line, "chancery ") || !strings.Contains(line, runtime.Version()) {
		t.Fatalf("chancery version: %q, %v", line, err)
	}
	flag, err := chancery(t, "", "--version")
	if err != nil || flag != line {
		t.Fatalf("chancery --version: %q, %v; want %q", flag, err, line)
	}
	out, err := chancery(t, "", "version", "--json")
	var b site.Build
	if err != nil || json.Unmarshal([]byte(out), &b) != nil || b.Go != runtime.Version() || b.Version == "" {
		t.Fatalf("chancery version --json: %q, %v", out, err)
	}
}

// TestBuildInfoMetric: a running site exports chancery_build_info with
// the binary's version, revision and Go version.
func TestBuildInfoMetric(t *testing.T) {
	dir, url := startHome(t)
	hc, err := pinnedClient(state.Layout{Dir: dir}.Charter(), "home")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	b := site.ReadBuild()
	want := `chancery_build_info{go="` + runtime.Version() + `",revision="` + b.Revision + `",version="` + b.Version + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %s:\n%s", want, lineWith(string(body), "build_info"))
	}
}
