package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestCLIDocNamesEveryFlag: docs/cli.md's section of each command (the
// "## `chancery X ...`" heading naming it) mentions every flag the command
// takes, so that a synopsis cannot lag behind the code as import's once
// lacked --batch and --passphrase-file. Old spellings (hidden) and the
// flags every site command shares (described once, in "Naming a site")
// are exempt. A section that defers to another page's CLI section
// (charter.md) is checked against that section.
func TestCLIDocNamesEveryFlag(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{} // "chancery X" → its text
	parts := strings.Split(string(b), "\n## ")
	for _, p := range parts[1:] {
		head, _, _ := strings.Cut(p, "\n")
		if !strings.HasPrefix(head, "`chancery ") {
			continue
		}
		f := strings.Fields(strings.Trim(head, "`"))
		key := f[0] + " " + f[1]
		if f[1] == "demo" && len(f) > 2 && f[2] == "gen" {
			key = "chancery demo gen"
		}
		sections[key] += p
		// A section may defer to another page's CLI section
		// ("See [charter.md § CLI](charter.md#cli)"): that is its text too.
		if i := strings.Index(p, ".md#cli)"); i >= 0 {
			page := p[strings.LastIndex(p[:i], "(")+1:]
			page, _, _ = strings.Cut(page, "#")
			other, err := os.ReadFile(filepath.Join("..", "..", "docs", page))
			if err != nil {
				t.Fatalf("docs/cli.md's section on %s defers to %s: %v", key, page, err)
			}
			_, cli, _ := strings.Cut(string(other), "\n## CLI\n")
			cli, _, _ = strings.Cut(cli, "\n## ")
			sections[key] += cli
		}
	}
	shared := map[string]bool{"help": true, "context": true, "site": true, "url": true, "charter": true, "guest": true, "state": true,
		"timeout": true, "official": true, "key": true, "passphrase-file": true, "json": true, "host": true}
	for _, c := range leafCommands(docRoot()) {
		path := strings.Fields(c.CommandPath())
		key := strings.Join(path[:min(2, len(path))], " ")
		if len(path) > 2 && path[1] == "demo" && path[2] == "gen" {
			key = "chancery demo gen"
		}
		sec, ok := sections[key]
		if !ok {
			t.Errorf("docs/cli.md has no section for %s", c.CommandPath())
			continue
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || shared[f.Name] && usesSiteFlags(c) {
				return
			}
			if !strings.Contains(sec, "--"+f.Name) {
				t.Errorf("docs/cli.md's section on %s does not mention its flag --%s", c.CommandPath(), f.Name)
			}
		})
	}
}

// usesSiteFlags says whether c takes the flags every command that talks
// to a site shares (siteFlags.register).
func usesSiteFlags(c *cobra.Command) bool {
	return c.LocalFlags().Lookup("site-id") != nil || c.LocalFlags().Lookup("url") != nil
}
