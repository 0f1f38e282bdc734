package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/siteapi"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newOrderSubmitCmd() *cobra.Command {
	var (
		f              siteFlags
		acceptUnfenced bool
	)
	cmd := &cobra.Command{
		Use:   "submit --site ID ORDER",
		Short: "Submit a signed order to the site that must append it",
		Long: `Submit sends a signed order to a site. The order's signatures are its
authority: the site checks them against the charter's quorum for the action,
the epoch, the validity window and that it was never used before, and refuses
it with the reason otherwise. An accepted order is a ledger entry.

Where to submit: an activation goes to the site it activates (which becomes
the writer of the next epoch); every other order (failback, drill,
revoke-site, rotate-keys, amend) goes to the site that writes now. A site
that does not write answers with the writer's name.

Before it appends an activation, the site shows the order to every other
embassy, which then refuses the old writer's batches (a fence). It refuses
the activation if an embassy holds more of the ledger (activate that one),
or if the embassies it cannot reach might alone hold writes a quorum
acknowledged. --accept-unfenced activates anyway in the second case: the
site records which embassies were not fenced, and writes only they hold
go to reconciliation.`,
		Example: `  chancery order submit --site embassy-north activate.order
  chancery order submit --charter D/charter.yaml --site home --url http://127.0.0.1:7001 drill.order`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if f.guest == "" {
				// The order names its guest: no --guest to give, and none
				// to get wrong (the charter's must match it).
				if so, err := continuity.ParseSignedOrder(bytes.TrimSuffix(raw, []byte("\n"))); err == nil {
					f.guest = so.Order.Guest
				}
			}
			c, t, err := f.client(cmd, false)
			if err != nil {
				return err
			}
			c.AcceptUnfenced = acceptUnfenced
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			resp, err := c.Submit(ctx, []byte(strings.TrimSuffix(string(raw), "\n")))
			if err != nil {
				return fmt.Errorf("order %s refused by %s: %w%s", args[0], t.name(), err, activateElsewhere(cmd, raw, args[0], t))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "order %s accepted at %s: ledger entry %d; guest %s is %s, epoch %d, writer %s\n",
				resp.Order, t.name(), resp.Index, resp.Status.Guest, resp.Status.Mode, resp.Status.Epoch, resp.Status.Writer)
			return nil
		},
	}
	f.register(cmd, "")
	cmd.Flags().BoolVar(&acceptUnfenced, "accept-unfenced", false, "activate even if embassies that might alone hold quorum writes cannot be reached (recorded in the ledger)")
	return cmd
}

// activateElsewhere is what to say when an activation was submitted to a
// site other than the one it activates: the site answers with the writer
// it knows, which after a disaster is the lost home, so the official is
// told instead the site the order activates, its address from the charter,
// and the command that submits it there. It is "" for any other order.
func activateElsewhere(cmd *cobra.Command, raw []byte, file string, t *target) string {
	so, err := continuity.ParseSignedOrder(bytes.TrimSuffix(raw, []byte("\n")))
	if err != nil || so.Order.Action != charter.ActionActivate || so.Order.Site == t.siteID || t.charter == nil {
		return ""
	}
	id := so.Order.Site
	addr, err := siteAddress(cmd, t.charter, id)
	if err != nil {
		addr = "no address in the charter: add --url URL"
	}
	return fmt.Sprintf("\n\nThis order activates site %s (%s): only that site appends its activation. Submit it there:\n  chancery order submit --site %s %s",
		id, addr, id, file)
}

func newUnsealCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "Unseal an activated site with the custodians' shares",
		Long: `Unseal rebuilds the guest's root key at an activated site from the
custodians' shares, in memory only (never on disk, never in logs), and opens
the registries the activation order puts in scope.

  1. An official opens a session:   chancery unseal open --site ID ...
     It prints a one-time recipient (a hybrid post-quantum age key the
     site made for this session alone) and writes the site's signed
     statement of it to --recipient-out (unseal-recipient.json).
  2. Each custodian re-seals their share to it, on their own machine,
     after checking the site's signature against the charter:
       chancery custody reseal --custody custody.json --charter charter.yaml \
         --custodian ID --identity MY.key --recipient unseal-recipient.json --out share.age
  3. and submits it:                chancery unseal submit --site ID --recipient unseal-recipient.json share.age
A site that is not on this machine is reached over https pinned to the
TLS key its charter gives it (--charter, or the context's), never through a
certificate authority.
At the threshold the site unseals and serves. chancery seal wipes the keys.`,
	}
	var open, sub, st siteFlags
	var recipientOut string
	openCmd := &cobra.Command{
		Use:   "open --site ID --official ID --key FILE",
		Short: "Open an unseal session at an activated site (signed by an official)",
		Example: `  chancery unseal open --site embassy-north --official cio --key cio.key --charter charter.yaml
  chancery unseal open --site embassy-north        # with a context (chancery context add)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := open.client(cmd, true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), open.timeout)
			defer cancel()
			r, err := c.OpenUnseal(ctx)
			if err != nil {
				return err
			}
			if err := writeRecipientStatement(recipientOut, t.charterFile, r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "session %s: %d of %d shares; expires %s\nrecipient %s\nsigned statement written to %s: give it to the custodians (custody reseal --recipient)\n",
				r.Session, r.Have, r.Need, r.Expires.Format(time.RFC3339), r.Recipient, recipientOut)
			return nil
		},
	}
	open.register(openCmd, "official")
	openCmd.Flags().StringVar(&recipientOut, "recipient-out", "unseal-recipient.json", "file to write the site's signed recipient statement to")
	var session, recipient, custody string
	var siteKeys []string
	subCmd := &cobra.Command{
		Use:   "submit --site ID [--session ID | --recipient FILE] [--site-key FILE...] SHARE...",
		Short: "Submit custodians' shares sealed to the session's recipient, and the sites' wrapped outer keys",
		Long: `Submit sends custodians' shares, each sealed to the session's one-time
recipient, to the site. Give the sites' wrapped outer keys from the guest's
escrow (D/escrow/site-outer-<site>.wrapped) with --site-key before the last
share: at the threshold the site unwraps them with the rebuilt root, so it
can read its own sealed attachments and ship to the other sites. Site keys
are sealed to the session's recipient, once its statement (--recipient)
checks out against the charter and the custody package (--charter,
--custody), and the request is signed by an official (--official, --key).
The session is --session, or the one the signed statement names.`,
		Example: `  chancery unseal submit --site embassy-north --official cio --key cio.key \
      --recipient unseal-recipient.json --custody custody.json \
      --site-key escrow/site-outer-embassy-north.wrapped --site-key escrow/site-outer-embassy-south.wrapped \
      cust-court.share cust-bank.share cust-parliament.share`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, t, err := sub.client(cmd, len(siteKeys) > 0)
			if err != nil {
				return err
			}
			if session, err = sessionOf(session, recipient, t); err != nil {
				return fmt.Errorf("unseal submit: %w", err)
			}
			var rst *continuity.RecipientStatement
			if len(siteKeys) > 0 {
				if rst, err = verifiedStatement(recipient, t.charterFile, custody); err != nil {
					return fmt.Errorf("--site-key: %w", err)
				}
				if rst.Session != session {
					return fmt.Errorf("--recipient is of session %s, not %s", rst.Session, session)
				}
			}
			for _, p := range siteKeys {
				b := filepath.Base(p)
				site, ok := strings.CutSuffix(strings.TrimPrefix(b, "site-outer-"), ".wrapped")
				if !ok || site == b {
					return fmt.Errorf("--site-key %s: want a file named site-outer-<site>.wrapped", p)
				}
				wrapped, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), sub.timeout)
				err = c.SubmitSiteKey(ctx, rst, site, wrapped)
				cancel()
				if err != nil {
					return fmt.Errorf("--site-key %s: %w", p, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "outer key of site %s handed over\n", site)
			}
			for _, p := range args {
				sealed, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), sub.timeout)
				r, err := c.SubmitShare(ctx, session, sealed)
				cancel()
				if err != nil {
					return fmt.Errorf("share %s: %w", p, err)
				}
				if r.Unsealed {
					fmt.Fprintf(cmd.OutOrStdout(), "share %s accepted: %d of %d — unsealed, the site serves\n", p, r.Have, r.Need)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "share %s accepted: %d of %d\n", p, r.Have, r.Need)
				}
			}
			return nil
		},
	}
	sub.register(subCmd, "official")
	subCmd.Flags().StringVar(&recipient, "recipient", "", "with --site-key: the site's signed recipient statement unseal open wrote")
	subCmd.Flags().StringVar(&custody, "custody", "", "with --site-key: the custody package, D/custody.json")
	subCmd.Flags().StringVar(&session, "session", "", "the session id unseal open printed (default: the session of --recipient)")
	subCmd.Flags().StringArrayVar(&siteKeys, "site-key", nil, "a wrapped outer key from the escrow, site-outer-<site>.wrapped; repeat for every site")
	statusCmd := &cobra.Command{
		Use:     "status --site ID",
		Short:   "Show the guest's mode, epoch, writer, unseal progress and RTO at a site",
		Example: `  chancery unseal status --site embassy-north --charter charter.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := st.client(cmd, false)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), st.timeout)
			defer cancel()
			r, err := c.Status(ctx)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r)
		},
	}
	st.register(statusCmd, "")
	cmd.AddCommand(openCmd, subCmd, statusCmd)
	return cmd
}

func newSealCmd() *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "seal --site ID --official ID --key FILE",
		Short: "Wipe the guest's keys at a site and stop serving its registries",
		Long: `Seal wipes the root key's derived keys and the registries' plaintext index
at a site, and stops serving the officials' API there. The ledger is kept.
A failback seals the previous writer by itself; seal is for an activation
that must stop at once. The request is signed by an official.`,
		Example: `  chancery seal --site embassy-north --official cio --key cio.key --charter charter.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := f.client(cmd, true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			r, err := c.Seal(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "guest %s sealed at %s (mode %s, unsealed %v)\n", r.Guest, t.name(), r.Mode, r.Unsealed)
			return nil
		},
	}
	f.register(cmd, "official")
	return cmd
}

// writeRecipientStatement writes the site's signed statement of a
// session's recipient for the custodians. It is public. With a charter it
// checks the statement first, so that the official sees at once what the
// custodians' tools will refuse.
func writeRecipientStatement(path, charterFile string, r *siteapi.UnsealResponse) error {
	if len(r.RecipientStatement) == 0 {
		return fmt.Errorf("the site did not sign its session's recipient: custodians must not seal to it")
	}
	if charterFile != "" {
		c, err := charter.ReadVerified(charterFile)
		if err != nil {
			return err
		}
		st, _, err := continuity.VerifyRecipient(c, nil, r.RecipientStatement, time.Now())
		if err != nil {
			return err
		}
		if st.Session != r.Session || st.Recipient != r.Recipient {
			return fmt.Errorf("the site's statement is of session %s, not of the session it answered (%s)", st.Session, r.Session)
		}
	}
	if err := os.WriteFile(path, append(r.RecipientStatement, '\n'), 0o644); err != nil {
		return fmt.Errorf("--recipient-out: %w", err)
	}
	return nil
}

// sessionOf is the unseal session a submission goes to: --session, or
// else the session of the site's signed recipient statement (--recipient),
// checked against the charter first.
func sessionOf(session, recipientFile string, t *target) (string, error) {
	if session != "" {
		return session, nil
	}
	if recipientFile == "" || t.charter == nil {
		return "", fmt.Errorf("--session is required (or --recipient, the statement unseal open or drill wrote, with the charter)")
	}
	raw, err := os.ReadFile(recipientFile)
	if err != nil {
		return "", fmt.Errorf("--recipient: %w", err)
	}
	st, _, err := continuity.VerifyRecipient(t.charter, nil, raw, time.Now())
	if err != nil {
		return "", fmt.Errorf("--recipient %s: %w", recipientFile, err)
	}
	if st.Site != t.siteID && t.siteID != "" {
		return "", fmt.Errorf("--recipient %s is the statement of site %s, not %s", recipientFile, st.Site, t.siteID)
	}
	return st.Session, nil
}

// verifiedStatement reads a signed recipient statement and checks it
// against the charter and the custody package.
func verifiedStatement(path, charterFile, custodyFile string) (*continuity.RecipientStatement, error) {
	if path == "" || charterFile == "" || custodyFile == "" {
		return nil, fmt.Errorf("--recipient, --charter and --custody are needed to check the session's recipient")
	}
	c, err := charter.ReadVerified(charterFile)
	if err != nil {
		return nil, err
	}
	p, err := seal.ReadCustodyPackageFile(custodyFile)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, _, err := continuity.VerifyRecipient(c, p, raw, time.Now())
	return st, err
}
