package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/fsutil"
)

// newOrderCmd wires `chancery order`: drafting a governance order, officials
// signing it offline one after another, and checking it against the
// charter before it is submitted to a site.
func newOrderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "order",
		Short: "Draft, sign and verify governance orders (activate, failback, drill, revoke-site, rotate-keys, amend)",
		Long: `Governance orders are how a guest state's officials act on its sites: activate
an embassy when home is lost, fail back to home (or move to another site),
drill a site, revoke a site, rotate keys, amend the charter.

The continuity procedure, step by step:

  1. One official drafts the order:   chancery order new ... --out order.json
  2. Each signer, offline, in turn:    chancery order sign --official ID --key KEY order.json
  3. Anyone checks it:                 chancery order verify --charter charter.yaml order.json
  4. The order is submitted to the site, which checks it again against the
     charter, its ledger (replays) and its epoch, and appends it.

An order takes effect only with the charter's quorum for its action, within
its validity window, in the right epoch, and once. The file is the order's
canonical encoding (docs/orders.md) plus a newline; do not edit it.`,
	}
	cmd.AddCommand(newOrderNewCmd(), newOrderSignCmd(), newOrderUnsignCmd(), newOrderVerifyCmd(), newOrderSubmitCmd())
	return cmd
}

// orderNewOptions are the flags of `order new`.
type orderNewOptions struct {
	Action     string
	Charters   []string
	Site       string
	Registries []string
	Access     string
	Epoch      uint64
	NotBefore  string
	Expires    string
	Reason     string
	NewCharter string
	Out        string
	// Now is the time "now" means for --not-before and --expires (tests).
	Now time.Time
}

func newOrderNewCmd() *cobra.Command {
	var o orderNewOptions
	cmd := &cobra.Command{
		Use:   "new --action ACTION --charter FILE --epoch N [--site S] [flags] --out ORDERFILE",
		Short: "Draft an unsigned order (step 1 of the continuity procedure)",
		Long: `Draft a governance order under the charter in force and write it, unsigned, to
--out (never overwriting) for the officials to sign with "chancery order sign".

The order gets a fresh random id and nonce, and carries the charter's guest,
origin and hash, so it cannot be replayed, nor used for another guest or
under another charter version. It is refused here already if the charter
makes it impossible (an unknown site or registry, activating the home, a
registry not placed at the site).

What each action needs:

  activate     --site EMBASSY --access read-only|read-write [--registries a,b]
               --epoch current+1: the site becomes the writer of that epoch
  failback     --site SITE (home, or another site) --epoch current+1
  drill        --site EMBASSY [--registries a,b] --epoch current
  revoke-site  --site SITE (not the home, not the current writer) --epoch current
  rotate-keys  [--site SITE] [--registries a,b] --epoch current
  amend        --new-charter FILE (the new version) --epoch current

Empty --registries means every registry the site holds. The order is valid
from --not-before (RFC 3339; default now) for --expires (a duration such as
24h, or an RFC 3339 time). Sites refuse it outside that window, so allow for
their clocks and for the time the signatures take to gather.

Give every charter version from 1 (--charter v1.yaml --charter
v2.yaml ...): the chain is verified and the last version is used.`,
		Example: `  chancery order new --action activate --charter charter.yaml \
      --site embassy-north --access read-write --registries population,land \
      --epoch 2 --expires 12h --reason "home data centre lost" --out activate.order`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOrderNew(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Action, "action", "", "one of "+strings.Join(charter.Actions(), ", ")+" (required)")
	addOrderDraftFlags(f, &o)
	f.StringArrayVar(&o.Charters, "guest-charter", nil, "old spelling of --charter")
	aliasFlag(f, "guest-charter", "--charter")
	f.StringVar(&o.Site, "site", "", "the site the order acts on (see above)")
	f.StringSliceVar(&o.Registries, "registries", nil, "comma-separated registries (activate, drill, rotate-keys); empty: all the site holds")
	f.StringVar(&o.Access, "access", "", "activate only: read-only or read-write")
	f.Uint64Var(&o.Epoch, "epoch", 0, "the epoch the order opens (activate, failback: current+1) or is valid in (others: current) (required)")
	f.StringVar(&o.NewCharter, "new-charter", "", "amend only: the new charter version the order adopts")
	for _, n := range []string{"action", "epoch", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// addOrderDraftFlags registers the flags every command that drafts an
// order shares: the charter, the validity window, the reason, the file.
func addOrderDraftFlags(f *pflag.FlagSet, o *orderNewOptions) {
	f.StringArrayVar(&o.Charters, "charter", nil, "charter file; repeat for every version from 1 (default: the context's)")
	tieContext(f, "charter", "charter")
	f.StringVar(&o.NotBefore, "not-before", "", "RFC 3339 time from which the order is valid (default: now)")
	f.StringVar(&o.Expires, "expires", "24h", "validity: a duration after --not-before, or an RFC 3339 time")
	f.StringVar(&o.Reason, "reason", "", "why, in words, for the ledger (at most 1024 bytes)")
	f.StringVar(&o.Out, "out", "", "order file to create (required)")
}

// orderSignOptions are the flags of `order sign`.
type orderSignOptions struct {
	File           string
	Official       string
	KeyFile        string
	Charters       []string
	PassphraseFile string
}

func newOrderSignCmd() *cobra.Command {
	var o orderSignOptions
	cmd := &cobra.Command{
		Use:   "sign ORDERFILE --official ID --key KEYFILE [--charter FILE...]",
		Short: "Add your signature to an order (step 2 of the continuity procedure)",
		Long: `Sign the order in ORDERFILE as official --official with the Ed25519 key in
the age-encrypted key file --key, and rewrite ORDERFILE atomically with the
signature added. Read the order printed first: you sign every field of it.
Sign offline, then pass the file to the next official.

An official signs an order once; signing again is refused. With --charter
(every version from 1, or the context's), the order must be issued under
that charter and the key must be the one it gives the official, so that a
mistake shows here rather than at the site; sign then prints which
signatures the quorum still needs. Without a charter the key is not
checked, and sign says so. A signature that is wrong all the same (a key
the charter does not give, a signer outside the quorum's roles) is removed
with "chancery order unsign".

The key file's passphrase comes from --passphrase-file, or else from the
CHANCERY_PASSPHRASE environment variable.`,
		Example: `  chancery order sign activate.order --official min-interior --key min-interior.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			return runOrderSign(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	offlineSignerFlags(f, &o.Official, &o.KeyFile, &o.PassphraseFile)
	f.StringArrayVar(&o.Charters, "charter", nil, "charter file to check the order and key against; repeat for every version from 1 (default: the context's)")
	tieContext(f, "charter", "charter")
	return cmd
}

// orderVerifyOptions are the flags of `order verify`.
type orderVerifyOptions struct {
	File     string
	Charters []string
	Epoch    uint64
	Writer   string
	At       string
	// Now is the time of verification when At is empty (tests).
	Now time.Time
}

func newOrderVerifyCmd() *cobra.Command {
	var o orderVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify ORDERFILE --charter FILE... [--epoch N [--writer SITE]] [--at TIME]",
		Short: "Check an order's signatures, quorum and validity against the charter (step 3 of the continuity procedure)",
		Long: `Check the order in ORDERFILE against the charter (give every version from 1;
the chain is verified and the last version is used): issued for this guest
and charter version, every field allowed by the charter, each signature by
an official and valid, the quorum of the order's action met, and valid now
(or at --at). Prints who signed and what each signature counts for, and
what is still missing.

With --epoch N (the current epoch of the guest's ledger) the order
must also name the right epoch, and --writer (default: the home) is the
site writing epoch N. Without a ledger, replays cannot be checked here: the
site checks them when the order is submitted.

Exits non-zero if the order would be refused.`,
		Example: `  chancery order verify --charter charter.yaml activate.order --epoch 1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			return runOrderVerify(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Charters, "charter", nil, "charter file; repeat for every version from 1 (required; default: the context's)")
	tieContext(f, "charter", "charter")
	f.Uint64Var(&o.Epoch, "epoch", 0, "the current epoch; the order must fit it")
	f.StringVar(&o.Writer, "writer", "", "the site writing the current epoch (default: the home; needs --epoch)")
	f.StringVar(&o.At, "at", "", "RFC 3339 time to verify at (default: now)")
	return cmd
}

// readOrderFile reads an order file: the canonical encoding and one
// newline, which is all that is forgiven.
func readOrderFile(path string) (*continuity.SignedOrder, error) {
	b, err := fsutil.Read(path, continuity.MaxSignedOrderSize+1)
	if err != nil {
		return nil, fmt.Errorf("read order %s: %w", path, err)
	}
	so, err := continuity.ParseSignedOrder(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil {
		return nil, fmt.Errorf("read order %s: %w", path, err)
	}
	return so, nil
}

func orderFileBytes(so *continuity.SignedOrder) ([]byte, error) {
	b, err := so.Marshal()
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// rewriteOrderFile replaces the order file at path atomically with so.
func rewriteOrderFile(path string, so *continuity.SignedOrder) error {
	b, err := orderFileBytes(so)
	if err != nil {
		return err
	}
	return replaceFile(path, b)
}

func parseFlagTime(flag, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %q is not an RFC 3339 time such as 2026-03-01T12:00:00Z", flag, s)
	}
	return t, nil
}

func runOrderNew(w io.Writer, o orderNewOptions) error {
	if len(o.Charters) == 0 {
		return fmt.Errorf("order new: --charter is required (every version from 1), or a context (chancery context add)")
	}
	c, err := charter.ReadChain(o.Charters)
	if err != nil {
		return fmt.Errorf("order new: --charter: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	tmpl := continuity.Order{
		Action: o.Action, Epoch: o.Epoch, Site: o.Site, Access: o.Access, Reason: o.Reason,
		NotBefore: now.UTC().Truncate(time.Second),
	}
	for _, r := range o.Registries {
		if r = strings.TrimSpace(r); r != "" {
			tmpl.Registries = append(tmpl.Registries, r)
		}
	}
	if o.NotBefore != "" {
		if tmpl.NotBefore, err = parseFlagTime("not-before", o.NotBefore); err != nil {
			return fmt.Errorf("order new: %w", err)
		}
	}
	if d, derr := time.ParseDuration(o.Expires); derr == nil {
		if d <= 0 {
			return fmt.Errorf("order new: --expires: %s is not a positive duration", o.Expires)
		}
		tmpl.Expires = tmpl.NotBefore.Add(d)
	} else if tmpl.Expires, err = parseFlagTime("expires", o.Expires); err != nil {
		return fmt.Errorf("order new: --expires: %q is neither a duration such as 24h nor an RFC 3339 time", o.Expires)
	}
	if o.NewCharter != "" {
		if o.Action != charter.ActionAmend {
			return fmt.Errorf("order new: --new-charter is for --action amend, not %s", o.Action)
		}
		next, err := charter.ReadFile(o.NewCharter)
		if err != nil {
			return fmt.Errorf("order new: --new-charter: %w", err)
		}
		if next.Guest.ID != c.Guest.ID || next.Version != c.Version+1 || next.Previous != c.HashHex() {
			return fmt.Errorf("order new: --new-charter: %s is %s v%d (previous %.12s…), not the version after %s v%d (hash %.12s…)",
				o.NewCharter, next.Guest.ID, next.Version, next.Previous, c.Guest.ID, c.Version, c.HashHex())
		}
		tmpl.Amendment = next.HashHex()
	}
	order, err := continuity.NewOrder(c, tmpl)
	if err != nil {
		return fmt.Errorf("order new: %w", err)
	}
	so := &continuity.SignedOrder{Order: *order}
	b, err := orderFileBytes(so)
	if err != nil {
		return fmt.Errorf("order new: %w", err)
	}
	if err := fsutil.WriteNew(o.Out, b, 0o644); err != nil {
		return fmt.Errorf("order new: write %s: %w", o.Out, err)
	}
	rule, _ := c.Rule(order.Action)
	_, err = fmt.Fprintf(w, "%s\nwritten to %s, unsigned; %s needs %s.\nEach signer: chancery order sign %s --official ID --key KEYFILE\n",
		order, o.Out, order.Action, rule, o.Out)
	return err
}

func runOrderSign(w io.Writer, o orderSignOptions) error {
	if o.Official == "" || o.KeyFile == "" {
		return fmt.Errorf("order sign %s: --official and --key are required (or a context that names them: chancery context add)", o.File)
	}
	so, err := readOrderFile(o.File)
	if err != nil {
		return fmt.Errorf("order sign: %w", err)
	}
	var c *charter.Charter
	if len(o.Charters) > 0 {
		if c, err = charter.ReadChain(o.Charters); err != nil {
			return fmt.Errorf("order sign %s: --charter: %w", o.File, err)
		}
		if so.Order.Guest != c.Guest.ID || so.Order.CharterHash != c.HashHex() {
			return fmt.Errorf("order sign %s: order %s is for guest %s under charter %.12s…, not %s v%d (%.12s…)",
				o.File, so.Order.ID, so.Order.Guest, so.Order.CharterHash, c.Guest.ID, c.Version, c.HashHex())
		}
		if _, ok := c.Official(o.Official); !ok {
			return fmt.Errorf("order sign %s: --official: %s is not an official of %s v%d", o.File, o.Official, c.Guest.ID, c.Version)
		}
	}
	for _, s := range so.Signatures {
		if s.Official == o.Official {
			return fmt.Errorf("order sign %s: official %s has already signed order %s", o.File, o.Official, so.Order.ID)
		}
	}
	key, err := openOfficialKey(c, o.Official, o.KeyFile, o.PassphraseFile)
	if err != nil {
		return fmt.Errorf("order sign %s: %w", o.File, err)
	}
	defer clear(key)
	if err := continuity.Sign(so, o.Official, key); err != nil {
		return fmt.Errorf("order sign %s: %w", o.File, err)
	}
	if err := rewriteOrderFile(o.File, so); err != nil {
		return fmt.Errorf("order sign %s: %w", o.File, err)
	}
	if _, err := fmt.Fprintf(w, "%s\nsigned as %s; signers now: %s\n", &so.Order, o.Official, strings.Join(so.Signers(), ", ")); err != nil {
		return err
	}
	if c == nil {
		_, err = fmt.Fprintf(w, "not checked against a charter (give --charter, or use a context): a wrong key shows only at order verify\n")
		return err
	}
	return printQuorum(w, c, so, o.File)
}

// printQuorum says whether the order's signatures meet its action's
// quorum, and if not, what is still needed and which signatures do not
// count, with the command that removes a bad one.
func printQuorum(w io.Writer, c *charter.Charter, so *continuity.SignedOrder, file string) error {
	t := continuity.TallyOrder(c, so)
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	for _, s := range t.Signers {
		if s.Err != nil {
			p("signature of %s is REFUSED (%v): remove it with chancery order unsign %s --official %s\n", s.Official, s.Err, file, s.Official)
		}
	}
	if t.Quorum == nil {
		p("quorum: met (%s needs %s); next: chancery order verify %s, then chancery order submit\n", t.Action, t.Rule, file)
		return nil
	}
	p("quorum: not met yet: %s\n", strings.Replace(t.Quorum.Error(), ": "+continuity.ErrQuorum.Error(), "", 1))
	return nil
}

// orderUnsignOptions are the flags of `order unsign`.
type orderUnsignOptions struct {
	File      string
	Officials []string
	Refused   bool
	Charters  []string
}

func newOrderUnsignCmd() *cobra.Command {
	var o orderUnsignOptions
	cmd := &cobra.Command{
		Use:   "unsign ORDERFILE (--official ID... | --refused --charter FILE...)",
		Short: "Remove a signature from an order (a wrong key, the wrong official)",
		Long: `Remove signatures from the order in ORDERFILE and rewrite it atomically: those
of --official (repeat for several), or with --refused every signature the
charter refuses (an unknown official, a key the charter does not give
them). One refused signature makes a site refuse the whole order, so a
mistake must be removable; the order itself is unchanged, and every other
signature stays valid. Removing needs no key: a signature adds authority,
taking one away adds none.`,
		Example: `  chancery order unsign activate.order --official registrar
  chancery order unsign activate.order --refused --charter charter.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			return runOrderUnsign(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Officials, "official", nil, "remove this official's signature; repeat for several")
	f.BoolVar(&o.Refused, "refused", false, "remove every signature the charter refuses (needs --charter)")
	f.StringArrayVar(&o.Charters, "charter", nil, "charter file; repeat for every version from 1 (default: the context's)")
	tieContext(f, "charter", "charter")
	return cmd
}

func runOrderUnsign(w io.Writer, o orderUnsignOptions) error {
	if len(o.Officials) == 0 && !o.Refused {
		return fmt.Errorf("order unsign %s: give --official ID, or --refused with the charter", o.File)
	}
	so, err := readOrderFile(o.File)
	if err != nil {
		return fmt.Errorf("order unsign: %w", err)
	}
	var c *charter.Charter
	if len(o.Charters) > 0 {
		if c, err = charter.ReadChain(o.Charters); err != nil {
			return fmt.Errorf("order unsign %s: --charter: %w", o.File, err)
		}
	}
	drop := map[string]bool{}
	for _, id := range o.Officials {
		drop[id] = true
	}
	if o.Refused {
		if c == nil {
			return fmt.Errorf("order unsign %s: --refused needs the charter (--charter, or a context)", o.File)
		}
		for _, s := range continuity.TallyOrder(c, so).Signers {
			if s.Err != nil {
				drop[s.Official] = true
			}
		}
	}
	var kept []continuity.Signature
	var removed []string
	for _, s := range so.Signatures {
		if drop[s.Official] {
			removed = append(removed, s.Official)
			continue
		}
		kept = append(kept, s)
	}
	for _, id := range o.Officials {
		if !slices.Contains(removed, id) {
			return fmt.Errorf("order unsign %s: official %s has not signed order %s (signers: %s)", o.File, id, so.Order.ID, strings.Join(so.Signers(), ", "))
		}
	}
	if len(removed) == 0 {
		_, err := fmt.Fprintf(w, "order %s: no signature is refused; nothing removed\n", so.Order.ID)
		return err
	}
	so.Signatures = kept
	if err := rewriteOrderFile(o.File, so); err != nil {
		return fmt.Errorf("order unsign %s: %w", o.File, err)
	}
	if _, err := fmt.Fprintf(w, "removed the signature of %s; signers now: %s\n", strings.Join(removed, ", "), cmp.Or(strings.Join(so.Signers(), ", "), "none")); err != nil {
		return err
	}
	if c == nil {
		return nil
	}
	return printQuorum(w, c, so, o.File)
}

// noLedger is the history of a verifier without a ledger: it has seen no
// order, so it cannot tell a replay (the site can).
type noLedger struct{}

func (noLedger) HasOrderID(string) bool { return false }
func (noLedger) HasNonce(string) bool   { return false }

func runOrderVerify(w io.Writer, o orderVerifyOptions) error {
	if len(o.Charters) == 0 {
		return fmt.Errorf("order verify: --charter is required (every version from 1), or a context (chancery context add)")
	}
	c, err := charter.ReadChain(o.Charters)
	if err != nil {
		return fmt.Errorf("order verify: --charter: %w", err)
	}
	so, err := readOrderFile(o.File)
	if err != nil {
		return fmt.Errorf("order verify: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if o.At != "" {
		if now, err = parseFlagTime("at", o.At); err != nil {
			return fmt.Errorf("order verify: %w", err)
		}
	}
	if o.Writer != "" && o.Epoch == 0 {
		return fmt.Errorf("order verify: --writer needs --epoch")
	}
	ord := &so.Order
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("%s\n", ord)
	if ord.Reason != "" {
		p("reason: %s\n", ord.Reason)
	}
	match := "matches"
	if ord.Guest != c.Guest.ID || ord.CharterHash != c.HashHex() {
		match = "DIFFERS"
	}
	p("charter: order issued for %s under %s; checking against %s v%d %s: %s\n", ord.Guest, ord.CharterHash, c.Guest.ID, c.Version, c.HashHex(), match)
	t := continuity.TallyOrder(c, so)
	p("signatures:\n")
	if len(t.Signers) == 0 {
		p("  none yet\n")
	}
	for _, s := range t.Signers {
		roles := strings.Join(s.Roles, ",")
		switch {
		case s.Err != nil:
			p("  %s: REFUSED: %v\n", s.Official, s.Err)
		case s.Repeat:
			p("  %s (%s): good, but a repeat: counts once\n", s.Official, roles)
		case s.Counted:
			p("  %s (%s): good, counts\n", s.Official, roles)
		default:
			p("  %s (%s): good, but holds no role in the %s rule: counts for nothing\n", s.Official, roles, t.Action)
		}
	}
	if t.Quorum == nil {
		p("quorum: met (%s needs %s)\n", t.Action, t.Rule)
	} else {
		p("quorum: NOT met: %v\n", t.Quorum)
	}

	var verr error
	if o.Epoch == 0 {
		_, _, verr = continuity.Check(c, so, now)
		p("epoch: not checked (give --epoch N, the current epoch)\n")
	} else {
		writer := o.Writer
		if writer == "" {
			home, _ := c.Home()
			writer = home.ID
		}
		_, verr = continuity.Verify(c, so, continuity.State{Epoch: o.Epoch, Writer: writer, History: noLedger{}}, now)
	}
	p("replay: not checked here (the site checks its ledger)\n")
	if verr != nil {
		p("result: REFUSED at %s\n", now.UTC().Format(continuity.TimeLayout))
		return fmt.Errorf("order verify %s: %w", o.File, verr)
	}
	if o.Epoch != 0 {
		p("epoch: %d fits current epoch %d\n", ord.Epoch, o.Epoch)
	}
	p("result: acceptable at %s\n", now.UTC().Format(continuity.TimeLayout))
	return nil
}
