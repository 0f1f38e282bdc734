package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/cloudflare/circl/group"

	"github.com/chancery-gov/chancery/internal/fsutil"
	"github.com/chancery-gov/chancery/internal/keyfile"
)

// ErrWiped is returned by any operation on a key after Wipe.
var ErrWiped = errors.New("seal: key has been wiped")

// suite is the prime-order group whose scalar field custody's Shamir
// sharing works in; no group element is ever computed or published.
// Ristretto255 has constant-time scalar arithmetic in circl, unlike its
// NIST curves, and 32-byte canonical encodings.
var suite = group.Ristretto255

// RootKey is the guest state's root secret: a random Ristretto255 scalar s,
// which custody splits, and the 32-byte key material R derived from it,
// from which every other key of the hierarchy is derived.
//
// R is derived rather than being s's bytes so that the key material is a
// uniform 256-bit string independent of the group's encoding.
type RootKey struct {
	s     group.Scalar
	key   [keySize]byte
	wiped bool
}

// NewRootKey draws a fresh root: a uniformly random non-zero scalar (circl
// reduces 64 bytes from crypto/rand modulo the group order).
func NewRootKey() (*RootKey, error) {
	s := suite.RandomNonZeroScalar(rand.Reader)
	r, err := rootFromScalar(s)
	s.SetUint64(0)
	return r, err
}

// rootFromScalar copies s and derives R from it:
//
//	R = HKDF-SHA256(IKM = s (32 bytes, little-endian canonical),
//	                salt = "chancery/seal/v1 root", info = "chancery/seal/v1 root-key")
func rootFromScalar(s group.Scalar) (*RootKey, error) {
	if s.IsZero() {
		return nil, errors.New("seal: root scalar is zero")
	}
	sb, err := s.MarshalBinary()
	defer clear(sb)
	if err != nil {
		return nil, fmt.Errorf("seal: encode root scalar: %w", err)
	}
	k, err := hkdf.Key(sha256.New, sb, []byte(labelRootSalt), labelRootKey, keySize)
	defer clear(k)
	if err != nil {
		return nil, fmt.Errorf("seal: derive root key: %w", err)
	}
	r := &RootKey{s: s.Copy()}
	copy(r.key[:], k)
	return r, nil
}

// Commitment is the root check value, the public fingerprint of the root:
//
//	HKDF-Expand(HKDF-Extract(salt = "chancery/seal/v1", R),
//	            info = deriveInfo("root-check", "", "", 0), 32)
//
// the same PRK as the keyring's, under a purpose no key uses. Every custody
// package of this root carries it, so officials can check that a package,
// or a recombined root, is the one they expect. It is a hash of the 256-bit
// R, not a group element like the s·G of version 1, so it tells nothing of
// R even to a quantum computer (Grover leaves a 2^128 search).
func (r *RootKey) Commitment() ([32]byte, error) {
	var out [32]byte
	if r == nil || r.wiped {
		return out, ErrWiped
	}
	prk, err := hkdf.Extract(sha256.New, r.key[:], []byte(labelHKDFSalt))
	defer clear(prk)
	if err != nil {
		return out, fmt.Errorf("seal: root check: %w", err)
	}
	b, err := hkdf.Expand(sha256.New, prk, deriveInfo(labelRootCheck, "", "", 0), keySize)
	if err != nil {
		return out, fmt.Errorf("seal: root check: %w", err)
	}
	copy(out[:], b)
	return out, nil
}

// Wipe zeroes the scalar and R. The RootKey is unusable afterwards. Keyrings
// made from it hold their own copy and are wiped separately.
func (r *RootKey) Wipe() {
	if r == nil {
		return
	}
	if r.s != nil {
		r.s.SetUint64(0)
	}
	clear(r.key[:])
	r.wiped = true
}

// rootKeyHeader is the first line of a root key file's plaintext, in the
// family of internal/keyfile's headers.
const rootKeyHeader = "chancery-key/v1 seal-root\n"

// WriteRootKeyFile seals r with an age scrypt passphrase and writes it to
// path: mode 0600, atomically, never over an existing file. The plaintext
// is "chancery-key/v1 seal-root\n" ‖ base64(s) ‖ "\n": the scalar, not R,
// because a later re-split to new custodians needs s. workFactor is
// scrypt's log2 N: 0 (the default, 18) or within the range readers accept
// (keyfile.CheckWorkFactor); a weak passphrase is refused
// (keyfile.CheckPassphrase).
func WriteRootKeyFile(path string, r *RootKey, passphrase []byte, workFactor int) error {
	if len(passphrase) == 0 {
		return fmt.Errorf("write root key file %s: empty passphrase: refusing to write the root key unencrypted", path)
	}
	rcpt, err := keyfile.ScryptRecipient(passphrase, workFactor)
	if err != nil {
		return fmt.Errorf("write root key file %s: %w", path, err)
	}
	return WriteRootKeyFileTo(path, r, rcpt)
}

// WriteRootKeyFileTo is WriteRootKeyFile sealed to an age recipient (for
// example an activating site's one-time key or a hardware token plugin)
// instead of a passphrase.
func WriteRootKeyFileTo(path string, r *RootKey, rcpt age.Recipient) error {
	if r == nil || r.wiped {
		return fmt.Errorf("write root key file %s: %w", path, ErrWiped)
	}
	if rcpt == nil {
		return fmt.Errorf("write root key file %s: no recipient: refusing to write the root key unencrypted", path)
	}
	sb, err := r.s.MarshalBinary()
	defer clear(sb)
	if err != nil {
		return fmt.Errorf("write root key file %s: %w", path, err)
	}
	plain := make([]byte, 0, len(rootKeyHeader)+base64.StdEncoding.EncodedLen(len(sb))+1)
	plain = append(plain, rootKeyHeader...)
	plain = base64.StdEncoding.AppendEncode(plain, sb)
	plain = append(plain, '\n')
	defer clear(plain)
	sealed, err := ageSeal(plain, rcpt)
	if err != nil {
		return fmt.Errorf("write root key file %s: %w", path, err)
	}
	if err := fsutil.WriteNew(path, sealed, 0o600); err != nil {
		return fmt.Errorf("write root key file %s: %w", path, err)
	}
	return nil
}

// ReadRootKeyFile opens a root key file written by WriteRootKeyFile. It
// refuses a file that group or others may access, any scrypt work factor
// above keyfile.MaxWorkFactor (the writers' limit too), and any plaintext
// that is not exactly the documented format.
func ReadRootKeyFile(path string, passphrase []byte) (*RootKey, error) {
	id, err := keyfile.ScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("read root key file %s: %w", path, err)
	}
	return ReadRootKeyFileWith(path, id)
}

// ReadRootKeyFileWith opens a root key file with an age identity.
func ReadRootKeyFileWith(path string, id age.Identity) (*RootKey, error) {
	data, err := fsutil.ReadPrivate(path, maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("read root key file %s: %w", path, err)
	}
	plain, err := ageOpen(data, id, maxSmallFile)
	defer clear(plain)
	if err != nil {
		return nil, fmt.Errorf("read root key file %s: %w", path, err)
	}
	r, err := parseRootPlaintext(plain)
	if err != nil {
		return nil, fmt.Errorf("read root key file %s: %w", path, err)
	}
	return r, nil
}

func parseRootPlaintext(plain []byte) (*RootKey, error) {
	rest, ok := bytes.CutPrefix(plain, []byte(rootKeyHeader))
	if !ok {
		return nil, fmt.Errorf("not a sealed root key (want header %q)", rootKeyHeader[:len(rootKeyHeader)-1])
	}
	b64, ok := bytes.CutSuffix(rest, []byte("\n"))
	if !ok || len(b64) != base64.StdEncoding.EncodedLen(32) {
		return nil, errors.New("malformed root key: want one base64 line of a 32-byte scalar")
	}
	sb := make([]byte, 32)
	defer clear(sb)
	if n, err := base64.StdEncoding.Decode(sb, b64); err != nil || n != 32 {
		return nil, errors.New("malformed root key: want one base64 line of a 32-byte scalar")
	}
	s := suite.NewScalar()
	defer s.SetUint64(0)
	if err := s.UnmarshalBinary(sb); err != nil {
		return nil, errors.New("malformed root key: not a canonical scalar")
	}
	return rootFromScalar(s)
}

// ageSeal encrypts plain to rcpt in one age file.
func ageSeal(plain []byte, rcpt ...age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt...)
	if err != nil {
		return nil, fmt.Errorf("age encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("age encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("age encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// ageOpen decrypts an age file of at most limit plaintext bytes; the caller
// clears the result.
func ageOpen(sealed []byte, id age.Identity, limit int64) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		return nil, fmt.Errorf("age decrypt: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		clear(plain)
		// age authenticates every chunk: a modified payload ends up here.
		return nil, fmt.Errorf("age decrypt: %w", err)
	}
	if int64(len(plain)) > limit {
		clear(plain)
		return nil, fmt.Errorf("age decrypt: plaintext longer than %d bytes", limit)
	}
	return plain, nil
}
