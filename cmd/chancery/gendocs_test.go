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
	fresh := t.TempDir()
	if err := writeCLIDocs(fresh); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "docs", "cli")
	want, err := filepath.Glob(filepath.Join(fresh, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	have, err := filepath.Glob(filepath.Join(committed, "*.md"))
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
			t.Errorf("docs/cli/%s is missing: run go generate ./cmd/chancery", name)
			continue
		}
		gen, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, gen) {
			t.Errorf("docs/cli/%s is stale: run go generate ./cmd/chancery", name)
		}
	}
	for name := range names {
		t.Errorf("docs/cli/%s documents no command: run go generate ./cmd/chancery", name)
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
