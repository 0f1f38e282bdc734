package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

// newCharterCmd wires `chancery charter`. Each subcommand parses flags into
// an options struct and calls a run function, so tests need no shell.
func newCharterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "charter",
		Short: "Show, hash, sign and verify the charter that governs a guest state's sites",
		Long: `The charter is the signed agreement between a guest state and the host
states that run its embassy sites: parties, sites and their keys, officials
and their roles, custodians, registries, the quorum every action needs, and
what a host may do. See docs/charter.md for every field.

A charter version is valid when the amend quorum (of the previous version,
for an amendment) and every host with sites in it have signed its canonical
encoding.`,
	}
	cmd.AddCommand(newCharterShowCmd(), newCharterHashCmd(), newCharterVerifyCmd(), newCharterSignCmd(), newCharterKeygenCmd())
	return cmd
}

func newCharterShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE",
		Short: "Print a human summary of a charter",
		Long: `Parse a charter and print its guest, sites per host, officials and roles,
custodian threshold, registries, quorum rules in words, version and hash.
Signatures are listed but not checked; use "chancery charter verify".`,
		Example: `  chancery charter show ./dr/charter.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCharterShow(cmd.OutOrStdout(), args[0])
		},
	}
}

func newCharterHashCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash FILE",
		Short: "Print the SHA-256 of a charter's canonical encoding",
		Long: `Print the lowercase hex SHA-256 of the charter's canonical encoding: the
value the next version must put in its "previous" field. Formatting,
field order and signatures do not change it.`,
		Example: `  chancery charter hash charter-v1.yaml   # the "previous" of charter-v2.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCharterHash(cmd.OutOrStdout(), args[0])
		},
	}
}

func newCharterVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify FILE...",
		Short: "Verify a charter, or a chain of versions 1..n, and its signatures",
		Long: `Parse each file, check that they are versions 1, 2, ..., n of one guest's
charter chained by hash, and that each is signed by the amend quorum of the
version before it (its own, for version 1) and by every host with sites in
it. Give every version from 1; a lone version above 1 cannot be verified.
Exits non-zero on any failure.`,
		Example: `  chancery charter verify charter-v1.yaml charter-v2.yaml charter-v3.yaml`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCharterVerify(cmd.OutOrStdout(), args)
		},
	}
}

// charterSignOptions are the flags of `charter sign`.
type charterSignOptions struct {
	File           string
	As             string
	Kind           string
	KeyFile        string
	Previous       string
	PassphraseFile string
}

func newCharterSignCmd() *cobra.Command {
	var o charterSignOptions
	cmd := &cobra.Command{
		Use:   "sign FILE --as ID --kind official|host --key KEYFILE [--previous PREV_FILE]",
		Short: "Add or replace one signer's signature in a charter file",
		Long: `Sign the canonical encoding of the charter in FILE as the official or host
--as, with the private key in the age-encrypted key file --key, and rewrite
FILE atomically with the signature added (or replacing that signer's earlier
one). The key must match the public key the charter gives the signer; for an
amendment (version > 1) pass the version it amends with --previous, whose
officials and keys decide who may sign.

The key file's passphrase comes from --passphrase-file, or else from the
CHANCERY_PASSPHRASE environment variable.`,
		Example: `  chancery charter sign charter-v2.yaml --as min-interior --kind official \
      --key min-interior.key --previous charter-v1.yaml --passphrase-file pw.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			return runCharterSign(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.As, "as", "", "id of the official or host signing (required)")
	f.StringVar(&o.Kind, "kind", charter.KindOfficial, "signer kind: official or host")
	f.StringVar(&o.KeyFile, "key", "", "age-encrypted key file of the signer (required; see 'charter keygen')")
	f.StringVar(&o.Previous, "previous", "", "the charter version FILE amends (required when FILE's version > 1)")
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the key file's passphrase (default: $"+keyfile.EnvPassphrase+")")
	_ = cmd.MarkFlagRequired("as")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

// charterKeygenOptions are the flags of `charter keygen`.
type charterKeygenOptions struct {
	Out            string
	PassphraseFile string
	WorkFactor     int
}

func newCharterKeygenCmd() *cobra.Command {
	var o charterKeygenOptions
	cmd := &cobra.Command{
		Use:   "keygen KEYFILE",
		Short: "Create an Ed25519 signing key, sealed with a passphrase, and print its public key",
		Long: `Generate an Ed25519 key for an official or a host, write it to KEYFILE
sealed with age (scrypt passphrase from --passphrase-file or
$CHANCERY_PASSPHRASE; mode 0600; never overwrites), and print the public
key in the base64 form a charter's "key" field takes.`,
		Example: `  chancery charter keygen keys/official-registrar.key --passphrase-file ~/.chancery-pass`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Out = args[0]
			return runCharterKeygen(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.PassphraseFile, "passphrase-file", "", "file holding the passphrase (default: $"+keyfile.EnvPassphrase+")")
	cmd.Flags().IntVar(&o.WorkFactor, "work-factor", 0, "scrypt log2 N (default: age's, 18); lower only for tests")
	return cmd
}

func runCharterShow(w io.Writer, path string) error {
	c, err := charter.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, charter.Summary(c))
	return err
}

func runCharterHash(w io.Writer, path string) error {
	c, err := charter.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, c.HashHex())
	return err
}

func runCharterVerify(w io.Writer, paths []string) error {
	last, err := charter.ReadChain(paths)
	if err != nil {
		return err
	}
	signers := make([]string, 0, len(last.Signatures))
	for _, s := range last.Signatures {
		signers = append(signers, fmt.Sprintf("%s (%s)", s.Signer, s.Kind))
	}
	if _, err := fmt.Fprintf(w, "charter %s v%d valid: hash %s; signed by %s\n",
		last.Guest.ID, last.Version, last.HashHex(), strings.Join(signers, ", ")); err != nil {
		return err
	}
	return warnClassicalCustodians(w, last)
}

// warnClassicalCustodians says which custodians have a classical X25519
// age recipient: a share sealed to one can be opened by whoever keeps the
// file and later has a quantum computer, so the hybrid sealing of the
// others does not protect the root once the threshold is classical.
func warnClassicalCustodians(w io.Writer, c *charter.Charter) error {
	var classical []string
	for _, m := range c.Custodians.Members {
		if strings.HasPrefix(m.Recipient, "age1") && !strings.HasPrefix(m.Recipient, "age1pq1") {
			classical = append(classical, m.ID)
		}
	}
	if len(classical) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "warning: %d of %d custodians have a classical X25519 recipient (age1…), not a hybrid post-quantum one (age1pq1…): %s; "+
		"their shares can be opened by whoever keeps the custody package and later has a quantum computer. Give them age1pq1 recipients (age-keygen -pq) in an amendment, and resplit.\n",
		len(classical), len(c.Custodians.Members), strings.Join(classical, ", "))
	return err
}

func runCharterSign(w io.Writer, o charterSignOptions) error {
	c, err := charter.ReadFile(o.File)
	if err != nil {
		return err
	}
	var prev *charter.Charter
	if o.Previous != "" {
		if prev, err = charter.ReadFile(o.Previous); err != nil {
			return err
		}
	}
	pass, err := readPassphrase(o.PassphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return fmt.Errorf("sign %s: %w", o.File, err)
	}
	key, err := keyfile.ReadEd25519(o.KeyFile, keyfile.Protector{Passphrase: pass})
	clear(pass)
	if err != nil {
		return fmt.Errorf("sign %s: %w", o.File, err)
	}
	if err := charter.Sign(c, prev, o.Kind, o.As, key); err != nil {
		return fmt.Errorf("sign %s: %w", o.File, err)
	}
	out, err := c.Marshal()
	if err != nil {
		return err
	}
	if err := replaceFile(o.File, out); err != nil {
		return fmt.Errorf("sign %s: %w", o.File, err)
	}
	_, err = fmt.Fprintf(w, "signed charter %s v%d (hash %s) as %s %s\n", c.Guest.ID, c.Version, c.HashHex(), o.Kind, o.As)
	return err
}

func runCharterKeygen(w io.Writer, o charterKeygenOptions) error {
	pass, err := readPassphrase(o.PassphraseFile, os.Stdin, os.Stderr)
	if err != nil {
		return fmt.Errorf("keygen %s: %w", o.Out, err)
	}
	defer clear(pass)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("keygen %s: %w", o.Out, err)
	}
	if err := keyfile.WriteEd25519(o.Out, priv, keyfile.Protector{Passphrase: pass, WorkFactor: o.WorkFactor}); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, base64.StdEncoding.EncodeToString(pub))
	return err
}

// replaceFile atomically replaces path with data: write a temp file in the
// same directory, fsync, rename over path, fsync the directory. A crash
// leaves either the old charter or the new one, never half of each. The
// file keeps its permissions.
func replaceFile(path string, data []byte) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
