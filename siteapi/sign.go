package siteapi

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chancery-gov/chancery/charter"
)

// The request signing scheme (docs/api.md gives it byte for byte).
//
// Every signed request carries one header
//
//	Chancery-Signature: official="<id>", time="<unix>", nonce="<b64 16 bytes>", digest="<hex sha256 body>", sig="<b64 Ed25519>"
//
// and sig is the signer's Ed25519 signature over
//
//	"chancery-request/v2\n" + guest + "\n" + site + "\n" + method + "\n" +
//	request-target + "\n" + time + "\n" + nonce + "\n" + digest
//
// The guest stops a request signed for one guest from being replayed at
// another guest of the same site (two charters may name the same site id
// and the same official key, and an embassy serves both); the site id
// stops a request signed for one site from being replayed at another; the
// nonce stops it being replayed at the same site; the time
// bounds how long the site must remember nonces. The digest is carried in
// the header, not only signed, so that the site can check the signature
// before it accepts a byte of the body, and then stream a large upload
// while hashing it instead of holding it in memory.
const (
	// SignatureHeader is the header that carries a request's signature.
	SignatureHeader = "Chancery-Signature"
	// signContext starts every signed message, so that a signature over a
	// request can never be taken for one over anything else.
	// v2 added the guest (v1 signed no guest, and is refused).
	signContext = "chancery-request/v2\n"
	// MaxSkew is how far a request's time may be from the site's clock.
	MaxSkew = 5 * time.Minute
	// NonceSize is the size of a request's nonce, in bytes.
	NonceSize = 16
)

// SigningString is the exact message an official signs for a request to
// guest at site.
func SigningString(guest, site, method, target string, unix int64, nonce, digest string) []byte {
	var b bytes.Buffer
	b.WriteString(signContext)
	for _, s := range []string{guest, site, method, target, strconv.FormatInt(unix, 10), nonce} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString(digest)
	return b.Bytes()
}

// Signer signs requests as one official (or one host, for the operator
// API) for one guest at one site.
type Signer struct {
	// Guest is the guest id the request is for. ContinuityClient and
	// OperatorClient fill it in from their Guest when it is empty.
	Guest    string
	Site     string // the site id in the charter the request is for
	Official string // the official (or host) id in the charter
	Key      ed25519.PrivateKey
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sign signs req, reading its body to hash it and putting it back. Use
// SignDigest for a body that should not be held in memory.
func (s Signer) Sign(req *http.Request) error {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return fmt.Errorf("sign request as official %s: read body: %w", s.Official, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	return s.SignDigest(req, sha256.Sum256(body))
}

// SignDigest signs req whose body has the given SHA-256.
func (s Signer) SignDigest(req *http.Request, digest [32]byte) error {
	if len(s.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign request as official %s: no private key", s.Official)
	}
	if s.Guest == "" {
		return fmt.Errorf("sign request as official %s: no guest (Signer.Guest): a request is signed for one guest", s.Official)
	}
	var nonce [NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("sign request as official %s: nonce: %w", s.Official, err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	unix := now().Unix()
	n := base64.StdEncoding.EncodeToString(nonce[:])
	d := hex.EncodeToString(digest[:])
	msg := SigningString(s.Guest, s.Site, req.Method, req.URL.RequestURI(), unix, n, d)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.Key, msg))
	req.Header.Set(SignatureHeader, fmt.Sprintf(`official=%q, time="%d", nonce=%q, digest=%q, sig=%q`, s.Official, unix, n, d, sig))
	return nil
}

// SignRequest signs req as official for guest at site; see Signer.
func SignRequest(req *http.Request, guest, site, official string, key ed25519.PrivateKey) error {
	return Signer{Guest: guest, Site: site, Official: official, Key: key}.Sign(req)
}

// forGuest returns the signer for a client of guest: s with Guest filled
// in, or an error if s was made for another guest.
func (s *Signer) forGuest(guest string) (*Signer, error) {
	if s == nil || s.Guest == guest {
		return s, nil
	}
	if s.Guest != "" {
		return nil, fmt.Errorf("signer for guest %s used by a client of guest %s", s.Guest, guest)
	}
	c := *s
	c.Guest = guest
	return &c, nil
}

// SignatureParams is a parsed Chancery-Signature header.
type SignatureParams struct {
	Official  string
	Unix      int64
	Nonce     string   // base64, canonical
	Digest    [32]byte // the SHA-256 of the body
	DigestHex string
	Sig       []byte
}

// ErrMalformedSignature marks a header that is not a well-formed
// Chancery-Signature; a site answers it with 401.
var ErrMalformedSignature = errors.New("malformed signature header")

// signatureError says what is wrong with a header; it is
// ErrMalformedSignature to errors.Is.
type signatureError struct{ msg string }

func (e *signatureError) Error() string        { return e.msg }
func (e *signatureError) Is(target error) bool { return target == ErrMalformedSignature }

func malformed(format string, a ...any) error {
	return &signatureError{fmt.Sprintf(format, a...)}
}

// Message is the signing string these parameters sign for a request to
// guest at site with method and target.
func (p *SignatureParams) Message(guest, site, method, target string) []byte {
	return SigningString(guest, site, method, target, p.Unix, p.Nonce, p.DigestHex)
}

// ParseSignatureHeader is strict: exactly the five parameters, each once,
// each a quoted string in its canonical form. Leniency in a security
// header only makes room for two parsers to disagree.
func ParseSignatureHeader(h string) (*SignatureParams, error) {
	params := map[string]string{}
	rest := strings.TrimSpace(h)
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || !strings.HasPrefix(after, `"`) {
			return nil, malformed("malformed %s header", SignatureHeader)
		}
		val, after, ok := strings.Cut(after[1:], `"`)
		if !ok {
			return nil, malformed("malformed %s header: unterminated value of %s", SignatureHeader, key)
		}
		key = strings.TrimSpace(key)
		if _, dup := params[key]; dup {
			return nil, malformed("%s header: %s given twice", SignatureHeader, key)
		}
		params[key] = val
		after = strings.TrimLeft(after, " ")
		if after != "" {
			if after[0] != ',' {
				return nil, malformed("malformed %s header after %s", SignatureHeader, key)
			}
			after = strings.TrimLeft(after[1:], " ")
			if after == "" {
				return nil, malformed("malformed %s header: trailing comma", SignatureHeader)
			}
		}
		rest = after
	}
	for k := range params {
		switch k {
		case "official", "time", "nonce", "digest", "sig":
		default:
			return nil, malformed("%s header: unknown parameter %q", SignatureHeader, k)
		}
	}
	var s SignatureParams
	var ok bool
	if s.Official, ok = params["official"]; !ok || s.Official == "" {
		return nil, malformed("%s header: official missing", SignatureHeader)
	}
	if !charter.IsID(s.Official) {
		// Not a charter id: no official has it, and it goes no further
		// (into logs, the replay cache) than this refusal.
		return nil, malformed("%s header: official %q is not a charter id (a-z, 0-9, '-')", SignatureHeader, s.Official)
	}
	t := params["time"]
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil || unix < 0 || strconv.FormatInt(unix, 10) != t {
		return nil, malformed("%s header: time %q is not a decimal unix time", SignatureHeader, t)
	}
	s.Unix = unix
	s.Nonce = params["nonce"]
	// Go's decoder skips \r and \n: only the canonical spelling counts, so
	// one nonce has one string in the replay cache.
	if n, err := base64.StdEncoding.DecodeString(s.Nonce); err != nil || len(n) != NonceSize || base64.StdEncoding.EncodeToString(n) != s.Nonce {
		return nil, malformed("%s header: nonce must be base64 of %d bytes", SignatureHeader, NonceSize)
	}
	s.DigestHex = params["digest"]
	if d, err := hex.DecodeString(s.DigestHex); err != nil || len(d) != sha256.Size || hex.EncodeToString(d) != s.DigestHex {
		return nil, malformed("%s header: digest must be lowercase hex of a SHA-256", SignatureHeader)
	} else {
		s.Digest = [32]byte(d)
	}
	if s.Sig, err = base64.StdEncoding.DecodeString(params["sig"]); err != nil || len(s.Sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(s.Sig) != params["sig"] {
		return nil, malformed("%s header: sig must be base64 of a %d-byte Ed25519 signature", SignatureHeader, ed25519.SignatureSize)
	}
	return &s, nil
}
