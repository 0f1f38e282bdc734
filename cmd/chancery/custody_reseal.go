package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/seal"
)

// custodyResealOptions are the flags of `custody reseal`.
type custodyResealOptions struct {
	Custody   string
	Custodian string
	Identity  string
	// Recipient is the file of the site's signed recipient statement
	// (unseal open or drill wrote it); Charter the charter it is checked
	// against.
	Recipient string
	Charter   string
	// To, if given, must be the statement's recipient: a cross-check
	// against what was read out over another channel.
	To             string
	Out            string
	PassphraseFile string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func newCustodyResealCmd() *cobra.Command {
	var o custodyResealOptions
	cmd := &cobra.Command{
		Use:   "reseal --custody PACKAGE --charter CHARTER --custodian ID --identity KEYFILE --recipient STATEMENT --out SHAREFILE",
		Short: "Re-seal your share to a site's one-time unseal key, after checking the site signed it (custodian's step of activation or drill)",
		Long: `When an activation order has been accepted (or a drill order has reached an
embassy), the site opens an unseal session. Its one-time hybrid age
recipient (age1pq1...) comes in a statement the site signs with its
checkpoint key: guest, site, session, recipient, custody package and
expiry. chancery unseal open (or chancery drill) writes it to a file. Each
custodian then, on their own machine:

  1. checks the statement (--recipient) against the charter (--charter):
     the signature is the named site's checkpoint key, the guest and the
     custody package are this one's, the session has not expired. A bare
     recipient, or one signed by any other key, is refused: whoever sits
     between you and the site could otherwise hand you their own key,
  2. opens their share in the custody package (--custody, D/custody.json)
     with their own sealed age identity (--identity; passphrase from
     --passphrase-file or $CHANCERY_PASSPHRASE),
  3. checks it against the package's public commitment,
  4. seals it to the session's recipient and writes it to --out (mode
     0600, never overwriting), and
  5. submits that file to the site's unseal session.

The share exists in clear only in memory and is wiped before the command
returns; the file holds it sealed to a key that exists only in the site's
memory and dies with the session. --to, if given, must be the statement's
recipient (read out to you over another channel, say).`,
		Example: `  chancery custody reseal --custody custody.json --charter charter.yaml \
      --custodian cust-court --identity cust-court.key \
      --recipient unseal-recipient.json --out cust-court.share`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustodyReseal(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Custody, "custody", "", "custody package file, D/custody.json (required)")
	f.StringVar(&o.Custodian, "custodian", "", "your custodian id in the charter (required)")
	f.StringVar(&o.Identity, "identity", "", "your sealed age identity key file (required)")
	f.StringVar(&o.Recipient, "recipient", "", "the site's signed recipient statement, from unseal open or drill (required)")
	f.StringVar(&o.Charter, "charter", "", "the guest's charter, to check the statement's signature (required)")
	f.StringVar(&o.To, "to", "", "optional: the recipient, age1pq1..., which must be the statement's")
	f.StringVar(&o.Out, "out", "", "sealed share file to create (required)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the identity's passphrase (default: $"+keyfile.EnvPassphrase+")")
	for _, n := range []string{"custody", "custodian", "identity", "recipient", "charter", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func runCustodyReseal(w io.Writer, o custodyResealOptions) error {
	if o.Recipient == "" {
		return errors.New("custody reseal: no --recipient: a share is sealed only to a recipient the site signed under the charter (the statement unseal open or drill wrote), never to a bare --to")
	}
	if o.Charter == "" {
		return errors.New("custody reseal: no --charter to check the site's signature on --recipient")
	}
	c, err := charter.ReadVerified(o.Charter)
	if err != nil {
		return fmt.Errorf("custody reseal: --charter: %w", err)
	}
	p, err := seal.ReadCustodyPackageFile(o.Custody)
	if err != nil {
		return fmt.Errorf("custody reseal: --custody: %w", err)
	}
	raw, err := os.ReadFile(o.Recipient)
	if err != nil {
		return fmt.Errorf("custody reseal: --recipient: %w", err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	st, to, err := continuity.VerifyRecipient(c, p, raw, now())
	if err != nil {
		return fmt.Errorf("custody reseal: --recipient %s: %w", o.Recipient, err)
	}
	if o.To != "" && o.To != st.Recipient {
		return fmt.Errorf("custody reseal: --to is not the recipient site %s signed for session %s: do not seal", st.Site, st.Session)
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
	_, err = fmt.Fprintf(w, "recipient signed by site %s for its %s session %s (expires %s)\nshare of custodian %s (guest %s, package %x) verified and sealed to %s\nwritten to %s; submit it to the unseal session\n",
		st.Site, st.Purpose, st.Session, st.Expires.Format(time.RFC3339), o.Custodian, p.Guest(), pid[:8], st.Recipient, o.Out)
	return err
}
