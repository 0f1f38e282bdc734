package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/demo/found"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

type initOptions struct {
	dir            string
	passphraseFile string
	workFactor     int
}

func newInitCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init --state D",
		Short: "Create the Demo Republic: keys, sites, officials, custodians and a signed charter",
		Long: `Init creates a demonstration guest state, the "Demo Republic", in D:

  - a home site and two embassy sites in two host states (Northland, Southland);
  - five officials (two ministers, a CIO, a registrar, a notary), each with an
    Ed25519 signing key;
  - five custodians of the root key (three must join to unseal), each with an
    age identity (X25519 or hybrid post-quantum);
  - five registries (population, identity documents, land, business, legal acts);
    two for sign-in (eid-crl, passkeys); the civil service register a
    PostgreSQL connector follows (services.postgres, with its position in
    connector-state);
  - the state's OpenID Connect provider (services.identity, issuer
    https://id.demo-republic.example) and access rules (services.access):
    an eID CA, two demo citizens' eID certificates and the tax office's
    client key, written unsealed (mode 0600) under STATE/identity/, since in
    a real state they belong to other institutions; the citizen portal every
    site serves at https://id.demo-republic.example/portal/, a client whose
    key is derived from the root (no key file) and whose passkeys are bound
    to the issuer's name;
  - a charter signed by the amend quorum and by each host for its own sites.

Every private key is generated from crypto/rand and written sealed with age
under the passphrase (--passphrase-file, or $CHANCERY_PASSPHRASE), mode 0600.
In the demo every party shares that passphrase; in a real state each official,
custodian and host keeps their own key.`,
		Example: `  CHANCERY_PASSPHRASE=... chancery init --state ./demo-state`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pass, err := readPassphrase(o.passphraseFile, os.Stdin, os.Stderr)
			if err != nil {
				return fmt.Errorf("init: %w", err)
			}
			out := cmd.OutOrStdout()
			_, err = found.Init(cmd.Context(), found.InitOptions{
				Dir:       o.dir,
				Protector: keyfile.Protector{Passphrase: pass, WorkFactor: o.workFactor},
				Log:       func(f string, a ...any) { fmt.Fprintf(out, f+"\n", a...) },
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Demo Republic created in %s; try: chancery demo --state %s\n", o.dir, o.dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.dir, "state", "", "state directory to create (required)")
	cmd.Flags().StringVar(&o.dir, "dir", "", "old spelling of --state")
	aliasFlag(cmd.Flags(), "dir", "--state")
	cmd.Flags().StringVar(&o.passphraseFile, "passphrase-file", "", "file holding the passphrase that seals the keys (default: $CHANCERY_PASSPHRASE)")
	cmd.Flags().IntVar(&o.workFactor, "work-factor", 0, "scrypt work factor (log2 N) for the key files; 0 means age's default, 18")
	cmd.MarkFlagsOneRequired("state", "dir")
	return cmd
}
