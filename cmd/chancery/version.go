package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/site"
)

// versionLine is what "chancery version" and "chancery --version" print: the
// module version, the VCS revision (marked if the checkout was modified)
// and the Go toolchain, as the build recorded them.
func versionLine(b site.Build) string {
	s := "chancery " + b.Version
	if b.Revision != "" {
		s += " (revision " + b.Revision
		if b.Time != "" {
			s += ", " + b.Time
		}
		if b.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + b.Go
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version of this binary",
		Long: `Version prints what the binary recorded of its build (runtime/debug): the
module version, the VCS revision and commit time when built from a
checkout, and the Go toolchain. A running site exports the same as the
metric chancery_build_info{version,revision,go}.`,
		Example: `  chancery version
  chancery version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printVersion(w io.Writer, asJSON bool) error {
	b := site.ReadBuild()
	if asJSON {
		return printJSON(w, b)
	}
	_, err := fmt.Fprintln(w, versionLine(b))
	return err
}
