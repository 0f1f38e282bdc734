package offline

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
)

// receiptName is the cosigner name of a site's receipts: the name
// replica.ReceiptName gives, rebuilt here so that this package needs no
// more than the charter and the ledger (a test keeps the two equal).
func receiptName(origin, site string) string { return origin + "/sites/" + site }

// Sites holds the keys of a charter's sites, for checking cosigned
// checkpoints without a network.
type Sites struct {
	c         *charter.Charter
	verifiers note.Verifiers
	// logSite maps a log key's note hash to the site that holds it.
	logSite map[uint32]string
	// cosigner maps a receipt cosigner's name to its site.
	cosigner map[string]string
}

// NewSites reads the sites' checkpoint keys from the charter: each is the
// site's log key should it write an epoch, and under receiptName the key
// of its cosignatures.
func NewSites(c *charter.Charter) (*Sites, error) {
	s := &Sites{c: c, logSite: map[uint32]string{}, cosigner: map[string]string{}}
	var vs []note.Verifier
	for i, site := range c.Sites {
		name, _, pub, err := ledger.SplitVerifierKey(site.CheckpointKey)
		if err != nil {
			return nil, fmt.Errorf("charter sites[%d] (%s).checkpoint_key: %w", i, site.ID, err)
		}
		lv, err := ledger.ParseVerifierKey(site.CheckpointKey)
		if err != nil {
			return nil, fmt.Errorf("charter sites[%d] (%s).checkpoint_key: %w", i, site.ID, err)
		}
		if name != c.Guest.Origin {
			return nil, fmt.Errorf("charter sites[%d] (%s).checkpoint_key is named %q, not the origin %q", i, site.ID, name, c.Guest.Origin)
		}
		cv, err := ledger.NewCosignatureVerifier(receiptName(c.Guest.Origin, site.ID), ed25519.PublicKey(pub))
		if err != nil {
			return nil, fmt.Errorf("charter sites[%d] (%s): %w", i, site.ID, err)
		}
		s.logSite[lv.KeyHash()] = site.ID
		s.cosigner[cv.Name()] = site.ID
		vs = append(vs, lv, cv)
	}
	s.verifiers = note.VerifierList(vs...)
	return s, nil
}

// Cosigned is a checkpoint whose signatures have been checked.
type Cosigned struct {
	Checkpoint ledger.Checkpoint
	// Writer is the site whose log key signed the checkpoint.
	Writer string
	// Cosigners are the other sites that cosigned it, sorted.
	Cosigners []string
}

// Open checks a signed checkpoint: the guest's origin, a signature by one
// site's log key (the writer of the epoch), and cosignatures by at least
// need distinct other sites. Every signature must be by a key of the
// charter and verify: stricter than C2SP signed notes, which ignore
// unknown keys, because a receipt is composed for this charter.
//
// The charter alone cannot say which site wrote a given epoch (orders do);
// a site cosigns only a checkpoint it checked against the writer of its
// epoch (replica.Receiver), so the cosigners vouch for the writer.
func (s *Sites) Open(signed []byte, need int) (*Cosigned, error) {
	cp, n, err := ledger.OpenCheckpoint(signed, s.c.Guest.Origin, s.verifiers)
	if err != nil {
		return nil, err
	}
	// A receipt's checkpoint is composed by the issuing site from the
	// charter's sites alone: a signature by a key the charter does not
	// name has no business there, and accepting it would leave bytes an
	// alteration could change unnoticed.
	if len(n.UnverifiedSigs) > 0 {
		return nil, fmt.Errorf("checkpoint of size %d carries a signature by %q, a key the charter does not name", cp.Size, n.UnverifiedSigs[0].Name)
	}
	// note.Open decodes signatures with lenient base64, which ignores the
	// unused low bits of the last character: four spellings of one
	// signature. Only the canonical one is accepted, so that no byte of a
	// receipt can change unnoticed.
	for _, sig := range n.Sigs {
		if _, err := base64.StdEncoding.Strict().DecodeString(sig.Base64); err != nil {
			return nil, fmt.Errorf("checkpoint of size %d: signature by %q is not canonical base64", cp.Size, sig.Name)
		}
	}
	out := &Cosigned{Checkpoint: cp}
	for _, sig := range n.Sigs {
		if sig.Name == cp.Origin {
			if site, ok := s.logSite[sig.Hash]; ok {
				if out.Writer != "" && out.Writer != site {
					return nil, fmt.Errorf("checkpoint of size %d signed by the log keys of two sites, %s and %s", cp.Size, out.Writer, site)
				}
				out.Writer = site
			}
		}
	}
	for _, sig := range n.Sigs {
		if site, ok := s.cosigner[sig.Name]; ok && site != out.Writer && !slices.Contains(out.Cosigners, site) {
			out.Cosigners = append(out.Cosigners, site)
		}
	}
	slices.Sort(out.Cosigners)
	if len(out.Cosigners) < need {
		return nil, fmt.Errorf("checkpoint of size %d (epoch %d, written by %s): cosigned by %d sites %v, the charter requires %d", cp.Size, cp.Epoch, out.Writer, len(out.Cosigners), out.Cosigners, need)
	}
	return out, nil
}
