// Package mutate is a small mutation tester built on go/ast. It makes
// one-token changes to the functions chosen in a package — a comparison
// negated or moved across its boundary, && swapped for ||, an if's
// condition negated, a guard (an if whose body returns) disabled — and
// runs the package's tests against each, through go test's -overlay, so
// the source tree is never touched. A mutant the tests do not fail
// survived: either a test is missing, or the mutant is equivalent (it
// cannot change behaviour) and says why in docs/testing.md.
//
// gremlins (github.com/go-gremlins/gremlins) was tried first; it cannot
// limit mutants to chosen functions nor the tests run to a -run pattern,
// and a run of the whole site package per mutant takes minutes on a
// shared two-core machine.
package mutate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Mutant is one change to one file: bytes [Start, End) replaced by Text.
type Mutant struct {
	File       string // absolute path
	Line, Col  int
	Func       string // the enclosing function, Recv.Name or Name
	Op         string // the operator, e.g. "negate ==" or "disable guard"
	Start, End int
	Text       string
}

// Pos is the mutant's file:line:col, relative to dir if it is under it.
func (m Mutant) Pos(dir string) string {
	f := m.File
	if abs, err := filepath.Abs(dir); err == nil {
		if r, err := filepath.Rel(abs, f); err == nil && !strings.HasPrefix(r, "..") {
			f = r
		}
	}
	return fmt.Sprintf("%s:%d:%d", f, m.Line, m.Col)
}

// Apply returns src with the mutant's change made.
func (m Mutant) Apply(src []byte) []byte {
	out := make([]byte, 0, len(src)+len(m.Text))
	out = append(out, src[:m.Start]...)
	out = append(out, m.Text...)
	return append(out, src[m.End:]...)
}

var negated = map[token.Token]token.Token{
	token.EQL: token.NEQ, token.NEQ: token.EQL,
	token.LSS: token.GEQ, token.GEQ: token.LSS,
	token.GTR: token.LEQ, token.LEQ: token.GTR,
}

var boundary = map[token.Token]token.Token{
	token.LSS: token.LEQ, token.LEQ: token.LSS,
	token.GTR: token.GEQ, token.GEQ: token.GTR,
}

// Find lists the mutants of one Go source file, in the functions whose
// name matches funcs (nil: every function).
func Find(path string, src []byte, funcs *regexp.Regexp) ([]Mutant, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []Mutant
	add := func(fn string, pos token.Pos, op string, start, end int, text string) {
		p := fset.Position(pos)
		out = append(out, Mutant{File: path, Line: p.Line, Col: p.Column, Func: fn, Op: op, Start: start, End: end, Text: text})
	}
	off := func(p token.Pos) int { return fset.Position(p).Offset }
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) == 1 {
			name = recvName(fd.Recv.List[0].Type) + "." + name
		}
		if funcs != nil && !funcs.MatchString(name) {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				o := off(n.OpPos)
				l := len(n.Op.String())
				if to, ok := negated[n.Op]; ok {
					add(name, n.OpPos, "negate "+n.Op.String(), o, o+l, to.String())
				}
				if to, ok := boundary[n.Op]; ok {
					add(name, n.OpPos, "boundary "+n.Op.String(), o, o+l, to.String())
				}
				switch n.Op {
				case token.LAND:
					add(name, n.OpPos, "&& to ||", o, o+l, "||")
				case token.LOR:
					add(name, n.OpPos, "|| to &&", o, o+l, "&&")
				}
			case *ast.IfStmt:
				c := n.Cond
				s, e := off(c.Pos()), off(c.End())
				text := string(src[s:e])
				if returns(n.Body) {
					// The guard disabled: false && keeps every name the
					// condition uses in use, so the mutant compiles.
					add(name, c.Pos(), "disable guard", s, e, "false && ("+text+")")
				} else if _, isBin := c.(*ast.BinaryExpr); !isBin {
					// Comparisons are negated above; negate the rest
					// (calls, names, !x).
					add(name, c.Pos(), "negate if", s, e, "!("+text+")")
				}
			}
			return true
		})
	}
	return out, nil
}

// returns reports whether a block's last statement returns (a guard).
func returns(b *ast.BlockStmt) bool {
	if len(b.List) == 0 {
		return false
	}
	_, ok := b.List[len(b.List)-1].(*ast.ReturnStmt)
	return ok
}

func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr:
		return recvName(t.X)
	case *ast.IndexListExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

// Status is what became of a mutant.
type Status string

// The statuses: killed by a failing test (or a timeout), survived, or not
// viable (it did not compile: not counted).
const (
	Killed     Status = "KILLED"
	TimedOut   Status = "TIMED OUT"
	Survived   Status = "SURVIVED"
	NotViable  Status = "NOT VIABLE"
	NotRun     Status = "NOT RUN"
	BuildError Status = "ERROR"
)

// Options configure a run over one package.
type Options struct {
	Dir string // the package directory
	// Tests are more package directories whose tests run against each
	// mutant too: the guards of one package (guest) whose tests are in
	// another (site's, over HTTP).
	Tests   []string
	Files   *regexp.Regexp // file base names to mutate (nil: all non-test .go files)
	Funcs   *regexp.Regexp // functions to mutate (nil: all)
	Run     string         // go test -run pattern ("" : all tests)
	Short   bool           // go test -short
	Timeout time.Duration  // per mutant (default 3m)
	Budget  time.Duration  // the whole run; mutants left are NOT RUN (0: none)
	Log     func(format string, args ...any)
}

// Result is one mutant's outcome.
type Result struct {
	Mutant
	Status  Status
	Elapsed time.Duration
}

// Mutants lists the mutants Options choose, in file and line order.
func Mutants(o Options) ([]Mutant, error) {
	names, err := filepath.Glob(filepath.Join(o.Dir, "*.go"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var all []Mutant
	for _, n := range names {
		base := filepath.Base(n)
		if strings.HasSuffix(base, "_test.go") || o.Files != nil && !o.Files.MatchString(base) {
			continue
		}
		src, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(n)
		if err != nil {
			return nil, err
		}
		ms, err := Find(abs, src, o.Funcs)
		if err != nil {
			return nil, fmt.Errorf("mutate %s: %w", n, err)
		}
		all = append(all, ms...)
	}
	return all, nil
}

// Run tests every mutant and returns the results; it stops starting new
// mutants when ctx ends or the budget is spent.
func Run(ctx context.Context, o Options, ms []Mutant) ([]Result, error) {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	tmp, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// A control run: the tests must pass unmutated, or every mutant
	// would look killed.
	if st, out := runTests(ctx, o, ""); st != Survived {
		return nil, fmt.Errorf("mutate: the tests of %s fail without any mutant (%s):\n%s", o.Dir, st, tail(out))
	}
	start := time.Now()
	res := make([]Result, 0, len(ms))
	for i, m := range ms {
		if ctx.Err() != nil || o.Budget > 0 && time.Since(start) > o.Budget {
			res = append(res, Result{Mutant: m, Status: NotRun})
			continue
		}
		src, err := os.ReadFile(m.File)
		if err != nil {
			return nil, err
		}
		mutated := filepath.Join(tmp, fmt.Sprintf("m%d.go", i))
		if err := os.WriteFile(mutated, m.Apply(src), 0o600); err != nil {
			return nil, err
		}
		ov, err := json.Marshal(map[string]map[string]string{"Replace": {m.File: mutated}})
		if err != nil {
			return nil, err
		}
		ovPath := filepath.Join(tmp, "overlay.json")
		if err := os.WriteFile(ovPath, ov, 0o600); err != nil {
			return nil, err
		}
		t0 := time.Now()
		st, _ := runTests(ctx, o, ovPath)
		r := Result{Mutant: m, Status: st, Elapsed: time.Since(t0)}
		o.Log("%s %s %s (%s) %v", r.Status, m.Pos("."), m.Op, m.Func, r.Elapsed.Round(time.Millisecond))
		res = append(res, r)
		_ = os.Remove(mutated)
	}
	return res, nil
}

// runTests runs the package's tests, with the overlay if one is given.
func runTests(ctx context.Context, o Options, overlay string) (Status, []byte) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	args := []string{"test", "-count=1", "-failfast", "-timeout", o.Timeout.String()}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	if o.Run != "" {
		args = append(args, "-run", o.Run)
	}
	if o.Short {
		args = append(args, "-short")
	}
	args = append(args, ".")
	for _, d := range o.Tests {
		rel, err := relDir(o.Dir, d)
		if err != nil {
			return BuildError, []byte(err.Error())
		}
		args = append(args, rel)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Dir
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case err == nil:
		return Survived, out.Bytes()
	case ctx.Err() != nil:
		return TimedOut, out.Bytes()
	case bytes.Contains(out.Bytes(), []byte("[build failed]")) || bytes.Contains(out.Bytes(), []byte("[setup failed]")):
		return NotViable, out.Bytes()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return BuildError, out.Bytes()
	}
	return Killed, out.Bytes()
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Score is killed (timeouts included) over killed plus survived.
type Score struct {
	Killed, Survived, NotViable, NotRun int
}

// Percent is the mutation score, 0–100.
func (s Score) Percent() float64 {
	if s.Killed+s.Survived == 0 {
		return 100
	}
	return 100 * float64(s.Killed) / float64(s.Killed+s.Survived)
}

// Tally counts results.
func Tally(rs []Result) Score {
	var s Score
	for _, r := range rs {
		switch r.Status {
		case Killed, TimedOut:
			s.Killed++
		case Survived:
			s.Survived++
		case NotViable:
			s.NotViable++
		default:
			s.NotRun++
		}
	}
	return s
}

// Surviving returns the survivors, sorted by position.
func Surviving(rs []Result) []Result {
	var out []Result
	for _, r := range rs {
		if r.Status == Survived {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Result) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Start - b.Start
	})
	return out
}

// relDir is the package directory d (relative to the working directory)
// as go test names it from dir.
func relDir(dir, d string) (string, error) {
	ad, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	at, err := filepath.Abs(d)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(ad, at)
	if err != nil {
		return "", fmt.Errorf("mutate: tests in %s: %w", d, err)
	}
	if !strings.HasPrefix(rel, ".") {
		rel = "./" + rel
	}
	return rel, nil
}
