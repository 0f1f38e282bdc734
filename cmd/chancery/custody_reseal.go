package main

import (
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/seal"
)

// custodyResealOptions are the flags of `custody reseal`.
type custodyResealOptions struct {
	Custody        string
	Custodian      string
	Identity       string
	To             string
	Out            string
	PassphraseFile string
}

func newCustodyResealCmd() *cobra.Command {
	var o custodyResealOptions
	cmd := &cobra.Command{
		Use:   "reseal --custody PACKAGE --custodian ID --identity KEYFILE --to RECIPIENT --out SHAREFILE",
		Short: "Re-seal your share to an activating site's one-time unseal key (custodian's step of activation)",
		Long: `When an activation order has been accepted, the activated site opens an unseal
session and shows its one-time age recipient. Each custodian then, on their
own machine:

  1. opens their share in the custody package (--custody, D/custody.json)
     with their own sealed age identity (--identity; passphrase from
     --passphrase-file or $CHANCERY_PASSPHRASE),
  2. checks it against the package's public commitment,
  3. seals it to the session's one-time recipient (--to) and writes it to
     --out (mode 0600, never overwriting), and
  4. submits that file to the site's unseal session.

The share exists in clear only in memory and is wiped before the command
returns; the file holds it sealed to a key that exists only in the site's
memory and dies with the session. Check --to against what the site shows
through a channel you trust: whoever holds that key's identity gets your
share.`,
		Example: `  chancery custody reseal --custody custody.json --custodian cust-court \
      --identity cust-court.key --to age1... --out cust-court.share`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustodyReseal(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Custody, "custody", "", "custody package file, D/custody.json (required)")
	f.StringVar(&o.Custodian, "custodian", "", "your custodian id in the charter (required)")
	f.StringVar(&o.Identity, "identity", "", "your sealed age identity key file (required)")
	f.StringVar(&o.To, "to", "", "the unseal session's one-time age recipient, age1... (required)")
	f.StringVar(&o.Out, "out", "", "sealed share file to create (required)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the identity's passphrase (default: $"+keyfile.EnvPassphrase+")")
	for _, n := range []string{"custody", "custodian", "identity", "to", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func runCustodyReseal(w io.Writer, o custodyResealOptions) error {
	// An unseal session's key is a one-time X25519 recipient; anything else
	// (a passphrase, a custodian's own key file) is a mistake here.
	to, err := age.ParseX25519Recipient(o.To)
	if err != nil {
		return fmt.Errorf("custody reseal: --to: want the unseal session's one-time age recipient (age1…): %w", err)
	}
	p, err := seal.ReadCustodyPackageFile(o.Custody)
	if err != nil {
		return fmt.Errorf("custody reseal: --custody: %w", err)
	}
	id, err := readIdentity(o.Identity, o.PassphraseFile)
	if err != nil {
		return fmt.Errorf("custody reseal: --identity: %w", err)
	}
	s, err := p.OpenShare(o.Custodian, id)
	if err != nil {
		return fmt.Errorf("custody reseal: custodian %s: %w", o.Custodian, err)
	}
	sealed, err := s.SealTo(to)
	s.Wipe()
	if err != nil {
		return fmt.Errorf("custody reseal: custodian %s: %w", o.Custodian, err)
	}
	if err := fsutil.WriteNew(o.Out, sealed, 0o600); err != nil {
		return fmt.Errorf("custody reseal: --out %s: %w", o.Out, err)
	}
	pid := p.PackageID()
	_, err = fmt.Fprintf(w, "share of custodian %s (guest %s, package %x) verified and sealed to %s\nwritten to %s; submit it to the unseal session\n",
		o.Custodian, p.Guest(), pid[:8], o.To, o.Out)
	return err
}
