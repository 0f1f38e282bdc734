package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

// A client context, as kubectl has them: the defaults a person's commands
// take, so that a runbook's command names a site by its id and nothing
// else. The file is written only by "chancery context" and holds paths,
// never a key or a passphrase.
type clientContext struct {
	Charter        string `yaml:"charter"`
	Guest          string `yaml:"guest"`
	Site           string `yaml:"site"`
	Official       string `yaml:"official,omitempty"`
	Key            string `yaml:"key,omitempty"`
	State          string `yaml:"state,omitempty"`
	PassphraseFile string `yaml:"passphrase_file,omitempty"`
	// URLs override the charter's address of a site (a rehearsal's
	// loopback sites, a site moved before its charter is amended).
	URLs map[string]string `yaml:"urls,omitempty"`
}

// contextsFile is the whole file: the contexts by name and the current one.
type contextsFile struct {
	Current  string                    `yaml:"current"`
	Contexts map[string]*clientContext `yaml:"contexts"`
}

// Flag annotations that tie a command's flags to the context: ctxField
// names the context field a flag defaults from; ctxAlias marks an old
// spelling of a flag, kept for one release, and names the new one.
const (
	ctxField = "chancery/context"
	ctxAlias = "chancery/deprecated-for"
	// envContext chooses the context for one command, like --context.
	envContext = "CHANCERY_CONTEXT"
)

// field returns the context's value for a field name of ctxField.
func (c *clientContext) field(name string) string {
	switch name {
	case "charter":
		return c.Charter
	case "guest":
		return c.Guest
	case "site":
		return c.Site
	case "official":
		return c.Official
	case "key":
		return c.Key
	case "state":
		return c.State
	case "passphrase-file":
		return c.PassphraseFile
	}
	return ""
}

// contextsPath is $XDG_CONFIG_HOME/chancery/contexts.yaml, or under
// ~/.config without XDG_CONFIG_HOME.
func contextsPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("contexts: no $XDG_CONFIG_HOME and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "chancery", "contexts.yaml"), nil
}

// loadContexts reads the contexts file; a missing file is no context.
func loadContexts() (*contextsFile, string, error) {
	path, err := contextsPath()
	if err != nil {
		return nil, "", err
	}
	f := &contextsFile{Contexts: map[string]*clientContext{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("contexts %s: %w", path, err)
	}
	if err := yaml.Unmarshal(b, f); err != nil {
		return nil, path, fmt.Errorf("contexts %s: %w", path, err)
	}
	if f.Contexts == nil {
		f.Contexts = map[string]*clientContext{}
	}
	return f, path, nil
}

// save writes the file atomically, mode 0600 (it names key files).
func (f *contextsFile) save(path string) error {
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("contexts %s: %w", path, err)
	}
	if err := fsutil.Replace(path, b, 0o600); err != nil {
		return fmt.Errorf("contexts %s: %w", path, err)
	}
	return nil
}

// selected returns the context a command uses: --context, else
// $CHANCERY_CONTEXT, else the current one; nil when there is none.
func selectedContext(cmd *cobra.Command) (string, *clientContext, error) {
	name := os.Getenv(envContext)
	if fl := cmd.Flags().Lookup("context"); fl != nil && fl.Changed {
		name = fl.Value.String()
	}
	f, path, err := loadContexts()
	if err != nil {
		return "", nil, err
	}
	explicit := name != ""
	if name == "" {
		name = f.Current
	}
	if name == "" {
		return "", nil, nil
	}
	c, ok := f.Contexts[name]
	if !ok {
		if explicit {
			return "", nil, fmt.Errorf("context %q is not in %s (chancery context list)", name, path)
		}
		return "", nil, fmt.Errorf("the current context %q is not in %s: chancery context use NAME", name, path)
	}
	return name, c, nil
}

// applyContext runs before every command: it warns about each old flag
// spelling given, then fills every flag tied to a context field that the
// command line left unset (by the flag or any alias of it) from the
// selected context.
func applyContext(cmd *cobra.Command) error {
	fs := cmd.Flags()
	given := map[string]bool{}
	fs.VisitAll(func(fl *pflag.Flag) {
		if !fl.Changed {
			return
		}
		if to := fl.Annotations[ctxAlias]; len(to) > 0 {
			warnDeprecated(cmd.ErrOrStderr(), "--"+fl.Name, to[0])
		}
		for _, field := range fl.Annotations[ctxField] {
			given[field] = true
		}
	})
	if cmd.Name() == "context" || (cmd.Parent() != nil && cmd.Parent().Name() == "context") {
		return nil
	}
	_, c, err := selectedContext(cmd)
	if err != nil || c == nil {
		return err
	}
	var setErr error
	fs.VisitAll(func(fl *pflag.Flag) {
		fields := fl.Annotations[ctxField]
		if len(fields) == 0 || len(fl.Annotations[ctxAlias]) > 0 || given[fields[0]] || setErr != nil {
			return
		}
		if v := c.field(fields[0]); v != "" {
			if err := fs.Set(fl.Name, v); err != nil {
				setErr = fmt.Errorf("context: --%s %q: %w", fl.Name, v, err)
			}
			// Set marks the flag as given; it was not, by the person.
			fl.Changed = false
		}
	})
	if setErr != nil {
		return setErr
	}
	// The address of the site the command talks to, if the context
	// overrides the charter's.
	if u, s := fs.Lookup("url"), fs.Lookup("site"); u != nil && s != nil && !u.Changed && len(s.Annotations[ctxField]) > 0 {
		if v := c.URLs[s.Value.String()]; v != "" && u.Value.String() == "" {
			if err := fs.Set("url", v); err != nil {
				return fmt.Errorf("context: --url %q: %w", v, err)
			}
			u.Changed = false
		}
	}
	return nil
}

// warnDeprecated tells, on stderr, which flag replaces an old spelling.
func warnDeprecated(w io.Writer, old, now string) {
	fmt.Fprintf(w, "chancery: warning: %s is deprecated and will be removed in the next release: use %s\n", old, now)
}

// tieContext ties flag name to a context field (it then defaults from the
// selected context).
func tieContext(fs *pflag.FlagSet, name, field string) {
	_ = fs.SetAnnotation(name, ctxField, []string{field})
}

// passphraseFlag registers --passphrase-file, tied to the context.
func passphraseFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "passphrase-file", "", "file holding the key file's passphrase (default: $"+keyfile.EnvPassphrase+", or asked on a terminal)")
	tieContext(fs, "passphrase-file", "passphrase-file")
}

// offlineSignerFlags registers what an official signing a file offline
// gives (order sign, notice sign): --official, --key and
// --passphrase-file, each tied to the context.
func offlineSignerFlags(fs *pflag.FlagSet, official, key, pass *string) {
	fs.StringVar(official, "official", "", "your official id in the charter (required; default: the context's)")
	tieContext(fs, "official", "official")
	fs.StringVar(key, "key", "", "your age-encrypted Ed25519 key file (required; default: the context's)")
	tieContext(fs, "key", "key")
	passphraseFlag(fs, pass)
}

// aliasFlag marks an old spelling: hidden from help, tied to the same
// context field as the new flag, and warned about when given.
func aliasFlag(fs *pflag.FlagSet, old, now string) {
	_ = fs.MarkHidden(old)
	_ = fs.SetAnnotation(old, ctxAlias, []string{now})
	if fl := fs.Lookup(strings.TrimPrefix(strings.Fields(now)[0], "--")); fl != nil {
		if f := fl.Annotations[ctxField]; len(f) > 0 {
			_ = fs.SetAnnotation(old, ctxField, f)
		}
	}
}

func newContextCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Name the charter, site, official and key your commands use, as kubectl contexts do",
		Long: `A context holds the defaults of your commands: the guest's charter (which
gives every site's address and pinned TLS key), the guest, the site to
talk to, and the official with their key file. With a current context a
command needs no --charter, --guest, --site, --official or --key: the
runbook's commands stay short. A flag given on the command line wins.

Contexts live in $XDG_CONFIG_HOME/chancery/contexts.yaml (default
~/.config/chancery/contexts.yaml), mode 0600. The file holds paths only,
never a key or a passphrase. --context NAME or $CHANCERY_CONTEXT chooses
another context for one command.`,
	}
	cmd.AddCommand(newContextAddCmd(), newContextUseCmd(), newContextListCmd(), newContextShowCmd())
	return cmd
}

func newContextAddCmd() *cobra.Command {
	var c clientContext
	var use bool
	var urls []string
	cmd := &cobra.Command{
		Use:   "add NAME --charter FILE --site ID [--guest G] [--official ID --key FILE]",
		Short: "Add (or replace) a context, checked against the charter",
		Long: `Add writes a context. The charter is verified and the site must be one of
its sites; the guest defaults to the charter's. Paths are stored absolute.
The first context added becomes the current one (--use makes any added
context current).`,
		Example: `  chancery context add north --charter charter.yaml --site embassy-north \
      --official cio --key keys/official-cio.key
  chancery records get population DR-0001      # at embassy-north, as cio`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, u := range urls {
				id, addr, ok := strings.Cut(u, "=")
				if !ok || id == "" || addr == "" {
					return fmt.Errorf("context add: --url %q: want SITE=URL", u)
				}
				if c.URLs == nil {
					c.URLs = map[string]string{}
				}
				c.URLs[id] = addr
			}
			return runContextAdd(cmd.OutOrStdout(), args[0], c, use)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.Charter, "charter", "", "the guest's charter: sites, addresses, pinned TLS keys (required)")
	fl.StringVar(&c.Site, "site", "", "the site's id in the charter that commands talk to (required)")
	fl.StringVar(&c.Guest, "guest", "", "the guest (default: the charter's guest)")
	fl.StringVar(&c.Official, "official", "", "the official who signs requests and orders")
	fl.StringVar(&c.Key, "key", "", "the official's sealed key file")
	fl.StringVar(&c.State, "state", "", "a state directory (chancery init), for commands that work on one")
	fl.StringVar(&c.PassphraseFile, "passphrase-file", "", "a file holding the key file's passphrase (mode 0600; for rehearsals)")
	fl.StringArrayVar(&urls, "url", nil, "SITE=URL: reach a site at this address instead of the charter's (repeatable)")
	fl.BoolVar(&use, "use", false, "make it the current context")
	_ = cmd.MarkFlagRequired("charter")
	_ = cmd.MarkFlagRequired("site")
	return cmd
}

func runContextAdd(w io.Writer, name string, c clientContext, use bool) error {
	ch, err := charter.ReadVerified(c.Charter)
	if err != nil {
		return fmt.Errorf("context add %s: --charter: %w", name, err)
	}
	if c.Guest == "" {
		c.Guest = ch.Guest.ID
	} else if c.Guest != ch.Guest.ID {
		return fmt.Errorf("context add %s: --guest %s, but %s is the charter of %s", name, c.Guest, c.Charter, ch.Guest.ID)
	}
	if _, ok := ch.Site(c.Site); !ok {
		return fmt.Errorf("context add %s: --site %q is not a site of %s's charter (%s)", name, c.Site, ch.Guest.ID, strings.Join(siteIDs(ch), ", "))
	}
	for id := range c.URLs {
		if _, ok := ch.Site(id); !ok {
			return fmt.Errorf("context add %s: --url %s=...: not a site of %s's charter", name, id, ch.Guest.ID)
		}
	}
	if c.Official != "" {
		if _, ok := ch.Official(c.Official); !ok {
			return fmt.Errorf("context add %s: --official %q is not an official of %s's charter", name, c.Official, ch.Guest.ID)
		}
	}
	for _, p := range []*string{&c.Charter, &c.Key, &c.State, &c.PassphraseFile} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return fmt.Errorf("context add %s: %w", name, err)
		}
		if _, err := os.Stat(*p); err != nil {
			return fmt.Errorf("context add %s: %w", name, err)
		}
	}
	f, path, err := loadContexts()
	if err != nil {
		return err
	}
	f.Contexts[name] = &c
	if use || f.Current == "" {
		f.Current = name
	}
	if err := f.save(path); err != nil {
		return err
	}
	fmt.Fprintf(w, "context %s: guest %s, site %s, charter %s\n", name, c.Guest, c.Site, c.Charter)
	if f.Current == name {
		fmt.Fprintf(w, "current context: %s (written to %s)\n", name, path)
	}
	return nil
}

func siteIDs(c *charter.Charter) []string {
	var ids []string
	for _, s := range c.Sites {
		ids = append(ids, s.ID)
	}
	return ids
}

func newContextUseCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "use NAME",
		Short:   "Make a context the current one",
		Example: `  chancery context use north`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, path, err := loadContexts()
			if err != nil {
				return err
			}
			if _, ok := f.Contexts[args[0]]; !ok {
				return fmt.Errorf("context use: no context %q in %s (chancery context list)", args[0], path)
			}
			f.Current = args[0]
			if err := f.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current context: %s\n", args[0])
			return nil
		},
	}
}

func newContextListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the contexts; * marks the current one",
		Example: `  chancery context list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, _, err := loadContexts()
			if err != nil {
				return err
			}
			names := make([]string, 0, len(f.Contexts))
			for n := range f.Contexts {
				names = append(names, n)
			}
			slices.Sort(names)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tGUEST\tSITE\tOFFICIAL\tCHARTER")
			for _, n := range names {
				c, mark := f.Contexts[n], ""
				if n == f.Current {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, n, c.Guest, c.Site, c.Official, c.Charter)
			}
			return tw.Flush()
		},
	}
}

func newContextShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show [NAME]",
		Short:   "Show a context (default: the current one) as YAML",
		Example: `  chancery context show`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, path, err := loadContexts()
			if err != nil {
				return err
			}
			name := f.Current
			if len(args) == 1 {
				name = args[0]
			}
			c, ok := f.Contexts[name]
			if !ok {
				return fmt.Errorf("context show: no context %q in %s", name, path)
			}
			b, err := yaml.Marshal(map[string]*clientContext{name: c})
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
