package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/demo"
	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/state"
)

func newDemoCmd() *cobra.Command {
	var o demo.Options
	var passphraseFile string
	cmd := &cobra.Command{
		Use:   "demo [--state D]",
		Short: "Tell the Demo Republic's continuity story on this machine, with measured figures",
		Long: `Demo runs the Demo Republic's story on loopback with embedded storage and
prints what happened, with measured figures.

Without --state it founds a fresh Demo Republic in a temporary directory (keys
sealed under a random passphrase held only in memory) and removes it at the
end unless --keep is given. With --state it uses the state "chancery init"
made there (its passphrase from --passphrase-file or $CHANCERY_PASSPHRASE);
the ledger lives under D/sites/home/ledger. The story is destructive: it
deletes D/sites/home (the disaster) and revokes embassy-north, so with --state
it refuses a state whose home ledger already holds records, unless --force
is given. Never point it at a state you want to keep.

The story, each site its own "chancery serve" process on loopback:
  1. the charter is recorded in the home ledger;
  2. home loads its registers (a generated population with documents,
     parcels and businesses), sealed, and the land register's scanned deeds
     into the blob store (chunked, compressed, sealed, deduplicated);
  3. officials at many desks change records at once, each change durable
     before it is acknowledged;
  4. an official looks a citizen up by national id;
  5. every byte the sites hold is searched for that citizen's name: none;
  6. an auditor verifies the whole ledger against the charter's keys and
     proves random entries included;
  7. two embassies in two host states receive the sealed registers and the
     ledger, checking every batch and signing receipts; officials write at
     home, quorum writes acknowledged only once an embassy holds them; a
     citizen registers a passkey and signs in to the tax office (a go-oidc
     relying party) with her eID through the state's OpenID Connect
     provider;
  8. the home is destroyed (process killed, data deleted);
  9. two officials sign an activation order for embassy-north; three of
     five custodians unseal it; it serves a lookup (RTO), registers a
     birth through the register-birth procedure, issues the parents a
     certified extract, publishes a public notice ("the government is
     operating from abroad") that the standby embassy-south's feed
     serves, verified with the charter alone, and pays a month's
     pensions to 1,000 pensioners (a pain.001 file two ministers
     approve, checked offline); the same relying party signs the
     citizen in there with her eID and her passkey and reads her
     records, and she sees those reads, and an auditor's, in her data
     tracker;
 10. a fresh home catches up from the embassy as a sealed mirror, and a
     failback order hands the state back home without losing a record.
It prints the measured RPO and RTO, and the URLs of the citizen portal
(https://id.demo-republic.example/portal/), the officials' desk and the
continuity dashboard. --keep leaves the sites running and prints their
addresses; it serves the issuer's name over HTTPS on a loopback port, with
a certificate written to STATE/identity/issuer-tls.pem, and prints the
chromium and curl command lines that reach the portal there.

"chancery demo gen" writes the same generated registers as JSONL for
"chancery import".`,
		Example: `  chancery demo
  chancery init --state /tmp/dr && chancery demo --state /tmp/dr
  # rehearse on the sites the story leaves running (an address --keep printed):
  chancery demo --state /tmp/dr --force --keep
  chancery records find population last_name Berg --state /tmp/dr --site home \
      --url http://127.0.0.1:PORT --official registrar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Dir != "" {
				if _, err := os.Stat(o.Dir); err == nil {
					pass, err := readPassphrase(passphraseFile, cmd.InOrStdin(), cmd.ErrOrStderr())
					if err != nil {
						return fmt.Errorf("demo: %w", err)
					}
					o.Passphrase = pass
				}
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: find this executable to run the sites: %w", err)
			}
			o.Binary = exe
			rep, err := demo.Run(cmd.Context(), o, cmd.OutOrStdout())
			if err != nil || rep == nil || rep.Stop == nil {
				return err
			}
			return keepSites(cmd, rep, passphraseFile)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "state", "", "state directory made by 'chancery init' (default: a fresh temporary one)")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "old spelling of --state")
	aliasFlag(cmd.Flags(), "dir", "--state")
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "file holding the state's passphrase (default: $CHANCERY_PASSPHRASE, or asked on a terminal)")
	cmd.Flags().IntVar(&o.Persons, "persons", 2000, "persons in the generated population")
	cmd.Flags().IntVar(&o.DeedPersons, "deed-persons", 40, "further persons whose land parcels come with scanned deeds (100 KB–5 MB each)")
	cmd.Flags().IntVar(&o.Updates, "updates", 2000, "record changes officials make")
	cmd.Flags().IntVar(&o.Appenders, "appenders", 64, "officials writing at once")
	cmd.Flags().BoolVar(&o.Force, "force", false, "with --state: run even though the state already holds records (the demo destroys its home and revokes embassy-north)")
	cmd.Flags().BoolVar(&o.Postgres, "postgres", false, "also follow a throwaway PostgreSQL database's table live through the disaster, activation and failback, and restore it (skipped, saying so, where PostgreSQL is not installed)")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep the state directory and leave the sites running (their addresses are printed)")
	cmd.AddCommand(newDemoGenCmd())
	return cmd
}

// keepSites is demo --keep after the story: it names a context for the
// kept sites, prints how to use it, and waits for Ctrl-C (or SIGTERM)
// before it stops the sites.
func keepSites(cmd *cobra.Command, rep *demo.Report, passphraseFile string) error {
	defer rep.Stop()
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "== --keep: the sites run until Ctrl-C (logs and configs in %s)\n", rep.Dir)
	ids := make([]string, 0, len(rep.SiteURLs))
	for id := range rep.SiteURLs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var urls []string
	for _, id := range ids {
		fmt.Fprintf(w, "   %-14s %s\n", id, rep.SiteURLs[id])
		urls = append(urls, id+"="+rep.SiteURLs[id])
	}
	pf := cmp.Or(rep.PassphraseFile, passphraseFile)
	if pf != "" {
		fmt.Fprintf(w, "   passphrase of the key files: %s (mode 0600)\n", pf)
	}
	l := state.Layout{Dir: rep.Dir}
	c := clientContext{Charter: l.Charter(), Site: "home", Official: "registrar", Key: l.Key("official", "registrar"), State: rep.Dir, PassphraseFile: pf,
		URLs: map[string]string{}}
	for _, id := range ids {
		c.URLs[id] = rep.SiteURLs[id]
	}
	var b strings.Builder
	if err := runContextAdd(&b, "demo", c, false); err != nil {
		fmt.Fprintf(w, "   (no context written: %v)\n", err)
	} else {
		fmt.Fprintf(w, "   context \"demo\" written (site home, official registrar); rehearse with:\n")
		fmt.Fprintf(w, "     chancery context use demo\n     chancery status --all\n     chancery records find population last_name Berg\n")
		// The pages (docs/ui.md): a signed request opens a browser session.
		active := cmp.Or(rep.ActiveSite, "home")
		fmt.Fprintf(w, "   pages: the continuity dashboard is at <site>/ui/dashboard, the host console at <site>/ui/host; open a session with\n")
		fmt.Fprintf(w, "     chancery ui login --site %s --official min-interior   (prints a single-use link)\n", active)
		fmt.Fprintf(w, "   desk      %s/ui/desk   (the officials' desk: cases, record search, orders to sign, at the site that writes)\n", rep.SiteURLs[active])
		fmt.Fprintf(w, "   dashboard %s/ui/dashboard\n", rep.SiteURLs[active])
	}
	if f := rep.Front; f != nil {
		// The portal is on the issuer's name, which resolves nowhere, and
		// needs HTTPS (__Host- Secure cookies, passkeys): the demo's TLS
		// front on loopback stands for the name's DNS and certificate.
		host := strings.TrimPrefix(strings.TrimSuffix(found.DemoPortalURL, "/portal/"), "https://")
		fmt.Fprintf(w, "   portal    %s\n", found.DemoPortalURL)
		fmt.Fprintf(w, "     the citizen portal, on the state's issuer name; %s does not resolve, so the demo serves it over HTTPS at %s\n", host, f.Addr)
		fmt.Fprintf(w, "     (forwarding to %s, with a certificate it wrote to %s). Open it in a browser told so:\n", f.Site, f.Cert)
		fmt.Fprintf(w, "     chromium --user-data-dir=$(mktemp -d) --host-resolver-rules=\"MAP %s:443 %s\" --ignore-certificate-errors-spki-list=%s %s\n",
			host, f.Addr, f.SPKI, found.DemoPortalURL)
		fmt.Fprintf(w, "     curl --connect-to %s:443:%s --cacert %s %s\n", host, f.Addr, f.Cert, found.DemoPortalURL)
		files, citizen := found.IdentityFiles{Dir: rep.Dir}, found.DemoCitizens[0]
		fmt.Fprintf(w, "     sign in as citizen %s with her eID (the sign-in page gives the openssl commands): certificate %s, key %s\n",
			citizen, files.CitizenCert(citizen), files.CitizenKey(citizen))
	}
	<-cmd.Context().Done()
	fmt.Fprintln(w, "== stopping the sites")
	return nil
}
