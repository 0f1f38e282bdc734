// Command mutate runs the mutation tester of internal/mutate over one
// package and prints every mutant that survived, with file:line:col, and
// the package's mutation score. `make mutate` runs it over the packages
// that hold the guards (docs/testing.md).
//
//	go run ./tools/mutate -pkg ./ledger -funcs 'OpenCheckpoint|AppendMirrored' -run 'Checkpoint|Mirror' -budget 10m
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/internal/mutate"
)

func main() {
	var (
		pkg     = flag.String("pkg", ".", "package directory")
		files   = flag.String("files", "", "regexp of file base names to mutate (default: every non-test file)")
		funcs   = flag.String("funcs", "", "regexp of functions to mutate, Name or Recv.Name (default: all)")
		run     = flag.String("run", "", "go test -run pattern")
		tests   = flag.String("tests", "", "comma-separated package directories whose tests run too (guards tested from another package)")
		short   = flag.Bool("short", false, "go test -short")
		timeout = flag.Duration("timeout", 3*time.Minute, "per mutant")
		budget  = flag.Duration("budget", 0, "the whole run; mutants left are reported NOT RUN")
		list    = flag.Bool("list", false, "list the mutants, run nothing")
		verbose = flag.Bool("v", false, "print every mutant's outcome as it comes")
	)
	flag.Parse()
	if err := mainErr(*pkg, *files, *funcs, *run, *tests, *short, *timeout, *budget, *list, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func mainErr(pkg, files, funcs, run, tests string, short bool, timeout, budget time.Duration, list, verbose bool) error {
	o := mutate.Options{Dir: pkg, Run: run, Short: short, Timeout: timeout, Budget: budget}
	if tests != "" {
		o.Tests = strings.Split(tests, ",")
	}
	var err error
	if files != "" {
		if o.Files, err = regexp.Compile(files); err != nil {
			return fmt.Errorf("-files: %w", err)
		}
	}
	if funcs != "" {
		if o.Funcs, err = regexp.Compile(funcs); err != nil {
			return fmt.Errorf("-funcs: %w", err)
		}
	}
	if verbose {
		o.Log = func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	}
	ms, err := mutate.Mutants(o)
	if err != nil {
		return err
	}
	if list {
		for _, m := range ms {
			fmt.Printf("%s %s (%s)\n", m.Pos("."), m.Op, m.Func)
		}
		fmt.Printf("%d mutants\n", len(ms))
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	rs, err := mutate.Run(ctx, o, ms)
	if err != nil {
		return err
	}
	for _, r := range mutate.Surviving(rs) {
		fmt.Printf("SURVIVED %s %s (%s)\n", r.Pos("."), r.Op, r.Func)
	}
	s := mutate.Tally(rs)
	fmt.Printf("%s: %d mutants, %d killed, %d survived, %d not viable, %d not run: score %.1f%% (%v)\n",
		pkg, len(rs), s.Killed, s.Survived, s.NotViable, s.NotRun, s.Percent(), time.Since(start).Round(time.Second))
	return nil
}
