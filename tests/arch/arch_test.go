// Package arch_test keeps the packages layered as docs/architecture.md
// draws them: every package sits on one layer and imports only packages
// of lower layers, or of its own folder tree on its own layer (store/fs
// may import store). A new package must be placed here before it builds
// green, so the picture cannot drift from the code.
package arch_test

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/chancery-gov/chancery"

// layers is the allowed layering, lowest first. A pattern ending in "/..."
// covers a folder and everything below it.
var layers = [][]string{
	// Leaf helpers: no project imports.
	{"internal/fsutil", "internal/harden", "internal/padme", "internal/testnet", "internal/s3test", "internal/pgcluster", "internal/loadgen", "internal/browsertest", "internal/demo/demogen"},
	// Private keys on disk, in age envelopes; PostgreSQL clusters for
	// tests (over internal/pgcluster).
	{"internal/keyfile", "internal/pgtest"},
	// Pure codecs of the services: SD-JWT knows nothing of the state.
	{"services/extract/sdjwt"},
	// The foundations know nothing of sites or of each other.
	{"charter", "ledger", "seal", "store", "store/fs", "store/s3", "store/storetest"},
	// What a border guard's verifier imports alone: the extracts' formats
	// and their offline checks, over the charter and the ledger only.
	{"services/extract/offline"},
	// Helpers over the charter and the key hierarchy.
	{"internal/pintls", "internal/state", "internal/lazyfs", "store/location"},
	// The sealed write path.
	{"registry"},
	// Pure continuity formats and rules; live shipping; public notices.
	{"continuity", "replica", "services/notice"},
	// Offline bundles and the auditor's checks; declared procedures and
	// cases, over the registries (below the wire types that carry them);
	// access rules and entries, below the services that apply them.
	{"bundle", "audit", "services/procedure", "services/access"},
	// Wire types and the Go client of every endpoint: below the guest,
	// which calls other sites (fences, drill reports, fills) through it.
	// Founding the Demo Republic's state (its charter declares the
	// procedures).
	// Messages to citizens, sealed records read under the access rules.
	{"siteapi", "services/message", "internal/demo/found"},
	// One guest at one site, and the services an active guest runs.
	{"guest", "services/...", "connect/...", "site/ui"},
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
		module + "/ledger":                   3,
		module + "/store":                    3,
		module + "/store/fs":                 3,
		module + "/storefs":                  -1,
		module + "/guest":                    10,
		module + "/site":                     11,
		module + "/cmd/chancery":             13,
		module + "/internal/demo":            12,
		module + "/internal/fsutil":          0,
		module + "/services/extract/offline": 4,
		module + "/services/extract":         10,
		"example.com/other":                  -1,
	} {
		if got := layerOf(pkg); got != want {
			t.Errorf("layerOf(%s) = %d, want %d", pkg, got, want)
		}
	}
	if !sameTree(module+"/store/fs", module+"/store") || sameTree(module+"/ledger", module+"/seal") {
		t.Error("sameTree")
	}

}

// TestGuestServesNoHTTP: the guest's state machine is kept apart from its
// transport. Package guest may reach other sites through an HTTP client
// it is handed, but serves nothing: no handler, request or response
// writer appears in it; those are site's.
func TestGuestServesNoHTTP(t *testing.T) {
	files, err := filepath.Glob("../../guest/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("guest's files: %d, %v", len(files), err)
	}
	server := map[string]bool{"Handler": true, "HandlerFunc": true, "ResponseWriter": true, "Request": true, "ServeMux": true, "Server": true}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if se, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := se.X.(*ast.Ident); ok && (id.Name == "http" && server[se.Sel.Name] || id.Name == "httptest") {
					t.Errorf("%s: %s.%s: the guest serves no HTTP (site does)", fset.Position(se.Pos()), id.Name, se.Sel.Name)
				}
			}
			return true
		})
	}
}
