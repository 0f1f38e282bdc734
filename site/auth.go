package site

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
)

// The request signing scheme (docs/api.md gives it byte for byte).
//
// Every API request carries one header
//
//	Chancery-Signature: official="<id>", time="<unix>", nonce="<b64 16 bytes>", digest="<hex sha256 body>", sig="<b64 Ed25519>"
//
// and sig is the official's Ed25519 signature over
//
//	"chancery-request/v1\n" + site + "\n" + method + "\n" + request-target + "\n" +
//	time + "\n" + nonce + "\n" + digest
//
// The site id stops a request signed for one site from being replayed at
// another; the nonce stops it being replayed at the same site; the time
// bounds how long the site must remember nonces. The digest is carried in
// the header, not only signed, so that the site can check the signature
// before it accepts a byte of the body, and then stream a large upload
// while hashing it instead of holding it in memory.
const (
	// SignatureHeader is the header that carries a request's signature.
	SignatureHeader = "Chancery-Signature"
	// signContext starts every signed message, so that a signature over a
	// request can never be taken for one over anything else.
	signContext = "chancery-request/v1\n"
	// MaxSkew is how far a request's time may be from the site's clock.
	MaxSkew   = 5 * time.Minute
	nonceSize = 16
)

// SigningString is the exact message an official signs for a request.
func SigningString(site, method, target string, unix int64, nonce, digest string) []byte {
	var b bytes.Buffer
	b.WriteString(signContext)
	for _, s := range []string{site, method, target, strconv.FormatInt(unix, 10), nonce} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString(digest)
	return b.Bytes()
}

// Signer signs requests as one official for one site.
type Signer struct {
	Site     string // the site id in the charter the request is for
	Official string // the official id in the charter
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
	var nonce [nonceSize]byte
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
	msg := SigningString(s.Site, req.Method, req.URL.RequestURI(), unix, n, d)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.Key, msg))
	req.Header.Set(SignatureHeader, fmt.Sprintf(`official=%q, time="%d", nonce=%q, digest=%q, sig=%q`, s.Official, unix, n, d, sig))
	return nil
}

// SignRequest signs req as official for site; see Signer.
func SignRequest(req *http.Request, site, official string, key ed25519.PrivateKey) error {
	return Signer{Site: site, Official: official, Key: key}.Sign(req)
}

// sigHeader is a parsed Chancery-Signature header.
type sigHeader struct {
	official string
	unix     int64
	nonce    string
	digest   [32]byte
	digestHx string
	sig      []byte
}

// errAuth marks authentication failures: the request is refused with 401.
var errAuth = errors.New("authentication failed")

func authErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errAuth, fmt.Sprintf(format, a...))
}

// parseSigHeader is strict: exactly the five parameters, each once, each a
// quoted string in its canonical form. Leniency in a security header only
// makes room for two parsers to disagree.
func parseSigHeader(h string) (*sigHeader, error) {
	params := map[string]string{}
	rest := strings.TrimSpace(h)
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || !strings.HasPrefix(after, `"`) {
			return nil, authErr("malformed %s header", SignatureHeader)
		}
		val, after, ok := strings.Cut(after[1:], `"`)
		if !ok {
			return nil, authErr("malformed %s header: unterminated value of %s", SignatureHeader, key)
		}
		key = strings.TrimSpace(key)
		if _, dup := params[key]; dup {
			return nil, authErr("%s header: %s given twice", SignatureHeader, key)
		}
		params[key] = val
		after = strings.TrimLeft(after, " ")
		if after != "" {
			if after[0] != ',' {
				return nil, authErr("malformed %s header after %s", SignatureHeader, key)
			}
			after = strings.TrimLeft(after[1:], " ")
			if after == "" {
				return nil, authErr("malformed %s header: trailing comma", SignatureHeader)
			}
		}
		rest = after
	}
	for k := range params {
		switch k {
		case "official", "time", "nonce", "digest", "sig":
		default:
			return nil, authErr("%s header: unknown parameter %q", SignatureHeader, k)
		}
	}
	var s sigHeader
	var ok bool
	if s.official, ok = params["official"]; !ok || s.official == "" {
		return nil, authErr("%s header: official missing", SignatureHeader)
	}
	if !charter.IsID(s.official) {
		// Not a charter id: no official has it, and it goes no further
		// (into logs, the replay cache) than this refusal.
		return nil, authErr("%s header: official %q is not a charter id (a-z, 0-9, '-')", SignatureHeader, s.official)
	}
	t := params["time"]
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil || unix < 0 || strconv.FormatInt(unix, 10) != t {
		return nil, authErr("%s header: time %q is not a decimal unix time", SignatureHeader, t)
	}
	s.unix = unix
	s.nonce = params["nonce"]
	// Go's decoder skips \r and \n: only the canonical spelling counts, so
	// one nonce has one string in the replay cache.
	if n, err := base64.StdEncoding.DecodeString(s.nonce); err != nil || len(n) != nonceSize || base64.StdEncoding.EncodeToString(n) != s.nonce {
		return nil, authErr("%s header: nonce must be base64 of %d bytes", SignatureHeader, nonceSize)
	}
	s.digestHx = params["digest"]
	if d, err := hex.DecodeString(s.digestHx); err != nil || len(d) != sha256.Size || hex.EncodeToString(d) != s.digestHx {
		return nil, authErr("%s header: digest must be lowercase hex of a SHA-256", SignatureHeader)
	} else {
		s.digest = [32]byte(d)
	}
	if s.sig, err = base64.StdEncoding.DecodeString(params["sig"]); err != nil || len(s.sig) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(s.sig) != params["sig"] {
		return nil, authErr("%s header: sig must be base64 of a %d-byte Ed25519 signature", SignatureHeader, ed25519.SignatureSize)
	}
	return &s, nil
}

// authenticator checks signed requests against the charter's officials.
type authenticator struct {
	site      string
	officials map[string]authOfficial
	now       func() time.Time
	nonces    *nonceCache
}

type authOfficial struct {
	def *charter.Official
	key ed25519.PublicKey
}

func newAuthenticator(c *charter.Charter, site string, now func() time.Time, maxNonces int) (*authenticator, error) {
	a := &authenticator{site: site, officials: map[string]authOfficial{}, now: now, nonces: newNonceCache(maxNonces)}
	for i := range c.Officials {
		o := &c.Officials[i]
		k, err := o.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("official %s: %w", o.ID, err)
		}
		a.officials[o.ID] = authOfficial{def: o, key: k}
	}
	return a, nil
}

// errBusy is returned when the nonce cache is full of unexpired nonces:
// the site refuses rather than forget a nonce, which would allow a replay.
var errBusy = errors.New("too many requests in the replay window; retry later")

// authenticate checks the header, the clock, the signature and the nonce,
// in that order, and wraps the body so that reading it to the end checks
// the digest. It returns the official.
func (a *authenticator) authenticate(r *http.Request) (*charter.Official, error) {
	hs := r.Header.Values(SignatureHeader)
	if len(hs) == 0 {
		return nil, authErr("missing %s header", SignatureHeader)
	}
	if len(hs) > 1 {
		return nil, authErr("%s header given more than once", SignatureHeader)
	}
	h, err := parseSigHeader(hs[0])
	if err != nil {
		return nil, err
	}
	o, ok := a.officials[h.official]
	if !ok {
		return nil, authErr("unknown official %q", h.official)
	}
	now := a.now()
	t := time.Unix(h.unix, 0)
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		return nil, authErr("official %s: request time %s is %s from the site's clock; at most %s is allowed", h.official, t.UTC().Format(time.RFC3339), d.Round(time.Second), MaxSkew)
	}
	msg := SigningString(a.site, r.Method, r.RequestURI, h.unix, h.nonce, h.digestHx)
	if !ed25519.Verify(o.key, msg, h.sig) {
		return nil, authErr("official %s: bad signature", h.official)
	}
	// Only now, with the signature verified, is the nonce remembered: an
	// unauthenticated sender cannot fill the cache.
	// A second past the window, so that a request exactly at the edge
	// of the window is still caught.
	if err := a.nonces.add(h.official+"\x00"+h.nonce, t.Add(MaxSkew+time.Second), now); err != nil {
		if errors.Is(err, errBusy) {
			return nil, err
		}
		return nil, authErr("official %s: %v", h.official, err)
	}
	r.Body = &digestReader{r: r.Body, h: sha256.New(), want: h.digest}
	return o.def, nil
}

// errDigest is returned by a request body whose bytes do not hash to the
// digest that was signed: it was changed after signing.
var errDigest = fmt.Errorf("%w: request body does not match the signed digest", errAuth)

// digestReader hashes what is read and, at the end, fails unless the
// hash is the signed one. A handler therefore never acts on a body it has
// not read to the end.
type digestReader struct {
	r    io.ReadCloser
	h    hash.Hash
	want [32]byte
	done bool
}

func (d *digestReader) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF {
		if [32]byte(d.h.Sum(nil)) != d.want {
			return n, errDigest
		}
		d.done = true
	}
	return n, err
}

func (d *digestReader) Close() error { return d.r.Close() }

// nonceCache remembers the nonces seen in the replay window. It is
// bounded: when full of nonces that have not expired it refuses new ones
// (errBusy) instead of evicting, because evicting one would let it be
// replayed.
type nonceCache struct {
	mu        sync.Mutex
	max       int
	seen      map[string]time.Time // nonce → when it may be forgotten
	nextSweep time.Time
}

func newNonceCache(max int) *nonceCache {
	if max <= 0 {
		max = 1 << 20
	}
	return &nonceCache{max: max, seen: map[string]time.Time{}}
}

var errReplay = errors.New("nonce already used: replayed request")

func (c *nonceCache) add(key string, forgetAt, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[key]; ok && now.Before(exp) {
		return errReplay
	}
	if len(c.seen) >= c.max || now.After(c.nextSweep) {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		c.nextSweep = now.Add(MaxSkew / 4)
		if len(c.seen) >= c.max {
			return errBusy
		}
	}
	c.seen[key] = forgetAt
	return nil
}
