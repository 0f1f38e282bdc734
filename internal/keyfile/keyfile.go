// Package keyfile keeps Ed25519 private keys on disk, always inside an age
// envelope: sealed with a passphrase (age scrypt) or to an age recipient.
//
// It fails closed: there is no code path that writes a key unencrypted or
// accepts an unencrypted file, and a file that other users could read is
// refused before it is decrypted, because a leaked ciphertext is only as
// strong as its passphrase.
//
// The plaintext inside the envelope is exactly
//
//	"chancery-key/v1 ed25519\n" + base64std(32-byte seed) + "\n"
//
// for a signing key, or, for a custodian's age identity,
//
//	"chancery-key/v1 age\n" + "AGE-SECRET-KEY-…" + "\n"
//
// so that a key type or version can be told apart without guessing.
package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/chancery-gov/chancery/internal/fsutil"
)

// Header is the first line of the plaintext inside every key file.
const Header = "chancery-key/v1 ed25519\n"

// EnvPassphrase names the environment variable PassphraseFromEnv reads.
const EnvPassphrase = "CHANCERY_PASSPHRASE"

// EnvRootPassphrase names the environment variable for the passphrase of a
// root key file being written by "custody combine", which must differ from
// the passphrase of the identity the shares were sealed to.
const EnvRootPassphrase = "CHANCERY_ROOT_PASSPHRASE"

// maxFileSize bounds what ReadEd25519 will read: a key file is a few hundred
// bytes, so anything much larger is not one and is not worth decrypting.
const maxFileSize = 64 << 10

// Scrypt work factors (log2 N). Writers and readers share one range, so a
// file this program writes is one it can open: MaxWorkFactor (2^22, about
// 15 s) also caps what a file may demand of a reader, so a hostile file
// cannot make it spin for minutes. MinWorkFactor is the floor a writer
// accepts; it is low (2^10) because tests and demos found states by the
// dozen. Operators keep the default, DefaultWorkFactor.
const (
	MinWorkFactor     = 10
	MaxWorkFactor     = 22
	DefaultWorkFactor = 18
)

// CheckWorkFactor accepts 0 (DefaultWorkFactor) or a work factor in
// MinWorkFactor..MaxWorkFactor.
func CheckWorkFactor(wf int) error {
	if wf != 0 && (wf < MinWorkFactor || wf > MaxWorkFactor) {
		return fmt.Errorf("scrypt work factor %d outside %d..%d (0 means the default, %d): a reader would refuse a higher one, and a lower one is too cheap to guess against",
			wf, MinWorkFactor, MaxWorkFactor, DefaultWorkFactor)
	}
	return nil
}

// Passphrase strength: a passphrase is the only secret between a stolen
// key file and its key, so a writer refuses one that is short or built of
// few distinct characters. The estimate is deliberately simple — length ×
// log2 of the character classes used — and a floor, not a guarantee: a
// line from a book passes it and is still guessable.
const (
	MinPassphraseLen  = 12
	minDistinctChars  = 6
	minPassphraseBits = 60
)

// ErrWeakPassphrase is returned (wrapped, with the reason) by every writer
// given a passphrase that fails CheckPassphrase.
var ErrWeakPassphrase = errors.New("passphrase too weak")

// CheckPassphrase refuses a passphrase shorter than MinPassphraseLen
// characters, with fewer than 6 distinct characters, or with an estimated
// strength under 60 bits (length × log2 of the size of the character
// classes it uses: lower case, upper case, digits, anything else).
func CheckPassphrase(pass []byte) error {
	const hint = "use four or more random words, or 12+ random characters"
	r := []rune(string(pass))
	if len(r) < MinPassphraseLen {
		return fmt.Errorf("%w: %d characters, want at least %d (%s)", ErrWeakPassphrase, len(r), MinPassphraseLen, hint)
	}
	distinct := map[rune]bool{}
	var lower, upper, digit, other bool
	for _, c := range r {
		distinct[c] = true
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	if len(distinct) < minDistinctChars {
		return fmt.Errorf("%w: only %d distinct characters, want at least %d (%s)", ErrWeakPassphrase, len(distinct), minDistinctChars, hint)
	}
	pool := 0
	for _, c := range []struct {
		used bool
		n    int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}} {
		if c.used {
			pool += c.n
		}
	}
	if bits := float64(len(r)) * math.Log2(float64(pool)); bits < minPassphraseBits {
		return fmt.Errorf("%w: about %.0f bits, want at least %d (%s)", ErrWeakPassphrase, bits, minPassphraseBits, hint)
	}
	return nil
}

// ScryptRecipient is the age recipient for sealing with a passphrase: it
// refuses a weak passphrase (CheckPassphrase) and a work factor outside
// the range readers accept (CheckWorkFactor; 0 is the default).
func ScryptRecipient(pass []byte, workFactor int) (*age.ScryptRecipient, error) {
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase: refusing to write a key unencrypted")
	}
	if err := CheckPassphrase(pass); err != nil {
		return nil, err
	}
	if err := CheckWorkFactor(workFactor); err != nil {
		return nil, err
	}
	r, err := age.NewScryptRecipient(string(pass))
	if err != nil {
		return nil, fmt.Errorf("scrypt recipient: %w", err)
	}
	if workFactor != 0 {
		r.SetWorkFactor(workFactor)
	}
	return r, nil
}

// ScryptIdentity is the age identity for opening with a passphrase: it
// refuses a file demanding more than MaxWorkFactor.
func ScryptIdentity(pass []byte) (*age.ScryptIdentity, error) {
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase")
	}
	id, err := age.NewScryptIdentity(string(pass))
	if err != nil {
		return nil, fmt.Errorf("scrypt identity: %w", err)
	}
	id.SetMaxWorkFactor(MaxWorkFactor)
	return id, nil
}

// Protector says how a key file is encrypted: by passphrase (age scrypt) or
// to an age identity.
type Protector struct {
	// Passphrase is the age scrypt passphrase; used if Identity == nil
	// (reading) or Recipient == nil (writing).
	Passphrase []byte
	// WorkFactor is scrypt's log2 N when writing: 0 (DefaultWorkFactor)
	// or MinWorkFactor..MaxWorkFactor. Tests and demos use 10–15 to stay
	// fast.
	WorkFactor int
	// Identity, if set, decrypts instead of the passphrase.
	Identity age.Identity
	// Recipient, if set, encrypts instead of the passphrase.
	Recipient age.Recipient
}

func (p Protector) recipient() (age.Recipient, error) {
	if p.Recipient != nil {
		return p.Recipient, nil
	}
	if len(p.Passphrase) == 0 {
		return nil, errors.New("no passphrase and no recipient: refusing to write an unencrypted key")
	}
	return ScryptRecipient(p.Passphrase, p.WorkFactor)
}

func (p Protector) identity() (age.Identity, error) {
	if p.Identity != nil {
		return p.Identity, nil
	}
	if len(p.Passphrase) == 0 {
		return nil, errors.New("no passphrase and no identity to decrypt with")
	}
	return ScryptIdentity(p.Passphrase)
}

// WriteEd25519 seals key under p and writes it to path with mode 0600.
func WriteEd25519(path string, key ed25519.PrivateKey, p Protector) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("write key file %s: private key is %d bytes, want %d", path, len(key), ed25519.PrivateKeySize)
	}
	plain := encodePlaintext(key.Seed())
	defer clear(plain)
	return writeSealed(path, plain, p)
}

// ReadEd25519 opens the key file at path with p and returns the key.
//
// It refuses a file that is not a regular file or that group or others may
// read or write (mode & 0077 != 0), and any plaintext that is not exactly the
// documented format.
func ReadEd25519(path string, p Protector) (ed25519.PrivateKey, error) {
	plain, err := readSealed(path, p)
	defer clear(plain)
	if err != nil {
		return nil, err
	}
	seed, err := decodePlaintext(plain)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// writeSealed seals plain under p and writes it to path with mode 0600.
//
// The write is atomic: a temporary file in the same directory is written and
// fsynced, then hard-linked to path (which fails if path exists, so an
// existing key is never overwritten, even by a concurrent writer), and the
// directory is fsynced so the new name survives a crash.
func writeSealed(path string, plain []byte, p Protector) error {
	rcpt, err := p.recipient()
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("write key file %s: %w", path, os.ErrExist)
	}
	var sealed bytes.Buffer
	w, err := age.Encrypt(&sealed, rcpt)
	if err != nil {
		return fmt.Errorf("write key file %s: encrypt: %w", path, err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("write key file %s: encrypt: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write key file %s: encrypt: %w", path, err)
	}

	if err := fsutil.WriteNew(path, sealed.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// readSealed opens the sealed file at path with p and returns its
// plaintext, which the caller clears when done.
func readSealed(path string, p Protector) ([]byte, error) {
	id, err := p.identity()
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	data, err := fsutil.ReadPrivate(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: decrypt: %w", path, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxFileSize))
	if err != nil {
		clear(plain)
		// age authenticates every chunk: a modified payload ends up here.
		return nil, fmt.Errorf("read key file %s: decrypt: %w", path, err)
	}
	return plain, nil
}

// PassphraseFromEnv returns the passphrase to open key files with: the
// contents of file if file is not empty (one trailing "\n" or "\r\n" is
// dropped, and the file must not be readable by group or others), otherwise
// the value of $CHANCERY_PASSPHRASE. It is an error if neither gives a
// non-empty passphrase: callers must not fall back to an empty one.
func PassphraseFromEnv(file string) ([]byte, error) {
	return PassphraseFrom(file, EnvPassphrase)
}

// PassphraseFrom is PassphraseFromEnv with another environment variable.
func PassphraseFrom(file, env string) ([]byte, error) {
	if file != "" {
		data, err := fsutil.ReadPrivate(file, maxFileSize)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file %s: %w", file, err)
		}
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
		if len(data) == 0 {
			return nil, fmt.Errorf("read passphrase file %s: file is empty", file)
		}
		return data, nil
	}
	if v := os.Getenv(env); v != "" {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("no passphrase: give a passphrase file or set $%s", env)
}

func encodePlaintext(seed []byte) []byte {
	enc := base64.StdEncoding
	out := make([]byte, 0, len(Header)+enc.EncodedLen(len(seed))+1)
	out = append(out, Header...)
	out = enc.AppendEncode(out, seed)
	return append(out, '\n')
}

func decodePlaintext(plain []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(plain, []byte(Header))
	if !ok {
		line, _, _ := strings.Cut(string(plain), "\n")
		if len(line) > 40 {
			line = line[:40]
		}
		return nil, fmt.Errorf("not a chancery ed25519 key (header %q, want %q)", line, strings.TrimSuffix(Header, "\n"))
	}
	b64, ok := bytes.CutSuffix(rest, []byte("\n"))
	if !ok || bytes.ContainsAny(b64, "\r\n") {
		return nil, errors.New("malformed key: want one base64 line after the header")
	}
	seed := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(seed, b64)
	if err != nil || n != ed25519.SeedSize {
		clear(seed)
		return nil, fmt.Errorf("malformed key: want base64 of a %d-byte seed", ed25519.SeedSize)
	}
	return seed[:n], nil
}
