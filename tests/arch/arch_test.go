// Package arch_test keeps the packages layered as docs/architecture.md
// draws them: every package sits on one layer and imports only packages
// of lower layers, or of its own folder tree on its own layer (store/fs
// may import store). A new package must be placed here before it builds
// green, so the picture cannot drift from the code.
package arch_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/chancery-gov/chancery"

// layers is the allowed layering, lowest first. A pattern ending in "/..."
// covers a folder and everything below it.
var layers = [][]string{
	// Leaf helpers: no project imports.
	{"internal/fsutil", "internal/harden", "internal/testnet", "internal/s3test", "internal/pgtest", "internal/demo/demogen"},
	// Private keys on disk, in age envelopes.
	{"internal/keyfile"},
	// The foundations know nothing of sites or of each other.
	{"charter", "ledger", "seal", "store", "store/fs", "store/s3", "store/storetest"},
	// Helpers over the charter and the key hierarchy.
	{"internal/pintls", "internal/state", "internal/lazyfs", "store/location"},
	// The sealed write path; founding the Demo Republic's state.
	{"registry", "internal/demo/found"},
	// Pure continuity formats and rules; live shipping.
	{"continuity", "replica"},
	// Offline bundles and the auditor's checks.
	{"bundle", "audit"},
	// Wire types and the Go client of every endpoint: below the guest,
	// which calls other sites (fences, drill reports, fills) through it.
	{"siteapi"},
	// One guest at one site, and the services an active guest runs.
	{"guest", "services/...", "connect/..."},
	// HTTP only.
	{"site"},
	// The demo story and the test harness, which drive whole sites.
	{"internal/demo", "internal/statetest", "internal/mutate"},
	// What wires everything: the CLI, and the whole-system tests.
	{"cmd/...", "tests/...", "tools/..."},
}

func layerOf(pkg string) int {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	for i, l := range layers {
		for _, p := range l {
			if p == rel || (strings.HasSuffix(p, "/...") && (rel == strings.TrimSuffix(p, "/...") || strings.HasPrefix(rel, strings.TrimSuffix(p, "...")))) {
				return i
			}
		}
	}
	return -1
}

// sameTree reports whether a and b are one folder tree (one is the other
// or below it).
func sameTree(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := f[0]
		n++
		lp := layerOf(pkg)
		if lp < 0 {
			t.Errorf("%s is on no layer: place it in tests/arch/arch_test.go and docs/architecture.md", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			li := layerOf(imp)
			switch {
			case li < 0:
				// Reported on its own line.
			case li < lp:
			case li == lp && sameTree(pkg, imp):
			default:
				t.Errorf("%s (layer %d: %s) imports %s (layer %d: %s): a package may import only lower layers",
					pkg, lp, strings.Join(layers[lp], " "), imp, li, strings.Join(layers[li], " "))
			}
		}
	}
	if n < 10 {
		t.Fatalf("go list named %d packages: the test is not looking at the module", n)
	}
}

// TestLayerOf keeps the matcher honest: a rule that matched everything,
// or nothing, would let the layering test pass for any import graph.
func TestLayerOf(t *testing.T) {
	for pkg, want := range map[string]int{
		module + "/ledger":          2,
		module + "/store":           2,
		module + "/store/fs":        2,
		module + "/storefs":         -1,
		module + "/site":            9,
		module + "/cmd/chancery":    11,
		module + "/internal/demo":   10,
		module + "/internal/fsutil": 0,
		"example.com/other":         -1,
	} {
		if got := layerOf(pkg); got != want {
			t.Errorf("layerOf(%s) = %d, want %d", pkg, got, want)
		}
	}
	if !sameTree(module+"/store/fs", module+"/store") || sameTree(module+"/ledger", module+"/seal") {
		t.Error("sameTree")
	}

}
