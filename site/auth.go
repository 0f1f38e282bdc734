package site

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/siteapi"
)

// errAuth marks authentication failures: the request is refused with 401.
var errAuth = errors.New("authentication failed")

func authErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errAuth, fmt.Sprintf(format, a...))
}

// parseSigHeader parses the header (siteapi.ParseSignatureHeader); what
// it refuses is an authentication failure.
func parseSigHeader(h string) (*siteapi.SignatureParams, error) {
	p, err := siteapi.ParseSignatureHeader(h)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAuth, err)
	}
	return p, nil
}

// authenticator checks signed requests against the charter's officials.
type authenticator struct {
	guest     string // signed into every request: no replay at another guest
	site      string
	officials map[string]authOfficial
	now       func() time.Time
	nonces    *nonceCache
}

type authOfficial struct {
	def *charter.Official
	key ed25519.PublicKey
}

// newAuthenticator checks requests signed by c's officials for site,
// remembering their nonces durably in the journal at journal.
func newAuthenticator(c *charter.Charter, site string, now func() time.Time, maxNonces int, journal string) (*authenticator, error) {
	a := &authenticator{guest: c.Guest.ID, site: site, officials: map[string]authOfficial{}, now: now}
	for i := range c.Officials {
		o := &c.Officials[i]
		k, err := o.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("official %s: %w", o.ID, err)
		}
		a.officials[o.ID] = authOfficial{def: o, key: k}
	}
	var err error
	if a.nonces, err = openNonceCache(journal, maxNonces, now()); err != nil {
		return nil, err
	}
	return a, nil
}

// errBusy is returned when the nonce cache is full of unexpired nonces:
// the site refuses rather than forget a nonce, which would allow a replay.
var errBusy = errors.New("too many requests in the replay window; retry later")

// errJournal marks a nonce that could not be made durable: the request
// is refused (503) rather than acted on where a restart could replay it.
var errJournal = errors.New("replay journal")

// close releases the nonce journal.
func (a *authenticator) close() error {
	if a == nil {
		return nil
	}
	return a.nonces.close()
}

// authenticate checks the header, the clock, the signature and the nonce,
// in that order, and wraps the body so that reading it to the end checks
// the digest. It returns the official.
func (a *authenticator) authenticate(r *http.Request) (*charter.Official, error) {
	hs := r.Header.Values(siteapi.SignatureHeader)
	if len(hs) == 0 {
		return nil, authErr("missing %s header", siteapi.SignatureHeader)
	}
	if len(hs) > 1 {
		return nil, authErr("%s header given more than once", siteapi.SignatureHeader)
	}
	h, err := parseSigHeader(hs[0])
	if err != nil {
		return nil, err
	}
	o, ok := a.officials[h.Official]
	if !ok {
		return nil, authErr("unknown official %q", h.Official)
	}
	now := a.now()
	t := time.Unix(h.Unix, 0)
	if d := now.Sub(t); d > siteapi.MaxSkew || d < -siteapi.MaxSkew {
		return nil, authErr("official %s: request time %s is %s from the site's clock; at most %s is allowed", h.Official, t.UTC().Format(time.RFC3339), d.Round(time.Second), siteapi.MaxSkew)
	}
	msg := h.Message(a.guest, a.site, r.Method, r.RequestURI)
	if !ed25519.Verify(o.key, msg, h.Sig) {
		return nil, authErr("official %s: bad signature", h.Official)
	}
	// Only now, with the signature verified, is the nonce remembered: an
	// unauthenticated sender cannot fill the cache.
	// A second past the window, so that a request exactly at the edge
	// of the window is still caught.
	if err := a.nonces.add(nonceKey(h.Official, h.Nonce), t.Add(siteapi.MaxSkew+time.Second), now); err != nil {
		if !errors.Is(err, errReplay) {
			// Busy, or the journal could not be written: refused (503),
			// not acted on without the nonce on disk.
			return nil, err
		}
		return nil, authErr("official %s: %v", h.Official, err)
	}
	r.Body = &digestReader{r: r.Body, h: sha256.New(), want: h.Digest}
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
// replayed. With a journal (replay.go) it is durable: add returns only
// once the nonce is on disk, so a restart or a crash forgets none.
type nonceCache struct {
	mu        sync.Mutex
	max       int
	seen      map[string]time.Time // nonce → when it may be forgotten
	nextSweep time.Time
	journal   *nonceJournal // nil: memory only (tests of the cache alone)
	written   uint64        // nonces appended to the journal
	synced    uint64        // of which known durable

	syncMu sync.Mutex // one fsync at a time; the others wait and share it
}

func newNonceCache(max int) *nonceCache {
	if max <= 0 {
		max = 1 << 20
	}
	return &nonceCache{max: max, seen: map[string]time.Time{}}
}

// openNonceCache is a cache kept durably in the journal at path.
func openNonceCache(path string, max int, now time.Time) (*nonceCache, error) {
	c := newNonceCache(max)
	j, err := openNonceJournal(path, c.seen, now)
	if err != nil {
		return nil, err
	}
	c.journal = j
	return c, nil
}

var errReplay = errors.New("nonce already used: replayed request")

func (c *nonceCache) add(key string, forgetAt, now time.Time) error {
	c.mu.Lock()
	if exp, ok := c.seen[key]; ok && now.Before(exp) {
		c.mu.Unlock()
		return errReplay
	}
	if len(c.seen) >= c.max || now.After(c.nextSweep) {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		c.nextSweep = now.Add(siteapi.MaxSkew / 4)
		if len(c.seen) >= c.max {
			c.mu.Unlock()
			return errBusy
		}
		if j := c.journal; j != nil && j.lines > 2*len(c.seen)+compactAfter {
			if err := j.compact(c.seen); err != nil {
				c.mu.Unlock()
				return journalErr(err)
			}
			c.synced = c.written
		}
	}
	if c.journal == nil {
		c.seen[key] = forgetAt
		c.mu.Unlock()
		return nil
	}
	if err := c.journal.append(key, forgetAt); err != nil {
		c.mu.Unlock()
		return journalErr(err)
	}
	// Remembered before it is durable: a concurrent replay is refused
	// now, and if the sync fails the request is refused too — a nonce
	// remembered for nothing costs nothing.
	c.seen[key] = forgetAt
	c.written++
	seq := c.written
	c.mu.Unlock()
	return c.sync(seq)
}

// sync returns once the journal holds the first seq nonces durably. The
// request that takes syncMu syncs everything written so far, so requests
// that arrive together share one fsync.
func (c *nonceCache) sync(seq uint64) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	c.mu.Lock()
	if c.synced >= seq {
		c.mu.Unlock()
		return nil
	}
	f, upTo := c.journal.f, c.written
	c.mu.Unlock()
	err := f.Sync()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && upTo > c.synced {
		c.synced = upTo
	}
	if c.synced >= seq {
		// Synced here, or by a compaction that closed f under the sync.
		return nil
	}
	return journalErr(fmt.Errorf("%s: sync: %w", c.journal.path, err))
}

func (c *nonceCache) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.journal.close()
}

// journalErr wraps a journal failure as errJournal, keeping the cause
// (a full disk is told apart by errors.Is).
func journalErr(err error) error { return fmt.Errorf("%w: %w", errJournal, err) }
