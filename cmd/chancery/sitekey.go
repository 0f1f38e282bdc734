package main

import (
	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
)

// newSiteKeyCmd is `chancery site-key`: a site's outer key.
func newSiteKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "site-key",
		Short: "A site's outer key: order its rotation",
		Long: `Every embassy's copy of the attachments is sealed inside an outer key of its
own (docs/seal.md § Site outer layer). A site rotates that key by itself as it
unseals once its nonce budget passes the rotation threshold; "site-key rotate"
drafts the order that makes it rotate now.`,
	}
	cmd.AddCommand(newSiteKeyRotateCmd())
	return cmd
}

// newSiteKeyRotateCmd drafts a rotate-keys order naming one site. The
// officials order it, not the site's operator: the operator works for the
// host, whom the outer key protects the guest against, and a rotation
// changes every pack of the guest's copy there; so it takes the charter's
// rotate-keys quorum, signed like every order, and is recorded in the
// ledger.
func newSiteKeyRotateCmd() *cobra.Command {
	var o orderNewOptions
	cmd := &cobra.Command{
		Use:   "rotate --site SITE --charter FILE --epoch N --out ORDERFILE",
		Short: "Draft the order that rotates a site's outer key (officials sign and submit it)",
		Long: `Draft an unsigned rotate-keys order naming SITE, for the officials to sign with
"chancery order sign" (the charter's rotate-keys quorum) and submit with
"chancery order submit" to the site that writes the guest's ledger now
(--epoch is that epoch).

What the site named does once the order reaches it (docs/operations.md,
"Rotating a site's outer key"):

  - active and unsealed, holding its outer key: it rotates at once. A new
    key generation is drawn from crypto/rand; every pack of its copy is
    re-sealed under it (the registries are closed meanwhile and opened
    again after); the KeySiteKey event (site, generation, key fingerprint)
    is appended to the ledger; the new key's wrapped copy replaces the old
    one in the site's key store and escrow out-tray (D/escrow), which
    officials collect; the old packs are then removed. A crash at any
    point is finished at the next unseal.
  - in standby, or sealed: it marks the request and rotates at its next
    unseal.

Only officials order a rotation: the site's operator works for the host,
whom the outer key protects the guest against.`,
		Example: `  chancery site-key rotate --site embassy-north --charter charter.yaml \
      --epoch 2 --reason "outer key rotation, annual" --out rotate-north.order
  chancery order sign rotate-north.order --official cio --key cio.key
  chancery order sign rotate-north.order --official registrar --key registrar.key
  chancery order submit --site embassy-north rotate-north.order`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Action = charter.ActionRotateKeys
			return runOrderNew(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	addOrderDraftFlags(f, &o)
	f.StringVar(&o.Site, "site", "", "the site whose outer key rotates (required)")
	f.Uint64Var(&o.Epoch, "epoch", 0, "the current epoch, in which alone the order is valid (required)")
	for _, n := range []string{"site", "epoch", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}
