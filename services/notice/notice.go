// Package notice is the format of the state's signed public notices
// (emergency information, "the government is operating from abroad", new
// legal acts): each is signed by officials under the quorum the charter
// sets for its class (services.notices), recorded in the ledger as a
// notice entry, and carried with its inclusion proof and the sites'
// cosigned checkpoint so that anyone verifies it offline with the
// charter. It renders lists of notices as an Atom feed (RFC 4287) and a
// JSON Feed 1.1. It does no I/O; docs/extracts.md gives the formats.
package notice

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// Notice is what the officials sign.
type Notice struct {
	Guest string `json:"guest"`
	ID    string `json:"id"`
	// Class selects the quorum (services.notices.classes).
	Class string `json:"class"`
	Title string `json:"title"`
	Body  string `json:"body"`
	Lang  string `json:"lang,omitempty"`
	// IssuedAt, in whole seconds (UTC), is also the ledger entry's time.
	IssuedAt time.Time `json:"issued_at"`
	// Epoch is the epoch it is issued in, also the entry's epoch.
	Epoch uint64 `json:"epoch"`
	// Site is the site that recorded it.
	Site string `json:"site"`
}

// Signature is one official's Ed25519 signature of a notice.
type Signature struct {
	Official string `json:"official"`
	Sig      string `json:"sig"` // standard base64
}

// Signed is a notice with its signatures: the payload of its ledger entry,
// byte for byte as Marshal writes it.
type Signed struct {
	Notice     Notice      `json:"notice"`
	Signatures []Signature `json:"signatures"`
}

// Config is the charter's section services.notices.
type Config struct {
	// Classes give each notice class its quorum of officials.
	Classes map[string]charter.Rule `yaml:"classes"`
	// Cosigners is how many sites other than the writer must cosign the
	// checkpoint a notice is proven against (default 1).
	Cosigners int `yaml:"cosigners,omitempty"`
}

const signedPrefix = "chancery notice v1\n"

var idRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// message is what an official signs: a domain prefix and the notice's
// JSON (encoding/json writes struct fields in order, so it is one string).
func (n *Notice) message() ([]byte, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("notice %s: %w", n.ID, err)
	}
	return append([]byte(signedPrefix), b...), nil
}

func (n *Notice) check() error {
	switch {
	case n.Guest == "":
		return errors.New("notice: guest is empty")
	case !idRe.MatchString(n.ID):
		return fmt.Errorf("notice: id %q: want 1-64 letters, digits, '.', '_' or '-'", n.ID)
	case n.Class == "":
		return fmt.Errorf("notice %s: class is empty", n.ID)
	case n.Title == "":
		return fmt.Errorf("notice %s: title is empty", n.ID)
	case n.IssuedAt.Unix() <= 0 || !n.IssuedAt.Equal(n.IssuedAt.Truncate(time.Second)) || n.IssuedAt.Location() != time.UTC:
		return fmt.Errorf("notice %s: issued_at %v must be after 1970, in whole seconds, UTC", n.ID, n.IssuedAt)
	case n.Site == "":
		return fmt.Errorf("notice %s: site is empty", n.ID)
	}
	return nil
}

// Sign returns official's signature of n.
func Sign(n *Notice, official string, key ed25519.PrivateKey) (Signature, error) {
	m, err := n.message()
	if err != nil {
		return Signature{}, err
	}
	return Signature{Official: official, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, m))}, nil
}

// Marshal encodes a signed notice: the entry payload.
func (s *Signed) Marshal() ([]byte, error) {
	if _, err := s.Notice.message(); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// Parse decodes a signed notice strictly: unknown fields refused, and the
// bytes must be exactly what Marshal writes.
func Parse(b []byte) (*Signed, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Signed
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("signed notice: %w", err)
	}
	again, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, errors.New("signed notice: not in its canonical encoding")
	}
	return &s, nil
}

// Entry is the ledger entry that records a signed notice.
func (s *Signed) Entry() (ledger.Entry, error) {
	b, err := s.Marshal()
	if err != nil {
		return ledger.Entry{}, err
	}
	return ledger.Entry{Type: ledger.TypeNotice, Epoch: s.Notice.Epoch, Time: s.Notice.IssuedAt, Payload: b}, nil
}

// Quorum checks the signatures of s against the charter: each by an
// official it names, verifying, no official twice, and together meeting
// the rule of the notice's class. It is what a site checks before
// recording a notice, and what Verify checks after.
func Quorum(c *charter.Charter, cfg Config, s *Signed) ([]string, error) {
	rule, ok := cfg.Classes[s.Notice.Class]
	if !ok {
		return nil, fmt.Errorf("notice %s: class %q has no quorum in the charter (services.notices.classes)", s.Notice.ID, s.Notice.Class)
	}
	m, err := s.Notice.message()
	if err != nil {
		return nil, err
	}
	var signers []charter.Official
	var ids []string
	for i, sig := range s.Signatures {
		o, ok := c.Official(sig.Official)
		if !ok {
			return nil, fmt.Errorf("notice %s: signatures[%d]: %q is not an official of the charter", s.Notice.ID, i, sig.Official)
		}
		if slices.Contains(ids, o.ID) {
			return nil, fmt.Errorf("notice %s: signatures[%d]: %s signed twice", s.Notice.ID, i, o.ID)
		}
		pub, err := o.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("notice %s: official %s: %w", s.Notice.ID, o.ID, err)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(sig.Sig)
		if err != nil || !ed25519.Verify(pub, m, raw) {
			return nil, fmt.Errorf("notice %s: signatures[%d]: the signature of %s does not verify", s.Notice.ID, i, o.ID)
		}
		signers = append(signers, *o)
		ids = append(ids, o.ID)
	}
	if err := rule.Satisfied(signers); err != nil {
		return nil, fmt.Errorf("notice %s of class %s: %w", s.Notice.ID, s.Notice.Class, err)
	}
	return ids, nil
}

// Proven is a signed notice with its proof of inclusion: what every site
// publishes and anyone verifies offline.
type Proven struct {
	// Signed is the entry payload, byte for byte (base64 in JSON: as
	// embedded JSON it would not survive a feed's re-indentation).
	Signed []byte `json:"signed"`
	Index  uint64 `json:"ledger_index"`
	// TreeSize and Path are the RFC 9162 inclusion proof against
	// Checkpoint, the C2SP signed checkpoint with the sites'
	// cosignatures.
	TreeSize   uint64   `json:"tree_size"`
	Path       [][]byte `json:"inclusion_path"`
	Checkpoint string   `json:"checkpoint"`
}

// Verifier checks proven notices offline against one charter.
type Verifier struct {
	c     *charter.Charter
	cfg   Config
	sites *offline.Sites
}

// NewVerifier reads services.notices and the sites' keys.
func NewVerifier(c *charter.Charter) (*Verifier, error) {
	v := &Verifier{c: c}
	ok, err := c.Service("notices", &v.cfg)
	if err != nil {
		return nil, err
	}
	if !ok || len(v.cfg.Classes) == 0 {
		return nil, fmt.Errorf("charter v%d of %s sets no notice classes (services.notices.classes)", c.Version, c.Guest.ID)
	}
	if v.sites, err = offline.NewSites(c); err != nil {
		return nil, err
	}
	return v, nil
}

// Config is the charter's notice configuration.
func (v *Verifier) Config() Config { return v.cfg }

// Verified is what Verify found.
type Verified struct {
	Signed   *Signed
	Signers  []string
	Cosigned *offline.Cosigned
}

// Verify checks a proven notice: its quorum of officials, its entry's
// inclusion in the checkpoint, and the checkpoint's writer signature and
// cosignatures.
func (v *Verifier) Verify(p *Proven) (*Verified, error) {
	s, err := Parse(p.Signed)
	if err != nil {
		return nil, err
	}
	if s.Notice.Guest != v.c.Guest.ID {
		return nil, fmt.Errorf("notice %s: of guest %q, the charter is %q's", s.Notice.ID, s.Notice.Guest, v.c.Guest.ID)
	}
	ids, err := Quorum(v.c, v.cfg, s)
	if err != nil {
		return nil, err
	}
	e, err := s.Entry()
	if err != nil {
		return nil, err
	}
	raw, err := e.MarshalBinary()
	if err != nil {
		return nil, err
	}
	path := make([]ledger.Hash, len(p.Path))
	for i, h := range p.Path {
		if len(h) != len(ledger.Hash{}) {
			return nil, fmt.Errorf("notice %s: inclusion path hash %d is %d bytes", s.Notice.ID, i, len(h))
		}
		path[i] = ledger.Hash(h)
	}
	cs, err := v.sites.Open([]byte(p.Checkpoint), max(v.cfg.Cosigners, 1))
	if err != nil {
		return nil, fmt.Errorf("notice %s: %w", s.Notice.ID, err)
	}
	if cs.Checkpoint.Size != p.TreeSize {
		return nil, fmt.Errorf("notice %s: proof for a tree of size %d, checkpoint of size %d", s.Notice.ID, p.TreeSize, cs.Checkpoint.Size)
	}
	if err := ledger.VerifyInclusion(p.Index, p.TreeSize, ledger.LeafHash(raw), path, cs.Checkpoint.Root); err != nil {
		return nil, fmt.Errorf("notice %s: entry %d is not in checkpoint %d: %w", s.Notice.ID, p.Index, p.TreeSize, err)
	}
	return &Verified{Signed: s, Signers: ids, Cosigned: cs}, nil
}
