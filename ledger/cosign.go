package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// C2SP signed-note signature types.
const (
	sigTypeEd25519     = 0x01
	sigTypeCosignature = 0x04
)

const cosignatureHeader = "cosignature/v1\ntime "

// noteKeyHash is the C2SP key ID: the first 4 bytes of
// SHA-256(name || 0x0A || type || public key).
func noteKeyHash(name string, typ byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', typ})
	h.Write(pub)
	var sum [32]byte
	return binary.BigEndian.Uint32(h.Sum(sum[:0]))
}

// Cosigner signs checkpoints as a C2SP tlog-cosignature/v1 witness: the
// signature says that at its timestamp this was the largest consistent
// checkpoint the cosigner had seen for the origin. Embassy sites use it to
// return receipts. It implements note.Signer.
type Cosigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	now  func() time.Time
}

// NewCosigner returns a cosigner named name (a schema-less URL, customarily)
// signing with key. now may be nil for time.Now.
func NewCosigner(name string, key ed25519.PrivateKey, now func() time.Time) (*Cosigner, error) {
	if !isKeyName(name) {
		return nil, fmt.Errorf("cosigner name %q: must be non-empty, without spaces or '+'", name)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("cosigner %q: private key of %d bytes", name, len(key))
	}
	if now == nil {
		now = time.Now
	}
	pub := key.Public().(ed25519.PublicKey)
	return &Cosigner{name: name, hash: noteKeyHash(name, sigTypeCosignature, pub), key: key, now: now}, nil
}

// Name implements note.Signer.
func (c *Cosigner) Name() string { return c.name }

// KeyHash implements note.Signer.
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// Sign implements note.Signer: msg is the checkpoint note text.
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	t := c.now().Unix()
	if t < 0 {
		return nil, errors.New("cosign: clock before 1970")
	}
	sig := ed25519.Sign(c.key, cosignedMessage(uint64(t), msg))
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sig)), uint64(t))
	return append(out, sig...), nil
}

// VerifierKey returns the C2SP verifier key string of the cosigner.
func (c *Cosigner) VerifierKey() string {
	return VerifierKeyString(c.name, sigTypeCosignature, c.key.Public().(ed25519.PublicKey))
}

func cosignedMessage(t uint64, text []byte) []byte {
	m := make([]byte, 0, len(cosignatureHeader)+24+len(text))
	m = append(m, cosignatureHeader...)
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	return append(m, text...)
}

// CosignatureVerifier verifies tlog-cosignature/v1 signatures. It
// implements note.Verifier.
type CosignatureVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// NewCosignatureVerifier returns the verifier for a cosigner's public key.
func NewCosignatureVerifier(name string, pub ed25519.PublicKey) (*CosignatureVerifier, error) {
	if !isKeyName(name) {
		return nil, fmt.Errorf("cosigner name %q: must be non-empty, without spaces or '+'", name)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("cosigner %q: public key of %d bytes", name, len(pub))
	}
	return &CosignatureVerifier{name: name, hash: noteKeyHash(name, sigTypeCosignature, pub), pub: pub}, nil
}

// Name implements note.Verifier.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash implements note.Verifier.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify implements note.Verifier.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	return ed25519.Verify(v.pub, cosignedMessage(t, msg), sig[8:])
}

// CosignatureTime returns the timestamp of a cosignature made by v over a
// note, or an error if the note carries none that verifies.
func CosignatureTime(n *note.Note, v *CosignatureVerifier) (time.Time, error) {
	for _, s := range n.Sigs {
		if s.Name != v.name || s.Hash != v.hash {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
			return time.Time{}, fmt.Errorf("cosignature by %q: malformed", v.name)
		}
		return time.Unix(int64(binary.BigEndian.Uint64(raw[4:12])), 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("no cosignature by %q", v.name)
}

// VerifierKeyString formats a C2SP verifier key: name+hash+base64(type||key).
func VerifierKeyString(name string, typ byte, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, noteKeyHash(name, typ, pub), base64.StdEncoding.EncodeToString(append([]byte{typ}, pub...)))
}

// ParseVerifierKey parses a C2SP verifier key string of type Ed25519 (a log
// key) or Ed25519 cosignature (a witness or site key).
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	name, typ, pub, err := SplitVerifierKey(vkey)
	if err != nil {
		return nil, err
	}
	switch typ {
	case sigTypeEd25519:
		return note.NewVerifier(vkey)
	case sigTypeCosignature:
		return NewCosignatureVerifier(name, pub)
	default:
		return nil, fmt.Errorf("verifier key for %q: signature type 0x%02x is not supported", name, typ)
	}
}

// SplitVerifierKey checks a C2SP verifier key string and returns its name,
// signature type and Ed25519 public key: a site's one key pair serves both
// as its log key (should it become the writer) and, under another name, as
// the cosigning key of its receipts.
func SplitVerifierKey(vkey string) (name string, typ byte, pub ed25519.PublicKey, err error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hashHex, keyB64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !isKeyName(name) || len(hashHex) != 8 {
		return "", 0, nil, fmt.Errorf("verifier key %q: not name+hash+key", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || base64.StdEncoding.EncodeToString(raw) != keyB64 {
		return "", 0, nil, fmt.Errorf("verifier key for %q: key is not base64 of a type byte and a 32-byte Ed25519 key", name)
	}
	h, err := strconv.ParseUint(hashHex, 16, 32)
	if err != nil || uint32(h) != noteKeyHash(name, raw[0], raw[1:]) {
		return "", 0, nil, fmt.Errorf("verifier key for %q: key hash %s does not match the key", name, hashHex)
	}
	return name, raw[0], ed25519.PublicKey(raw[1:]), nil
}

// NewLogSigner returns a note.Signer for a log (checkpoint) key, and its
// verifier key string.
func NewLogSigner(name string, key ed25519.PrivateKey) (note.Signer, string, error) {
	if !isKeyName(name) {
		return nil, "", fmt.Errorf("log key name %q: must be non-empty, without spaces or '+'", name)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, "", fmt.Errorf("log key %q: private key of %d bytes", name, len(key))
	}
	pub := key.Public().(ed25519.PublicKey)
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, noteKeyHash(name, sigTypeEd25519, pub),
		base64.StdEncoding.EncodeToString(append([]byte{sigTypeEd25519}, key.Seed()...)))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("log key %q: %w", name, err)
	}
	return s, VerifierKeyString(name, sigTypeEd25519, pub), nil
}

func isKeyName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " +\n\t")
}

// Cosign adds the signatures of the given cosigners to a signed checkpoint.
// The caller is responsible for having checked the checkpoint (signature
// and consistency with the cosigner's previous view) first.
func Cosign(signed []byte, cosigners ...note.Signer) ([]byte, error) {
	text, err := SplitNote(signed)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), signed...)
	for _, s := range cosigners {
		sig, err := s.Sign(text)
		if err != nil {
			return nil, fmt.Errorf("cosign as %q: %w", s.Name(), err)
		}
		line := fmt.Sprintf("— %s %s\n", s.Name(), base64.StdEncoding.EncodeToString(
			append(binary.BigEndian.AppendUint32(nil, s.KeyHash()), sig...)))
		out = append(out, line...)
	}
	return out, nil
}
