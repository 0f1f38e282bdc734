package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/continuity"
	"github.com/chancery-gov/chancery/internal/harden"
	"github.com/chancery-gov/chancery/internal/keyfile"
	"github.com/chancery-gov/chancery/seal"
)

// newCustodyCmd wires `chancery custody`: splitting the root key among the
// charter's custodians, a custodian checking (and exporting) their share,
// and recombining shares into the root. Each subcommand parses flags into
// an options struct and calls a run function, so tests need no shell.
func newCustodyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "custody",
		Short: "Split the root key among custodians, check a share, recombine shares",
		Long: `The guest state's root key is split among the charter's custodians so that
any threshold of them, and no fewer, can rebuild it (Shamir secret sharing
over Ristretto255's scalar field, with a hash commitment per share). Each
share is sealed to its custodian's age recipient from the charter; the
commitments let a custodian check their share alone, without learning
anything about the root, even with a quantum computer.

A share never leaves memory in clear: "custody verify --export" writes it
sealed to the recipient given with --to (the activating site's one-time
unseal key), and "custody combine" opens such files. See docs/seal.md.`,
	}
	// Every custody command holds a root, a share or a custodian's key:
	// no core dump, no ptrace by the same user, before any is read.
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if r := harden.Process(); len(r.Errs) > 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "chancery custody:", r)
		}
		// The root's hook does not run under this one (cobra runs the
		// nearest): warn about old flag spellings here too.
		return applyContext(cmd)
	}
	cmd.AddCommand(newCustodyNewRootCmd(), newCustodySplitCmd(), newCustodyVerifyCmd(), newCustodyCombineCmd(), newCustodyResealCmd())
	return cmd
}

// custodyNewRootOptions are the flags of `custody new-root`.
type custodyNewRootOptions struct {
	Out            string
	PassphraseFile string
	WorkFactor     int
}

func newCustodyNewRootCmd() *cobra.Command {
	var o custodyNewRootOptions
	cmd := &cobra.Command{
		Use:   "new-root --out ROOTKEYFILE",
		Short: "Create a new root key, sealed with a passphrase",
		Long: `Draw a new random root key and write it to --out sealed with age (scrypt
passphrase from --passphrase-file or $CHANCERY_PASSPHRASE; mode 0600; never
overwrites). Prints the root's public commitment, which every custody
package of this root carries.`,
		Example: `  chancery custody new-root --out keys/root.key --passphrase-file ~/.chancery-pass`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustodyNewRoot(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "root key file to create (required)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the passphrase (default: $"+keyfile.EnvPassphrase+")")
	f.IntVar(&o.WorkFactor, "work-factor", 0, "scrypt log2 N (default: age's, 18); lower only for tests")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// custodySplitOptions are the flags of `custody split`.
type custodySplitOptions struct {
	Charters       []string
	RootKey        string
	Out            string
	PassphraseFile string
}

func newCustodySplitCmd() *cobra.Command {
	var o custodySplitOptions
	cmd := &cobra.Command{
		Use:   "split --charter FILE... --root-key ROOTKEYFILE --out PACKAGE",
		Short: "Split the root key among the charter's custodians into a custody package",
		Long: `Read the root key (sealed with the passphrase from --passphrase-file or
$CHANCERY_PASSPHRASE) and split it among the custodians of the charter,
with the charter's threshold, sealing each share to the custodian's age
recipient. The charter decides who receives shares, so it is verified
first: give every version from 1 (--charter v1.yaml --charter v2.yaml ...);
the last one is used. The package holds no secret in clear; it is written
to --out (never overwriting) and may be handed to every custodian.`,
		Example: `  chancery custody split --charter charter.yaml --root-key root.key --out custody.pkg`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustodySplit(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Charters, "charter", nil, "charter file; repeat for every version from 1 (required)")
	f.StringVar(&o.RootKey, "root-key", "", "sealed root key file (required)")
	f.StringVar(&o.Out, "out", "", "custody package file to create (required)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the root key's passphrase (default: $"+keyfile.EnvPassphrase+")")
	for _, n := range []string{"charter", "root-key", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// custodyVerifyOptions are the flags of `custody verify`.
type custodyVerifyOptions struct {
	Package        string
	Custodian      string
	Identity       string
	PassphraseFile string
	Export         string
	To             string
}

func newCustodyVerifyCmd() *cobra.Command {
	var o custodyVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify --custody PACKAGE --custodian ID --identity KEYFILE [--export FILE --to RECIPIENT]",
		Short: "Check your share against the package's commitment; optionally export it sealed",
		Long: `A custodian opens their share in PACKAGE with their sealed age identity
(KEYFILE, passphrase from --passphrase-file or $CHANCERY_PASSPHRASE) and
checks it against the package's public commitment. This proves the share
is sound and belongs to this package without revealing anything about the
root key. The share is never printed.

With --export FILE --to RECIPIENT the share is written to FILE sealed to the
age recipient RECIPIENT — typically the one-time unseal key of the site
being activated — for "custody combine" there.`,
		Example: `  chancery custody verify --custody custody.pkg --custodian cust-1 --identity cust-1.key
  chancery custody verify --custody custody.pkg --custodian cust-1 --identity cust-1.key \
      --export cust-1.share --to age1...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustodyVerify(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Package, "custody", "", "custody package file, D/custody.json (required)")
	f.StringVar(&o.Package, "package", "", "old spelling of --custody")
	aliasFlag(f, "package", "--custody")
	f.StringVar(&o.Custodian, "custodian", "", "your custodian id in the charter (required)")
	f.StringVar(&o.Identity, "identity", "", "your sealed age identity key file (required)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the identity's passphrase (default: $"+keyfile.EnvPassphrase+")")
	f.StringVar(&o.Export, "export", "", "write the share, sealed to --to, to this new file")
	f.StringVar(&o.To, "to", "", "age recipient to seal the exported share to (required with --export)")
	cmd.MarkFlagsOneRequired("custody", "package")
	for _, n := range []string{"custodian", "identity"} {
		_ = cmd.MarkFlagRequired(n)
	}
	cmd.MarkFlagsRequiredTogether("export", "to")
	return cmd
}

// custodyCombineOptions are the flags of `custody combine`.
type custodyCombineOptions struct {
	Package           string
	Shares            []string
	Identity          string
	Out               string
	PassphraseFile    string
	OutPassphraseFile string
	WorkFactor        int
	// Charters, if given, is the charter chain whose custodians.package
	// the package must be (continuity.CheckCustody).
	Charters []string
}

func newCustodyCombineCmd() *cobra.Command {
	var o custodyCombineOptions
	cmd := &cobra.Command{
		Use:   "combine --custody PACKAGE --share FILE... --identity KEYFILE --out ROOTKEYFILE",
		Short: "Rebuild the root key from a threshold of exported shares",
		Long: `Open the share files (exported with "custody verify --export", sealed to
the recipient of --identity), verify each against PACKAGE's commitment, and
rebuild the root key once at least the threshold of distinct custodians'
shares are valid. A bad share is named by custodian and nothing is
recovered; drop it and retry with others. The root is checked against the
package's root commitment and written to --out sealed with its own
passphrase (--out-passphrase-file or $CHANCERY_ROOT_PASSPHRASE), which must
differ from the identity's (--passphrase-file or $CHANCERY_PASSPHRASE): the
two files guard different secrets and may travel apart. With --charter, the
package must be the one the charter pins (custodians.package and
custodians.commitment) before any share is opened.`,
		Example: `  chancery custody combine --custody custody.pkg --identity site-unseal.key \
      --share cust-1.share --share cust-3.share --share cust-4.share --out root.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCustodyCombine(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Package, "custody", "", "custody package file, D/custody.json (required)")
	f.StringVar(&o.Package, "package", "", "old spelling of --custody")
	aliasFlag(f, "package", "--custody")
	f.StringArrayVar(&o.Shares, "share", nil, "exported share file; repeat (required)")
	f.StringVar(&o.Identity, "identity", "", "sealed age identity the shares were exported to (required)")
	f.StringVar(&o.Out, "out", "", "root key file to create (required)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the passphrase of --identity (default: $"+keyfile.EnvPassphrase+")")
	f.StringVar(&o.OutPassphraseFile, "out-passphrase-file", "", "file holding the passphrase for --out (default: $"+keyfile.EnvRootPassphrase+")")
	f.IntVar(&o.WorkFactor, "work-factor", 0, "scrypt log2 N for --out (default: age's, 18); lower only for tests")
	f.StringArrayVar(&o.Charters, "charter", nil, "charter file whose pinned custody package the --custody file must be; repeat for every version from 1")
	cmd.MarkFlagsOneRequired("custody", "package")
	for _, n := range []string{"share", "identity", "out"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func runCustodyNewRoot(w io.Writer, o custodyNewRootOptions) error {
	pass, err := readPassphrase(o.PassphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return fmt.Errorf("new root %s: %w", o.Out, err)
	}
	defer clear(pass)
	r, err := seal.NewRootKey()
	if err != nil {
		return fmt.Errorf("new root %s: %w", o.Out, err)
	}
	defer r.Wipe()
	c, err := r.Commitment()
	if err != nil {
		return fmt.Errorf("new root %s: %w", o.Out, err)
	}
	if err := seal.WriteRootKeyFile(o.Out, r, pass, o.WorkFactor); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "root key written to %s; root commitment %x\n", o.Out, c)
	return err
}

func runCustodySplit(w io.Writer, o custodySplitOptions) error {
	// The charter names who receives shares: an unsigned or forged one
	// would hand the root to whoever wrote it.
	c, err := charter.ReadChain(o.Charters)
	if err != nil {
		return fmt.Errorf("custody split: %w", err)
	}
	custodians := make([]seal.Custodian, 0, len(c.Custodians.Members))
	for _, m := range c.Custodians.Members {
		custodians = append(custodians, seal.Custodian{ID: m.ID, Recipient: m.Recipient})
	}
	pass, err := readPassphrase(o.PassphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return fmt.Errorf("custody split: root key %s: %w", o.RootKey, err)
	}
	r, err := seal.ReadRootKeyFile(o.RootKey, pass)
	clear(pass)
	if err != nil {
		return err
	}
	defer r.Wipe()
	p, err := seal.Split(c.Guest.ID, r, c.Custodians.Threshold, custodians)
	if err != nil {
		return fmt.Errorf("custody split: %w", err)
	}
	if err := p.WriteFile(o.Out); err != nil {
		return err
	}
	id := p.PackageID()
	rc := p.RootCommitment()
	_, err = fmt.Fprintf(w, "custody package %s: guest %s, %d of %d custodians (%s)\npackage id %x\nroot commitment %x\n",
		o.Out, p.Guest(), p.Threshold(), len(custodians), custodianIDs(p), id, rc)
	return err
}

func custodianIDs(p *seal.CustodyPackage) string {
	ids := make([]string, 0, len(p.Custodians()))
	for _, c := range p.Custodians() {
		ids = append(ids, c.ID)
	}
	return strings.Join(ids, ", ")
}

// readIdentity opens a sealed age identity with the passphrase source.
func readIdentity(path, passphraseFile string) (age.Identity, error) {
	pass, err := readPassphrase(passphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	defer clear(pass)
	return keyfile.ReadAgeIdentity(path, keyfile.Protector{Passphrase: pass})
}

func runCustodyVerify(w io.Writer, o custodyVerifyOptions) error {
	var to age.Recipient
	if o.Export != "" || o.To != "" {
		if o.Export == "" || o.To == "" {
			return fmt.Errorf("custody verify: --export and --to go together: a share is only ever written sealed")
		}
		rs, err := age.ParseRecipients(strings.NewReader(o.To))
		if err != nil || len(rs) != 1 {
			return fmt.Errorf("custody verify: --to: want one age recipient (age1… or age1pq1…)")
		}
		to = rs[0]
	}
	p, err := seal.ReadCustodyPackageFile(o.Package)
	if err != nil {
		return err
	}
	id, err := readIdentity(o.Identity, o.PassphraseFile)
	if err != nil {
		return fmt.Errorf("custody verify: %w", err)
	}
	s, err := p.OpenShare(o.Custodian, id)
	if err != nil {
		return fmt.Errorf("custody verify %s: %w", o.Package, err)
	}
	defer s.Wipe()
	pid, rc := p.PackageID(), p.RootCommitment()
	if _, err := fmt.Fprintf(w, "share of custodian %s (index %d; %d of %d needed) for guest %s verifies against the package's commitment\npackage id %x\nroot commitment %x\n",
		s.Custodian(), s.Index(), p.Threshold(), len(p.Custodians()), p.Guest(), pid, rc); err != nil {
		return err
	}
	if to == nil {
		return nil
	}
	if err := seal.WriteShareFile(o.Export, s, to); err != nil {
		return fmt.Errorf("custody verify: %w", err)
	}
	_, err = fmt.Fprintf(w, "share exported to %s, sealed to %.20s…\n", o.Export, o.To)
	return err
}

func runCustodyCombine(w io.Writer, o custodyCombineOptions) error {
	p, err := seal.ReadCustodyPackageFile(o.Package)
	if err != nil {
		return err
	}
	if len(o.Charters) > 0 {
		c, err := charter.ReadChain(o.Charters)
		if err != nil {
			return fmt.Errorf("custody combine: %w", err)
		}
		if err := continuity.CheckCustody(c, p); err != nil {
			return fmt.Errorf("custody combine %s: %w", o.Package, err)
		}
	}
	// Ask for both passphrases before any share is opened, and refuse one
	// passphrase for both files.
	pass, err := keyfile.PassphraseFrom(o.OutPassphraseFile, keyfile.EnvRootPassphrase)
	if err != nil {
		return fmt.Errorf("custody combine: passphrase for %s: %w", o.Out, err)
	}
	defer clear(pass)
	idPass, err := readPassphrase(o.PassphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return fmt.Errorf("custody combine: passphrase for identity %s: %w", o.Identity, err)
	}
	same := bytes.Equal(idPass, pass)
	clear(idPass)
	if same {
		return fmt.Errorf("custody combine: the passphrase for %s is the identity's: give the root key its own (--out-passphrase-file or $%s)", o.Out, keyfile.EnvRootPassphrase)
	}
	id, err := readIdentity(o.Identity, o.PassphraseFile)
	if err != nil {
		return fmt.Errorf("custody combine: %w", err)
	}
	var shares []*seal.Share
	defer func() {
		for _, s := range shares {
			s.Wipe()
		}
	}()
	for _, path := range o.Shares {
		s, err := seal.ReadShareFile(path, id)
		if err != nil {
			return fmt.Errorf("custody combine: %w", err)
		}
		shares = append(shares, s)
	}
	r, err := p.Combine(shares)
	if err != nil {
		return fmt.Errorf("custody combine: %w", err)
	}
	defer r.Wipe()
	if err := seal.WriteRootKeyFile(o.Out, r, pass, o.WorkFactor); err != nil {
		return err
	}
	rc := p.RootCommitment()
	_, err = fmt.Fprintf(w, "root key of %s rebuilt from %d shares and written to %s; root commitment %x (matches the package)\n",
		p.Guest(), len(shares), o.Out, rc)
	return err
}
