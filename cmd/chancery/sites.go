package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chancery-gov/chancery/audit"
	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/internal/state"
	"github.com/chancery-gov/chancery/siteapi"
)

// siteFlags are how every command that talks to a site reaches it. The
// site is named once, by its id in the charter (--site); its address and
// pinned TLS key follow from the charter's site list (--url overrides the
// address), the guest from the charter, and the signer's key file from the
// state directory. Each of these defaults from the current context
// (chancery context), so that a runbook's command is short.
//
// Old spellings, kept for one release with a warning: --site URL (now
// --url), --site-id and --pin-site (now --site).
type siteFlags struct {
	stateDir, charter, site, url, guest string
	signer, keyFile, passFile           string
	asJSON                              bool
	timeout                             time.Duration
	siteID, pinSite                     string // old spellings of --site
	// who signs: "official", "host", or "" for a command that never signs.
	who string
	// homeDefault: without --site, the home (the officials' API is the
	// home's, normally).
	homeDefault bool
}

// register adds the flags; who is "official" or "host" (the kind of key
// that signs, for commands that sign), or "" for one that does not.
func (f *siteFlags) register(cmd *cobra.Command, who string) {
	f.who = who
	fl := cmd.Flags()
	fl.StringVar(&f.site, "site", "", "the site's id in the charter: its address and pinned TLS key come from there (default: the context's)")
	tieContext(fl, "site", "site")
	fl.StringVar(&f.url, "url", "", "the site's base URL, overriding the charter's (loopback may be plain http)")
	fl.StringVar(&f.charter, "charter", "", "the guest's charter: sites, addresses, pinned TLS keys (default: the context's, or STATE/charter.yaml)")
	tieContext(fl, "charter", "charter")
	fl.StringVar(&f.guest, "guest", "", "the guest id (default: the charter's or the context's)")
	tieContext(fl, "guest", "guest")
	fl.StringVar(&f.stateDir, "state", "", "a state directory holding charter.yaml and keys/ (default: the context's)")
	tieContext(fl, "state", "state")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "how long to wait for the site")
	fl.StringVar(&f.siteID, "site-id", "", "old spelling of --site")
	aliasFlag(fl, "site-id", "--site SITE-ID")
	fl.StringVar(&f.pinSite, "pin-site", "", "old spelling of --site")
	aliasFlag(fl, "pin-site", "--site SITE-ID (the charter's pinned key is always used)")
	if who == "" {
		return
	}
	if who == "official" {
		fl.StringVar(&f.signer, "official", "", "the official who signs the requests (default: the context's)")
		tieContext(fl, "official", "official")
	} else {
		fl.StringVar(&f.signer, "host", "", "the host who signs the requests (default: the host the charter names for --site)")
	}
	fl.StringVar(&f.keyFile, "key", "", "the signer's sealed key file (default: the context's, or STATE/keys/"+who+"-ID.key)")
	tieContext(fl, "key", "key")
	passphraseFlag(fl, &f.passFile)
	fl.BoolVar(&f.asJSON, "json", false, "print JSON even on a terminal (it is the default when stdout is not one)")
}

// target is a resolved site: where to send requests and who signs them.
type target struct {
	charter     *charter.Charter // nil when no charter was given (a loopback --url)
	charterFile string
	site        *charter.Site // nil without a charter
	siteID      string
	guest       string
	url         string // the site's base URL
	http        *http.Client
	signer      siteapi.Signer
	// fromContext holds the flags (charter, url) whose value the selected
	// context gave rather than the command line, and contextName the
	// context chosen by --context for this command: the next command a
	// command prints leaves out what the context will give it again.
	fromContext map[string]bool
	contextName string
}

// resolve finds the site f names, its address and client, and the guest;
// with sign it opens the signer's key file too. Errors name the flag to
// give.
func (f *siteFlags) resolve(cmd *cobra.Command, sign bool) (*target, error) {
	siteID, url := f.site, strings.TrimSuffix(f.url, "/")
	if strings.Contains(siteID, "://") {
		warnDeprecated(cmd.ErrOrStderr(), "--site URL", "--url URL for the address, and --site SITE-ID for the site's id in the charter")
		if url == "" {
			url = strings.TrimSuffix(siteID, "/")
		}
		siteID = ""
	}
	siteID = cmp.Or(siteID, f.siteID, f.pinSite)
	layout := state.Layout{Dir: f.stateDir}
	t := &target{guest: f.guest, url: url, fromContext: map[string]bool{}}
	fs := cmd.Flags()
	for _, name := range []string{"charter", "url"} {
		if fl := fs.Lookup(name); fl != nil && fl.Value.String() != "" && !fl.Changed {
			// A flag defaults to "": a value nobody gave came from the context.
			t.fromContext[name] = true
		}
	}
	if fl := fs.Lookup("context"); fl != nil && fl.Changed {
		t.contextName = fl.Value.String()
	}
	c, charterFile, err := f.charterOf()
	if err != nil {
		return nil, err
	}
	t.charterFile = charterFile
	if c != nil {
		t.charter = c
		if siteID == "" && f.homeDefault {
			if h, ok := c.Home(); ok {
				siteID = h.ID
			}
		}
		if siteID != "" {
			s, ok := c.Site(siteID)
			if !ok {
				return nil, fmt.Errorf("--site %q is not a site of %s's charter %s (its sites: %s)", siteID, c.Guest.ID, t.charterFile, strings.Join(siteIDs(c), ", "))
			}
			t.site = s
			if t.url == "" {
				t.url = strings.TrimSuffix(s.URL, "/")
			}
			if t.url == "" {
				return nil, fmt.Errorf("site %s has no url in the charter: give --url", s.ID)
			}
		}
		if t.guest == "" {
			t.guest = c.Guest.ID
		} else if t.guest != c.Guest.ID {
			return nil, fmt.Errorf("--guest %s, but %s is the charter of %s", t.guest, t.charterFile, c.Guest.ID)
		}
	}
	t.siteID = siteID
	if t.url == "" {
		return nil, fmt.Errorf("which site? give --site SITE-ID with --charter (or use a context: chancery context add), or its address with --url")
	}
	if t.guest == "" {
		return nil, fmt.Errorf("which guest? give --charter (the guest is the charter's), a context (chancery context add), or --guest")
	}
	if t.site != nil && strings.HasPrefix(t.url, "https://") && t.site.TLSKey != "" {
		// Trust only the key the charter pins, whatever authority signed
		// (or did not sign) the site's certificate.
		t.http, err = audit.PinnedClient(t.charter, t.site.ID)
	} else {
		t.http, err = siteClient(t.url, "", "", true)
	}
	if err != nil {
		return nil, err
	}
	if !sign {
		return t, nil
	}
	if siteID == "" {
		return nil, fmt.Errorf("--site SITE-ID is required: the site's id is signed into the request")
	}
	id := f.signer
	if id == "" && f.who == "host" && t.site != nil {
		id = t.site.Host
	}
	if id == "" {
		return nil, fmt.Errorf("--%s is required: the %s who signs", f.who, f.who)
	}
	keyFile := f.keyFile
	if keyFile == "" && f.stateDir != "" {
		keyFile = layout.Key(f.who, id)
	}
	if keyFile == "" {
		return nil, fmt.Errorf("--key is required: the sealed key file of %s %s (or --state STATE, where it is keys/%s-%s.key)", f.who, id, f.who, id)
	}
	pass, err := readPassphrase(f.passFile, cmd.InOrStdin(), cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	key, err := keyfile.ReadEd25519(keyFile, keyfile.Protector{Passphrase: pass})
	if err != nil {
		return nil, fmt.Errorf("key of %s %s: %w", f.who, id, err)
	}
	t.signer = siteapi.Signer{Guest: t.guest, Site: siteID, Official: id, Key: key}
	return t, nil
}

// charterOf reads and verifies the charter f names (--charter, or the
// state directory's); nil without one.
func (f *siteFlags) charterOf() (*charter.Charter, string, error) {
	file := f.charter
	if file == "" && f.stateDir != "" {
		file = state.Layout{Dir: f.stateDir}.Charter()
	}
	if file == "" {
		return nil, "", nil
	}
	c, err := charter.ReadVerified(file)
	if err != nil {
		return nil, file, fmt.Errorf("--charter: %w", err)
	}
	return c, file, nil
}

// name is how messages name the target: its id and address.
func (t *target) name() string {
	if t.siteID == "" {
		return t.url
	}
	return t.siteID + " (" + t.url + ")"
}

// client is the officials' API of the guest at the target: the site's URL
// at a home, and the guest's path under it at an embassy, which serves
// every guest it holds (and serves at all only once activated).
func (t *target) client() *siteapi.Client {
	base := t.url
	if t.site != nil && t.site.Role != charter.RoleHome {
		base += "/guests/" + t.guest
	}
	return &siteapi.Client{BaseURL: base, Signer: t.signer, HTTP: t.http}
}

// continuity is the continuity API of the guest at the target, signing
// its requests when the target has a signer.
func (t *target) continuity() *siteapi.ContinuityClient {
	c := &siteapi.ContinuityClient{BaseURL: t.url, Guest: t.guest, HTTP: t.http}
	if t.signer.Key != nil {
		s := t.signer
		c.Signer = &s
	}
	return c
}

// operator is the host-operator API of the guest at the target.
func (t *target) operator() *siteapi.OperatorClient {
	return &siteapi.OperatorClient{BaseURL: t.url, Guest: t.guest, Signer: t.signer, HTTP: t.http}
}

// client resolves f into the site's continuity client; sign opens the
// official's key to sign the requests.
func (f *siteFlags) client(cmd *cobra.Command, sign bool) (*siteapi.ContinuityClient, *target, error) {
	t, err := f.resolve(cmd, sign)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return t.continuity(), t, nil
}

// jsonOutput says whether to print JSON: when asked, or when stdout is not
// a terminal (a pipe or a file, read by a program).
func (f *siteFlags) jsonOutput(w io.Writer) bool {
	if f.asJSON {
		return true
	}
	file, ok := w.(*os.File)
	return !ok || !term.IsTerminal(int(file.Fd()))
}

// run resolves the target and opens the signer's key, then calls do with
// a context bounded by --timeout; errors name the site.
func (f *siteFlags) run(cmd *cobra.Command, do func(ctx context.Context, t *target) error) error {
	f.homeDefault = true
	t, err := f.resolve(cmd, true)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if t.charter == nil {
		return fmt.Errorf("%s: --charter is required (or --state, or a context): the site's role and pinned key come from it", cmd.CommandPath())
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	if err := do(ctx, t); err != nil {
		return fmt.Errorf("%s at site %s: %w", cmd.CommandPath(), t.name(), err)
	}
	return nil
}

// again is the flags that reach the target again, for the next command a
// command prints: the site by its id with the charter that pins it, or
// the address and guest without one. What the context gave (the charter,
// the site's address) is left out, since the next command takes it from
// the same context: a runbook's next step stays short and copyable.
func (t *target) again() string {
	var b []string
	if t.contextName != "" {
		b = append(b, "--context "+t.contextName)
	}
	if t.siteID != "" {
		b = append(b, "--site "+t.siteID)
	}
	switch {
	case t.charter != nil && !t.fromContext["charter"]:
		b = append(b, "--charter "+t.charterFile)
	case t.charter == nil:
		b = append(b, "--guest "+t.guest)
	}
	if (t.site == nil || strings.TrimSuffix(t.site.URL, "/") != t.url) && !t.fromContext["url"] {
		b = append(b, "--url "+t.url)
	}
	return strings.Join(b, " ")
}

// siteAddress is the base URL of site id: the selected context's
// override, else the charter's.
func siteAddress(cmd *cobra.Command, c *charter.Charter, id string) (string, error) {
	s, ok := c.Site(id)
	if !ok {
		return "", fmt.Errorf("%q is not a site of %s's charter (its sites: %s)", id, c.Guest.ID, strings.Join(siteIDs(c), ", "))
	}
	_, cc, err := selectedContext(cmd)
	if err != nil {
		return "", err
	}
	if cc != nil && cc.URLs[id] != "" {
		return strings.TrimSuffix(cc.URLs[id], "/"), nil
	}
	if s.URL == "" {
		return "", fmt.Errorf("site %s has no url in the charter", id)
	}
	return strings.TrimSuffix(s.URL, "/"), nil
}
