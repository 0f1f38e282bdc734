package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDocsCLIUpToDate regenerates the command reference and compares it
// with docs/cli/: a flag, command or help text changed without running
// "go generate ./cmd/chancery" fails here, as does a page left behind by a
// removed command.
func TestDocsCLIUpToDate(t *testing.T) {
	checkGenerated(t, "cli", "*.md", writeCLIDocs)
}

// TestManPagesUpToDate does the same for the man pages in docs/man/.
func TestManPagesUpToDate(t *testing.T) {
	checkGenerated(t, "man", "*.1", writeManPages)
}

// checkGenerated writes the pages matching pattern with gen into a fresh
// directory and compares them, page by page, with docs/<dir>.
func checkGenerated(t *testing.T, dir, pattern string, gen func(string) error) {
	t.Helper()
	fresh := t.TempDir()
	if err := gen(fresh); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "docs", dir)
	want, err := filepath.Glob(filepath.Join(fresh, pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 20 {
		t.Fatalf("only %d pages generated: the walk is broken", len(want))
	}
	have, err := filepath.Glob(filepath.Join(committed, pattern))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range have {
		names[filepath.Base(f)] = true
	}
	for _, f := range want {
		name := filepath.Base(f)
		delete(names, name)
		got, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Errorf("docs/%s/%s is missing: run go generate ./cmd/chancery", dir, name)
			continue
		}
		gen, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, gen) {
			t.Errorf("docs/%s/%s is stale: run go generate ./cmd/chancery", dir, name)
		}
	}
	for name := range names {
		t.Errorf("docs/%s/%s documents no command: run go generate ./cmd/chancery", dir, name)
	}
}

// TestEveryLeafCommandHasExample: a person in a crisis copies an example
// before reading a synopsis, so every command they can run has one.
func TestEveryLeafCommandHasExample(t *testing.T) {
	leaves := leafCommands(docRoot())
	if len(leaves) < 20 {
		t.Fatalf("only %d leaf commands found: the walk is broken", len(leaves))
	}
	for _, c := range leaves {
		if c.Example == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
	}
}
