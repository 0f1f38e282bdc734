package mutate

import (
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

const guardSrc = `package guard

import "errors"

// Check refuses negative sizes and sizes past max.
func Check(size, max int) error {
	if size < 0 {
		return errors.New("negative")
	}
	if size > max && max != 0 {
		return errors.New("too big")
	}
	return nil
}

func other(a, b int) bool { return a == b }
`

// TestFind: each operator appears where it should, only in the chosen
// functions, and every mutant still parses.
func TestFind(t *testing.T) {
	ms, err := Find("guard.go", []byte(guardSrc), regexp.MustCompile("^Check$"))
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, m := range ms {
		if m.Func != "Check" {
			t.Errorf("mutant in %s, outside the chosen function", m.Func)
		}
		ops = append(ops, m.Op)
		if _, err := parser.ParseFile(token.NewFileSet(), "m.go", m.Apply([]byte(guardSrc)), 0); err != nil {
			t.Errorf("%s at %d:%d does not parse: %v", m.Op, m.Line, m.Col, err)
		}
	}
	for _, want := range []string{"negate <", "boundary <", "disable guard", "negate >", "boundary >", "&& to ||", "negate !="} {
		if !slices.Contains(ops, want) {
			t.Errorf("no %q mutant among %q", want, ops)
		}
	}
	all, err := Find("guard.go", []byte(guardSrc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ms)+1 { // other's a == b
		t.Errorf("%d mutants over every function, want %d", len(all), len(ms)+1)
	}
	// A guard disabled keeps its condition's names in use.
	for _, m := range ms {
		if m.Op == "disable guard" && m.Line == 7 {
			if got := string(m.Apply([]byte(guardSrc))[m.Start : m.Start+len(m.Text)]); got != "false && (size < 0)" {
				t.Errorf("disabled guard reads %q", got)
			}
		}
	}
}

// TestRun runs the mutants of a small package against a test that checks
// each guard one step past its limit but never at it (size 0, size equal
// to max): the two boundary mutants must survive, every other be killed.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary per mutant")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":   "module example.com/guard\n\ngo 1.26\n",
		"guard.go": guardSrc,
		"guard_test.go": `package guard

import "testing"

func TestCheck(t *testing.T) {
	if Check(-1, 10) == nil || Check(11, 10) == nil || Check(5, 10) != nil || Check(11, 0) != nil {
		t.Fatal("guard")
	}
}
`,
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Dir: dir, Funcs: regexp.MustCompile("^Check$"), Timeout: 2 * time.Minute}
	ms, err := Mutants(o)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Run(context.Background(), o, ms)
	if err != nil {
		t.Fatal(err)
	}
	var survived []string
	for _, r := range Surviving(rs) {
		survived = append(survived, r.Op)
	}
	if !slices.Equal(survived, []string{"boundary <", "boundary >"}) {
		t.Fatalf("survivors %q, want only the two untested boundaries", survived)
	}
	s := Tally(rs)
	if s.Survived != 2 || s.Killed != len(ms)-2 || s.NotRun != 0 {
		t.Fatalf("tally %+v of %d mutants", s, len(ms))
	}
	// The source was never touched: mutants go through -overlay.
	if b, _ := os.ReadFile(filepath.Join(dir, "guard.go")); string(b) != guardSrc {
		t.Fatal("guard.go changed")
	}
}
